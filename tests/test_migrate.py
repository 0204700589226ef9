"""Migration from the original's PostgreSQL tables into the store and back (issue #16), against a
real PostgreSQL (``pg_server``, see migrate_support.py) and a real redis-server."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_sessions import SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis

from .migrate_support import NOW, PgServer, insert_session, realistic_row, session_rows, table_rows
from .reference_models import TutorContext as ReferenceContext

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")

from redis_sessions.migrate._export import run_export  # noqa: E402
from redis_sessions.migrate._import import run_import  # noqa: E402
from redis_sessions.migrate._verify import run_verify  # noqa: E402


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def client(redis_server: EmbeddedRedis, _close_stores: None) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def source(pg_server: PgServer) -> Iterator[str]:
    with pg_server.database() as dsn:
        yield dsn


def fill(dsn: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(dsn) as conn:
        for row in rows:
            insert_session(conn, row)


_open: list[SessionStore] = []


def store_on(client: Any, **config: Any) -> SessionStore:
    store = SessionStore(client, config=StoreConfig(**config))
    _open.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _open:  # before the client closes: their invalidation listeners stop
        _open.pop().close()


def test_round_trip_is_identical_and_the_store_reads_it_as_its_own(
    pg_server: PgServer, source: str, client: Any
) -> None:
    user = uuid.uuid4()
    rows = [realistic_row(user, turns=n, ago=dt.timedelta(minutes=n + 1)) for n in (0, 1, 6, 1000)]
    rows[1]["analysis_status"] = "success"
    rows[2]["ended_at"] = NOW - dt.timedelta(hours=2)
    with psycopg.connect(source) as conn:
        conn.execute(
            "INSERT INTO folders (id, user_id, name, created_at, updated_at, vector_store_id,"
            " knowledge_base) VALUES (%s, %s, 'Linear algebra', %s, %s, 'vs_1', %s),"
            " (%s, %s, 'Empty', %s, %s, NULL, NULL)",
            (
                uuid.uuid4(),
                user,
                NOW,
                NOW,
                "KEY CONCEPTS:\n- Vectors\n",
                uuid.uuid4(),
                user,
                NOW,
                NOW,
            ),
        )
        folder = conn.execute("SELECT id FROM folders WHERE name = 'Linear algebra'").fetchone()
        rows[2]["folder_id"] = folder[0]
        rows[2]["context_data"]["folder_id"] = str(folder[0])
        for row in rows:
            insert_session(conn, row)
    summary = run_import(source, client, StoreConfig(), progress=False)
    assert summary.reported == 0 and summary.expired == 0
    assert summary.copied["sessions"] == 4 and summary.copied["session_messages"] == 1007

    store = store_on(client)
    report = store.check()
    assert report.problems == {} and report.unknown_keys == 0
    listed = store.list_user_sessions(str(user), limit=10)
    assert [s.session_id for s in listed] == [r["id"] for r in rows]  # newest updated_at first
    assert [s.updated_at for s in listed] == [r["updated_at"] for r in rows]
    big = rows[3]
    session = store.get_session(big["id"], str(user))
    assert session is not None and session.created_at == big["created_at"]
    assert session.context.latest_turn_no == 1000
    messages = store.get_messages(big["id"], str(user), limit=50)
    assert [m.turn_no for m in messages] == list(range(951, 1001))
    assert [m.text for m in messages] == [m["text"] for m in big["messages"][950:]]
    assert [m.created_at for m in messages] == [m["created_at"] for m in big["messages"][950:]]
    board = store.get_whiteboard_state(big["id"], str(user), target_snapshot_index=10)
    assert board == [a for w in big["snaps"] if w["index"] <= 10 for a in w["actions"]]
    assert store.get_session(rows[2]["id"], str(user)).folder_id == folder[0]  # type: ignore[union-attr]

    with pg_server.database(schema=False) as target:
        out = run_export(target, client, StoreConfig(), create_schema=True, progress=False)
        assert out.reported == 0
        before = table_rows(source)
        assert table_rows(target) == before
        with psycopg.connect(target) as conn:
            for (data,) in conn.execute("SELECT context_data FROM sessions"):
                ReferenceContext.model_validate(data)  # the original's models read it
        # the store carries on where the original stopped; the rollback takes the new turn along
        assert store.append_message(big["id"], str(user), "user", "next") == 1001
        run_export(target, client, StoreConfig(), progress=False)
        after = table_rows(target)
        assert len(after["session_messages"]) == len(before["session_messages"]) + 1
        assert (big["id"], 1001, "user", "next") in [r[:4] for r in after["session_messages"]]
    store.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_data_round_trips_column_for_column(
    pg_server: PgServer, client: Any, data: st.DataObject
) -> None:
    users = [uuid.uuid4() for _ in range(2)]
    rows = [data.draw(session_rows(users[i % 2])) for i in range(data.draw(st.integers(1, 4)))]
    client.flushall()
    with pg_server.database() as source, pg_server.database(schema=False) as target:
        fill(source, rows)
        summary = run_import(source, client, StoreConfig(), progress=False)
        assert summary.reported == 0, summary
        with store_on(client) as store:
            assert store.check().problems == {}
        verified = run_verify(source, client, StoreConfig(), progress=False)
        assert verified.differences == 0
        run_export(target, client, StoreConfig(), create_schema=True, progress=False)
        assert table_rows(target) == table_rows(source)


def test_verify_lists_a_planted_difference_and_exits_1(source: str, client: Any) -> None:
    from click.testing import CliRunner

    from redis_sessions.cli import cli

    user = uuid.uuid4()
    rows = [realistic_row(user, turns=4) for _ in range(3)]
    fill(source, rows)
    runner = CliRunner()
    url = client.connection_pool.connection_kwargs
    base = ["--url", f"redis://{url['host']}:{url['port']}/0", "migrate"]
    result = runner.invoke(cli, [*base, "import", "--postgres", source, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, [*base, "verify", "--postgres", source]).exit_code == 0
    with psycopg.connect(source) as conn:
        conn.execute(
            "UPDATE session_messages SET text = 'changed' WHERE session_id = %s AND turn_no = 2",
            (rows[1]["id"],),
        )
    store = store_on(client)
    ctx = store.get_session_context(rows[2]["id"], str(user))
    assert ctx is not None
    ctx.session_goal = "another goal"
    store.update_session_context(rows[2]["id"], str(user), ctx)
    store.close()
    after = ["migrate", "verify", "--url", base[1], "--postgres", source, "--no-progress"]
    result = runner.invoke(cli, after)  # --url after the subcommand, as for every command
    assert result.exit_code == 1
    assert f"session {rows[1]['id']}: message 2: text" in result.output
    assert f"session {rows[2]['id']}: context_data.session_goal" in result.output
    assert f"session {rows[2]['id']}: updated_at" in result.output
    assert str(rows[0]["id"]) not in result.output


def test_an_interrupted_import_resumes_without_duplicates(
    source: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis_sessions.migrate import _write

    user = uuid.uuid4()
    rows = [realistic_row(user, turns=3, ago=dt.timedelta(minutes=i + 1)) for i in range(25)]
    fill(source, rows)
    real = _write.Writer.sessions
    calls = {"n": 0}

    def dies_on_the_third_batch(self: Any, plans: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed mid-way
        real(self, plans)

    monkeypatch.setattr(_write.Writer, "sessions", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run_import(source, client, StoreConfig(), batch_size=5, progress=False)
    monkeypatch.setattr(_write.Writer, "sessions", real)
    store = store_on(client)
    assert len(store.list_user_sessions(str(user), limit=100)) == 10  # two batches landed
    resumed = run_import(source, client, StoreConfig(), batch_size=5, progress=False)
    assert resumed.resumed_after is not None
    assert resumed.copied["sessions"] == 15
    assert len(store.list_user_sessions(str(user), limit=100)) == 25
    for row in rows:
        messages = store.get_messages(row["id"], str(user), limit=100)
        assert [m.turn_no for m in messages] == [1, 2, 3]
    before = _dump(client)
    again = run_import(source, client, StoreConfig(), batch_size=5, progress=False)
    assert again.already_complete and again.copied == {}
    assert _dump(client) == before  # a finished import run again changes nothing

    def flushed_on_the_second_batch(self: Any, plans: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # as if the server restarted: the writer loads its scripts again
            client.script_flush()
        real(self, plans)

    calls["n"] = 0
    monkeypatch.setattr(_write.Writer, "sessions", flushed_on_the_second_batch)
    redo = run_import(source, client, StoreConfig(), batch_size=5, restart=True, progress=False)
    assert calls["n"] >= 3  # the flush happened mid-run
    assert redo.copied["sessions"] == 25
    assert _dump(client, checkpoints=False) == _dump(before, checkpoints=False)
    assert run_verify(source, client, StoreConfig(), progress=False).differences == 0
    assert store.check().problems == {}
    store.close()


def _dump(client: Any, *, checkpoints: bool = True) -> dict[bytes, Any]:
    """Every key's content (a dict already made is filtered only)."""
    if isinstance(client, dict):
        out = client
    else:
        out = {}
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"hash":  # without ttl_until: when the TTL runs out moves with the clock
                out[key] = {k: v for k, v in client.hgetall(key).items() if k != b"ttl_until"}
            elif kind == b"zset":
                out[key] = client.zrange(key, 0, -1, withscores=True)
            else:
                out[key] = client.get(key)
    return {k: v for k, v in out.items() if checkpoints or b"-migrate:" not in k}


