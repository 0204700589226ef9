"""A real import process killed mid-way (SIGKILL) and run again: it continues from its checkpoint
and stores every session once, every message once (issue #16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_sessions import SessionStore
from redis_sessions.embedded import EmbeddedRedis

from .migrate_support import PgServer, insert_session, realistic_row

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


def test_a_killed_import_process_resumes_from_its_checkpoint(
    pg_server: PgServer, redis_url: str
) -> None:
    import redis

    user = uuid.uuid4()
    rows = [realistic_row(user, turns=3) for _ in range(300)]
    with pg_server.database() as source:
        with psycopg.connect(source) as conn:
            for row in rows:
                insert_session(conn, row)
        command = [
            sys.executable, "-m", "redis_sessions.cli", "--url", redis_url, "migrate", "import",
            "--postgres", source, "--batch-size", "2", "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        client = redis.Redis.from_url(redis_url)
        first = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        checkpoint = None
        while time.monotonic() < deadline and first.poll() is None:
            keys = client.keys("rs-migrate:*")
            checkpoint = client.get(keys[0]) if keys else None
            if checkpoint and b'"after"' in checkpoint:
                first.send_signal(signal.SIGKILL)  # killed mid-way, with no chance to clean up
                break
            time.sleep(0.002)
        first.wait()
        assert first.returncode == -signal.SIGKILL, "the import ended before it could be killed"
        checkpoint = client.get(client.keys("rs-migrate:*")[0])  # the last one it wrote
        landed = client.zcard(f"rs:{{u:{user}}}:idx")
        assert 0 < landed < 300
        second = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr
        assert "resumed after session" in second.stderr
        after = json.loads(checkpoint or b"{}")["after"]
        copied = sum(1 for r in rows if str(r["id"]) > after)
        assert f"sessions: copied {copied}," in second.stderr
        with SessionStore(client) as store:
            assert store.check().problems == {}
            assert client.zcard(f"rs:{{u:{user}}}:idx") == 300
            for row in rows:
                messages = store.get_messages(row["id"], str(user), limit=10)
                assert [m.turn_no for m in messages] == [1, 2, 3]
        client.close()
