"""EmbeddedRedis: the session its server runs in, that stopping it ends the server, and that a
server does not outlive the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

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


def _state(pid: int) -> str:
    """The process's state letter from /proc (R, S, Z...), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_server_ends_when_the_process_that_started_it_is_killed() -> None:
    # the demo, `serve --embedded` or a test run killed with SIGKILL (a CI timeout): no stop()
    code = (
        "import sys, time\n"
        "from redis_sessions.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis().start()\n"
        "print(server._process.pid, server.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid, port = map(int, child.stdout.readline().split())
        with redis.Redis(port=port) as client:
            assert client.ping()
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while _state(pid) not in ("Z", "gone"):
        assert time.monotonic() < deadline, "the server outlived the process that started it"
        time.sleep(0.05)
    with (
        redis.Redis(port=port, socket_connect_timeout=1) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()


def test_a_server_started_from_a_thread_outlives_the_thread() -> None:
    # the kernel's parent-death signal follows the thread that started the child: it is only
    # asked for from the main thread, or the server would end with a worker thread
    started: list[EmbeddedRedis] = []
    thread = threading.Thread(target=lambda: started.append(EmbeddedRedis().start()))
    thread.start()
    thread.join()
    server = started[0]
    try:
        time.sleep(0.2)
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()