def test_user_since_and_dry_run_select_what_is_copied(
    pg_server: PgServer, source: str, client: Any
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    old = [
        realistic_row(alice, ago=dt.timedelta(days=3)),
        realistic_row(bob, ago=dt.timedelta(days=3)),
    ]
    fill(source, old)
    dry = run_import(source, client, StoreConfig(), dry_run=True, progress=False)
    assert dry.copied["sessions"] == 2 and client.dbsize() == 0
    only = run_import(source, client, StoreConfig(), user=alice, progress=False)
    assert only.copied["sessions"] == 1
    store = store_on(client)
    assert store.list_user_sessions(str(bob)) == []
    cutover = NOW - dt.timedelta(days=1)
    fresh = realistic_row(bob, ago=dt.timedelta(hours=1))
    fill(source, [fresh])
    delta = run_import(source, client, StoreConfig(), since=cutover, progress=False)
    assert delta.copied["sessions"] == 1
    assert [s.session_id for s in store.list_user_sessions(str(bob))] == [fresh["id"]]
    assert run_verify(source, client, StoreConfig(), since=cutover, progress=False).differences == 0
    everything = run_verify(source, client, StoreConfig(), progress=False)
    assert everything.differences == 1  # bob's old session: --user alice left it out
    with pg_server.database(schema=False) as target:
        dry_export = run_export(
            target, client, StoreConfig(), create_schema=True, dry_run=True, progress=False
        )
        assert dry_export.copied["sessions"] == 2
        with psycopg.connect(target) as conn:  # nothing written, not even the schema
            assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)
        run_export(
            target, client, StoreConfig(), user=str(alice), create_schema=True, progress=False
        )
        assert [r[0] for r in table_rows(target)["sessions"]] == [old[0]["id"]]
    store.close()


