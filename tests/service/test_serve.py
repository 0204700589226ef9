"""``redis-sessions serve``: refuses to start without a Redis URL, says so loudly on the embedded
throwaway server and in no-auth mode, and serves the app on uvicorn as its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

pytest.importorskip("uvicorn", reason="needs the http extra: pip install '.[http]'")

from redis_sessions.cli import cli
from redis_sessions.embedded import EmbeddedRedis, free_port

from .support import SECRET, bearer, token

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {
    "REDIS_URL": "",
    "REDIS_SESSIONS_URL": "",
    "REDIS_SESSIONS_JWT_SECRET": "",
    "REDIS_SESSIONS_JWKS_URL": "",
}


def run(*args: str, **env: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={**CLEAN_ENV, **env})


def test_serve_refuses_to_start_without_a_url() -> None:
    result = run("serve", "--jwt-secret", SECRET)
    assert result.exit_code == 2
    assert "REDIS_SESSIONS_URL" in result.output and "--embedded" in result.output


def test_serve_refuses_contradictions_and_bad_auth() -> None:
    both = run("serve", "--url", "redis://127.0.0.1:1/0", "--embedded", "--jwt-secret", SECRET)
    assert both.exit_code == 2 and "not both" in both.output
    no_key = run("serve", "--url", "redis://127.0.0.1:1/0")
    assert no_key.exit_code == 2 and "JWT secret" in no_key.output
    bad_claim = run(
        "serve", "--url", "redis://127.0.0.1:1/0", "--jwt-secret", SECRET, "--admin-claim", "admin"
    )
    assert bad_claim.exit_code == 2 and "claim=value" in bad_claim.output


def _request(
    method: str, url: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Served:
    def __init__(self, process: subprocess.Popen[str], base: str) -> None:
        self.process = process
        self.base = base

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if _request("GET", f"{self.base}/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=30)
        return err


@pytest.fixture
def serve_process() -> Iterator[Any]:
    started: list[Served] = []

    def start(*args: str, **env: str) -> Served:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "redis_sessions.cli", "serve", "--port", str(port), *args],
            cwd=ROOT,
            env={**os.environ, **CLEAN_ENV, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(process, f"http://127.0.0.1:{port}")
        started.append(served)
        served.wait_ready()
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.communicate()


def test_serve_runs_the_service_on_uvicorn(serve_process: Any) -> None:
    with EmbeddedRedis() as server:
        served = serve_process(
            "--url", server.url, "--workers", "2", "--no-access-log",
            REDIS_SESSIONS_JWT_SECRET=SECRET,
        )  # fmt: skip
        alice = bearer(token("alice"))
        assert _request("GET", f"{served.base}/readyz") == (200, {"status": "ready"})
        status, body = _request("POST", f"{served.base}/sessions", alice, {"context": {}})
        assert status == 201
        sid = body["session_id"]
        for _ in range(4):  # whichever worker answers, the same data
            status, got = _request("GET", f"{served.base}/sessions/{sid}", alice)
            assert status == 200 and got["user_id"] == "alice"
        assert _request("GET", f"{served.base}/sessions")[0] == 401
        assert _request("GET", f"{served.base}/openapi.json")[0] == 200
        served.stop()
        assert served.process.returncode == 0


def test_serve_embedded_and_no_auth_say_so_loudly(serve_process: Any) -> None:
    served = serve_process("--embedded", "--insecure-no-auth")
    status, _ = _request("POST", f"{served.base}/sessions", {}, {})
    assert status == 201
    listed = _request("GET", f"{served.base}/sessions")[1]["sessions"]
    assert [row["user_id"] for row in listed] == ["dev"]
    err = served.stop()
    assert "EMBEDDED THROWAWAY" in err and "LOST" in err
    assert "--insecure-no-auth" in err and "authentication is OFF" in err
    # SIGTERM (as a process manager stops it) stops the embedded server too
    match = re.search(r"port (\d+)\)", err)
    assert match is not None, err
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=int(match.group(1)), socket_connect_timeout=1).ping()
    assert served.process.returncode == 128 + signal.SIGTERM
