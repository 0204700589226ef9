"""The sweep as an RQ job, run by a real SimpleWorker in burst mode on a real redis-server."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from redis_sessions import InvalidInput, SessionStore, StoreConfig
from redis_sessions.cli import cli
from redis_sessions.embedded import EmbeddedRedis, free_port
from redis_sessions.worker.jobs import sweep_expired_sessions
from redis_sessions.worker.runner import WorkerOptions, make_scheduler

from .conftest import Clock

ROOT = Path(__file__).resolve().parent.parent


def in_redis(store: SessionStore, user: str, sid: str) -> bool:
    """Asked of Redis itself: this process's cache does not see another process's sweep (issue #5)."""
    return bool(store.client.exists(store.keyspace.session(user, sid)))


@pytest.fixture
def seeded(real_server: EmbeddedRedis) -> tuple[SessionStore, list[str], str, Clock]:
    # 40 days ago by the real clock, so that commands running on the real clock agree
    clock = Clock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40))
    prefix = f"rq{uuid.uuid4().hex[:6]}"
    store = SessionStore.from_url(
        real_server.url, config=StoreConfig(key_prefix=prefix), clock=clock
    )
    old = [store.create_session(f"user-{i}") for i in range(5)]
    clock.advance(days=40)
    store.create_session("fresh")
    return store, old, prefix, clock