def test_sessions_idle_past_max_age_are_counted_not_imported(source: str, client: Any) -> None:
    user = uuid.uuid4()
    live, stale = realistic_row(user), realistic_row(user, ago=dt.timedelta(days=45))
    fill(source, [live, stale])
    report = io.StringIO()
    summary = run_import(source, client, StoreConfig(), report=report, progress=False)
    assert summary.expired == 1 and summary.copied["sessions"] == 1
    line = json.loads(report.getvalue().splitlines()[0])
    assert line["id"] == str(stale["id"]) and line["action"] == "expired"
    store = store_on(client)
    assert [s.session_id for s in store.list_user_sessions(str(user))] == [live["id"]]
    # the idle clock starts at updated_at: the sweeper deletes the session when that is max_age old
    later = live["updated_at"] + dt.timedelta(days=30, seconds=1)
    assert store.cleanup_expired_sessions(now=later).deleted == 1
    verified = run_verify(source, client, StoreConfig(), progress=False, now=later)
    assert verified.expired == 2 and verified.differences == 0
    store.close()


class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(
    tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis_sessions.migrate._report import Progress

    err = _Terminal(tty)
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress("import", 10, every=0.0)
    bar._last -= 1  # as if the last line were a second old
    bar.advance(4)
    bar.finish()
    out = err.getvalue()
    if tty:
        assert out.startswith("\rimport [############------------------] 4/10") and "ETA" in out
        assert out.endswith("\n") and out.count("\r") == 2
    else:
        assert out.splitlines()[0].startswith("import: 4/10 sessions, ") and "ETA" in out
