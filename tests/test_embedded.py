"""EmbeddedRedis: the session its server runs in, and that stopping it ends the server."""

from __future__ import annotations

import os

import pytest
import redis

from redis_sessions.embedded import EmbeddedRedis


@pytest.mark.parametrize("own_session", [False, True], ids=["this-session", "own-session"])
def test_the_server_runs_in_the_session_asked_for_and_stop_ends_it(own_session: bool) -> None:
    server = EmbeddedRedis(own_session=own_session).start()
    try:
        assert server._process is not None
        pid = server._process.pid
        # own_session: a session (and so a scheduler autogroup) led by the server itself
        assert (os.getsid(pid) == pid) is own_session
        assert (os.getsid(pid) == os.getsid(0)) is not own_session
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
