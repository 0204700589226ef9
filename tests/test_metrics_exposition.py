"""Where metrics are scraped: several worker processes of a service (prometheus multiprocess mode),
an ASGI app mounted at /metrics, and the RQ worker's metrics port (its jobs run in forked processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from redis_sessions import SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.observability.metrics import METRICS, metrics_app, render_latest

from .test_metrics import Scraped

ROOT = Path(__file__).resolve().parent.parent

# One "service worker process": a store observed into prometheus-client's default registry, which
# multiprocess mode backs with files in PROMETHEUS_MULTIPROC_DIR.
SERVICE_WORKER = """
import sys
from redis_sessions import SessionStore, StoreConfig
from redis_sessions.observability.metrics import PrometheusObserver

url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix), observer=PrometheusObserver())
for _ in range(count):
    sid = store.create_session("alice")
    store.get_session(sid, "alice")
    store.get_session("00000000-0000-4000-8000-000000000000", "alice")
store.close()
"""


def run(code: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_scrape_adds_up_every_process_of_a_service(
    real_server: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"mp{uuid.uuid4().hex[:8]}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in ("3", "4"):  # two worker processes, one after the other (they exit: files stay)
        run(SERVICE_WORKER, real_server.url, prefix, count, env=env)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body, content_type = render_latest()
    assert content_type.startswith("text/plain")
    got = Scraped(body.decode())
    ops = "redis_sessions_operations_total"
    assert got(ops, operation="create_session", outcome="ok") == 7
    assert got(ops, operation="get_session", outcome="ok") == 7
    assert got(ops, operation="get_session", outcome="not_found") == 7
    assert got("redis_sessions_cache_hits_total") == 7  # each create cached what it wrote
    assert got("redis_sessions_cache_misses_total") == 7
    assert got("redis_sessions_operation_duration_seconds_count", operation="get_session") == 14
    assert got("redis_sessions_script_duration_seconds_count", script="create") == 7


def test_the_asgi_app_serves_the_metrics_at_a_mount(real_server: EmbeddedRedis) -> None:
    fastapi = pytest.importorskip("fastapi", reason="FastAPI is not installed")
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from redis_sessions.observability.metrics import PrometheusObserver

    registry = CollectorRegistry()
    prefix = f"asgi{uuid.uuid4().hex[:8]}"
    # the README's three lines
    app = fastapi.FastAPI()
    store = SessionStore.from_url(
        real_server.url,
        config=StoreConfig(key_prefix=prefix),
        observer=PrometheusObserver(registry),
    )
    app.mount("/metrics", metrics_app(registry))
    try:
        store.create_session("alice")
        with TestClient(app) as client:
            response = client.get("/metrics/")
    finally:
        store.close()
    assert response.status_code == 200
    got = Scraped(response.text)
    assert got("redis_sessions_operations_total", operation="create_session", outcome="ok") == 1


# The RQ worker's --metrics-port, as the worker runs it: serve_worker_metrics before anything imports
# prometheus_client, then RQ's Worker, which forks a process ("work horse") for each job. After the
# sweep job, a scrape of the port (here: by the worker process itself) must show that sweep.
RQ_WORKER = """
import sys, urllib.request
from redis_sessions.observability import serve_worker_metrics
server = serve_worker_metrics(0, addr="127.0.0.1")

import redis
from rq import Queue, Worker
from workers.sweeper import sweep_expired_sessions

url, prefix, now = sys.argv[1], sys.argv[2], sys.argv[3]
connection = redis.Redis.from_url(url)
queue = Queue(f"q-{prefix}", connection=connection)
queue.enqueue(sweep_expired_sessions, url=url, key_prefix=prefix, now=now)
Worker([queue], connection=connection).work(burst=True)
port = server.server_port
print("--- scrape ---")  # RQ logs to stdout too
print(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
server.shutdown()
"""


def test_the_worker_metrics_port_shows_the_sweeps_of_its_forked_jobs(
    real_server: EmbeddedRedis, tmp_path: Path
) -> None:
    pytest.importorskip("rq", reason="RQ is not installed")
    prefix = f"rq{uuid.uuid4().hex[:8]}"
    with SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix)) as store:
        for user in ("alice", "bob", "carol"):
            store.create_session(user)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    text = run(RQ_WORKER, real_server.url, prefix, "2099-01-01T00:00:00+00:00", env=env)
    text = text.split("--- scrape ---\n", 1)[1]
    got = Scraped(text)
    assert got("redis_sessions_sweeps_total") == 1
    assert got("redis_sessions_sweep_deleted_sessions_total") == 3
    assert got("redis_sessions_sweep_duration_seconds_count") == 1
    ops = "redis_sessions_operations_total"
    assert got(ops, operation="cleanup_expired_sessions", outcome="ok") == 1
    assert got("redis_sessions_last_sweep_timestamp_seconds") > 0
    # the label-free metrics are there from the start (at 0 when nothing happened)
    plain = [i for i in METRICS if not i.labels and i.kind != "histogram"]
    assert all((info.name, frozenset()) in got.samples for info in plain)
    assert got("redis_sessions_listener_reconnects_total") == 0