def test_scheduled_job_runs_on_a_simple_worker(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    store, old, prefix, clock = seeded
    connection = redis.Redis.from_url(real_server.url)
    queue_name = f"q-{prefix}"
    scheduler = CronScheduler(connection=connection)
    scheduler.register(
        sweep_expired_sessions,
        queue_name=queue_name,
        interval=600,
        kwargs={"key_prefix": prefix, "now": clock.now.isoformat()},
    )
    (cron_job,) = scheduler.enqueue_jobs()  # an interval job that never ran is due at once
    queue = Queue(queue_name, connection=connection)
    (job_id,) = cron_job.get_job_ids(connection)
    SimpleWorker([queue], connection=connection).work(burst=True)
    job = queue.fetch_job(job_id)
    assert job is not None and job.is_finished
    result = job.return_value()
    assert result["deleted"] == 5 and result["dry_run"] is False
    assert not any(in_redis(store, f"user-{i}", sid) for i, sid in enumerate(old))
    assert len(store.list_user_sessions("fresh")) == 1
    connection.close()


def test_a_second_sweep_skips_while_the_lock_is_held(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    store, old, prefix, clock = seeded
    connection = redis.Redis.from_url(real_server.url)
    held = connection.lock(store.keyspace.sweep_lock(), timeout=60)
    assert held.acquire(blocking=False)
    result = sweep_expired_sessions(
        url=real_server.url, key_prefix=prefix, now=clock.now.isoformat()
    )
    assert "skipped" in result
    assert in_redis(store, "user-0", old[0])
    held.release()
    result = sweep_expired_sessions(
        url=real_server.url, key_prefix=prefix, now=clock.now.isoformat()
    )
    assert result["deleted"] == 5
    assert connection.exists(store.keyspace.sweep_lock()) == 0  # released, never left behind
    connection.close()


def test_cron_config_registers_the_sweep(
    monkeypatch: pytest.MonkeyPatch, real_server: EmbeddedRedis
) -> None:
    monkeypatch.setenv("REDIS_SESSIONS_SWEEP_INTERVAL", "120")
    monkeypatch.setenv("REDIS_SESSIONS_PREFIX", "custom")
    import sys

    monkeypatch.setenv("REDIS_SESSIONS_MAX_AGE", "14d")
    monkeypatch.setenv("REDIS_SESSIONS_BATCH_SIZE", "500")
    for path in ("redis_sessions.worker.cron_config", "workers.cron_config"):  # and the old path
        sys.modules.pop(path, None)
        scheduler = CronScheduler(connection=redis.Redis.from_url(real_server.url))
        scheduler.load_config_from_file(path)
        (job,) = scheduler.get_jobs()
        assert job.func_name == "redis_sessions.worker.jobs.sweep_expired_sessions"
        assert job.interval == 120
        assert job.kwargs == {"key_prefix": "custom", "max_age": "14d", "batch_size": 500}
        assert job.queue_name == "redis-sessions"


def test_worker_command_in_burst_mode(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    store, old, prefix, _ = seeded  # the old sessions are also older than 30 days by the real clock
    result = CliRunner().invoke(
        cli,
        [
            "--url",
            real_server.url,
            "--prefix",
            prefix,
            "worker",
            "--burst",
            "--queue",
            f"q-{prefix}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert not any(in_redis(store, f"user-{i}", sid) for i, sid in enumerate(old))


def test_scheduler_options_reach_the_job() -> None:
    connection = redis.Redis()  # never contacted: registering does no I/O
    options = WorkerOptions(
        prefix="p", queue_name="q", interval=30, max_age=dt.timedelta(days=2), batch_size=7
    )
    (job,) = make_scheduler(connection, options).get_jobs()
    assert job.kwargs == {"key_prefix": "p", "max_age": 172800.0, "batch_size": 7}
    assert job.interval == 30


def test_sweep_and_check_commands(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    store, old, prefix, _ = seeded
    base = ["--url", real_server.url, "--prefix", prefix]
    runner = CliRunner()
    dry = runner.invoke(cli, [*base, "sweep", "--dry-run"])
    assert dry.exit_code == 0 and "would delete 5 of 5" in dry.stdout
    assert in_redis(store, "user-0", old[0])
    store.client.delete(store.keyspace.session("user-1", old[1]))  # damage one session
    check = runner.invoke(cli, [*base, "check"])
    assert (
        check.exit_code == 1
        and "index entries without a record: found 1, repaired 0, left 1" in check.stdout
    )
    assert "check --repair" in check.stderr
    repaired = runner.invoke(cli, [*base, "check", "--repair"])
    assert repaired.exit_code == 0 and "repaired" in repaired.stdout
    swept = runner.invoke(cli, [*base, "sweep", "--max-age", "35d"])
    assert swept.exit_code == 0 and "deleted 4 of 4" in swept.stdout and "35d" in swept.stdout
    clean = runner.invoke(cli, [*base, "check"])
    assert clean.exit_code == 0 and "consistent" in clean.stdout


@pytest.mark.parametrize("bad", ["d", "-1d", "0s", "0", "1x", "3 days"])
def test_bad_durations_are_usage_errors(bad: str) -> None:
    result = CliRunner().invoke(cli, ["--url", "redis://127.0.0.1:1/0", "sweep", "--max-age", bad])
    assert result.exit_code == 2 and "duration" in result.stderr


def test_rq_enqueue_sets_the_max_age_and_batch_size(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    """The stock ``rq enqueue`` command line, with the job's arguments as text."""
    store, old, prefix, clock = seeded
    queue_name = f"q-{prefix}"
    rq = Path(sys.executable).parent / "rq"
    if not rq.exists():
        pytest.skip("the rq console script is not installed beside this Python")
    subprocess.run(
        [
            str(rq),
            "enqueue",
            "--url",
            real_server.url,
            "-q",
            queue_name,
            "redis_sessions.worker.jobs.sweep_expired_sessions",
            f"key_prefix={prefix}",
            "max_age=45d",  # the old sessions are 40 days idle: kept
            "batch_size=2",
            f"now={clock.now.isoformat()}",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    connection = redis.Redis.from_url(real_server.url)
    queue = Queue(queue_name, connection=connection)
    (job,) = queue.jobs
    SimpleWorker([queue], connection=connection).work(burst=True)
    result = queue.fetch_job(job.id).return_value()  # type: ignore[union-attr]
    assert result["deleted"] == 0 and result["max_age"] == "P45D"
    assert in_redis(store, "user-0", old[0])
    result = sweep_expired_sessions(
        url=real_server.url,
        key_prefix=prefix,
        max_age="35d",
        batch_size="2",
        now=clock.now.isoformat(),
    )
    assert result["deleted"] == 5 and result["batches"] >= 3  # 5 sessions, 2 per script at most
    connection.close()


def test_each_sweep_is_logged(
    real_server: EmbeddedRedis,
    seeded: tuple[SessionStore, list[str], str, Clock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, _, prefix, clock = seeded
    with caplog.at_level(logging.INFO, logger="redis_sessions.worker"):
        sweep_expired_sessions(url=real_server.url, key_prefix=prefix, now=clock.now.isoformat())
    [record] = [r for r in caplog.records if r.name == "redis_sessions.worker"]
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert "5 sessions deleted" in message and "batches" in message and " s," in message
    caplog.clear()
    with (
        caplog.at_level(logging.INFO, logger="redis_sessions.worker"),
        pytest.raises(redis.ConnectionError),
    ):
        sweep_expired_sessions(url=f"redis://127.0.0.1:{free_port()}/0", key_prefix=prefix)
    [failed] = [r for r in caplog.records if r.name == "redis_sessions.worker"]
    assert failed.levelno == logging.ERROR and "failed" in failed.getMessage()


def test_the_job_refuses_a_bad_duration() -> None:
    with pytest.raises(InvalidInput, match="max_age"):
        sweep_expired_sessions(url="redis://127.0.0.1:1/0", max_age="soon")


def test_a_stock_rq_worker_logs_each_sweep(
    real_server: EmbeddedRedis, seeded: tuple[SessionStore, list[str], str, Clock]
) -> None:
    """``rq worker`` configures only RQ's loggers: the job's own report still reaches stderr."""
    _, _, prefix, clock = seeded
    queue_name = f"q-{prefix}"
    connection = redis.Redis.from_url(real_server.url)
    Queue(queue_name, connection=connection).enqueue(
        sweep_expired_sessions, key_prefix=prefix, now=clock.now.isoformat()
    )
    rq = Path(sys.executable).parent / "rq"
    if not rq.exists():
        pytest.skip("the rq console script is not installed beside this Python")
    done = subprocess.run(
        [str(rq), "worker", "--burst", "--url", real_server.url, queue_name],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "redis_sessions.worker INFO sweep of" in done.stderr + done.stdout
    assert "5 sessions deleted" in done.stderr + done.stdout
    connection.close()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("90", 90), ("1m30s", 90), ("10m", 600), ("1d12h", 129600), ("2w", 1209600)],
)
def test_durations_read_the_same_on_the_command_line_and_in_the_job(
    text: str, seconds: int
) -> None:
    from redis_sessions._cli_format import Duration
    from redis_sessions.worker.jobs import seconds_of

    assert Duration().convert(text, None, None) == dt.timedelta(seconds=seconds)
    assert seconds_of(text, "max_age") == seconds
