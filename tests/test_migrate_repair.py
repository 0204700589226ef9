"""Rows the original accepted and the store cannot hold as they are: each is repaired the way the
original's reader did, or skipped, and either way reported (issue #16)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_sessions import SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis

from .migrate_support import (
    NOW,
    PgServer,
    insert_session,
    realistic_row,
    session_rows,
    table_rows,
)

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")

from redis_sessions.migrate._export import run_export  # noqa: E402
from redis_sessions.migrate._verify import run_verify  # noqa: E402


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


def test_every_repaired_or_skipped_row_is_reported(
    pg_server: PgServer, client: Any, redis_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from redis_sessions.cli import cli

    user = uuid.uuid4()
    rows = {name: realistic_row(user, turns=2) for name in (
        "string", "no_ids", "unknown", "missing", "whole", "invalid", "too_big", "infinite",
        "messages", "folder_gone", "trimmed",
    )}  # fmt: skip
    rows["no_ids"]["context_data"].pop("session_id")
    rows["no_ids"]["context_data"].pop("user_id")
    rows["unknown"]["context_data"]["legacy_flag"] = True
    rows["missing"]["context_data"] = {"session_goal": "Only a goal", "user_id": str(user)}
    rows["whole"]["context_data"]["history"] = [{"role": "user", "content": "hi"}]
    rows["whole"]["context_data"]["whiteboard_history"] = [[{"type": "CLEAR_BOARD"}]]
    rows["invalid"]["context_data"]["user_model_state"]["concepts"]["concept-01"]["alpha"] = "many"
    rows["too_big"]["context_data"]["high_cost_calls"] = 2**60
    rows["folder_gone"]["context_data"]["folder_id"] = str(uuid.uuid4())
    rows["trimmed"] = realistic_row(user, turns=8)
    messages = rows["messages"]["messages"]
    messages[0]["turn_no"] = 0  # below 1
    messages[1]["payload"] = _deep(70)  # nested deeper than the store's MAX_DEPTH
    rows["messages"]["snaps"] = [{"index": 2, "actions": {"not": "a list"}, "created_at": NOW}]
    with pg_server.database() as source:
        with psycopg.connect(source) as conn:
            for name, row in rows.items():
                insert_session(conn, row)
                if name == "string":
                    conn.execute(
                        "UPDATE sessions SET context_data = to_jsonb(context_data::text) WHERE id = %s",
                        (row["id"],),
                    )
            conn.execute(
                "UPDATE sessions SET created_at = 'infinity' WHERE id = %s",
                (rows["infinite"]["id"],),
            )
            conn.execute(
                "UPDATE session_messages SET created_at = '-infinity' WHERE session_id = %s"
                " AND turn_no = 2",
                (rows["trimmed"]["id"],),
            )
        report = tmp_path / "report.jsonl"
        result = CliRunner().invoke(
            cli,
            ["--url", redis_url, "migrate", "import", "--postgres", source, "--report",
             str(report), "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 1, result.output  # rows were repaired or skipped
        entries = [json.loads(line) for line in report.read_text().splitlines()]
        found = {(e["table"], e["id"], e["reason"], e["action"]) for e in entries}

        def has(
            name: str, reason: str, action: str, table: str = "sessions", sub: str = ""
        ) -> None:
            ident = str(rows[name]["id"]) + (f"/{sub}" if sub else "")
            hits = [f for f in found if f[0] == table and f[1] == ident and reason in f[2]]
            assert hits and hits[0][3] == action, (name, reason, sorted(found))

        has("string", "context_data is a JSON string", "repaired")
        has("no_ids", "context_data has no session_id", "repaired")
        has("no_ids", "context_data has no user_id", "repaired")
        has("unknown", "unknown fields", "repaired")
        has("missing", "lacks fields", "repaired")
        has("whole", "whole context with history inside", "repaired")
        has("invalid", "fails validation", "skipped")
        has("invalid", "its session was skipped", "skipped", "session_messages", "1")
        has("too_big", "fails validation", "skipped")
        has("infinite", "a time out of range", "skipped")
        has("messages", "turn_no below 1", "skipped", "session_messages", "0")
        has("messages", "the store refuses the message", "skipped", "session_messages", "2")
        has("messages", "the store refuses the actions", "skipped", "whiteboard_snapshots", "2")
        has("folder_gone", "folder", "repaired")
        has("trimmed", "created_at out of range", "skipped", "session_messages", "2")
        assert "session_messages: copied" in result.output  # the summary

        with SessionStore.from_url(redis_url) as store:
            assert store.check().problems == {}
            listed = {s.session_id for s in store.list_user_sessions(str(user), limit=100)}
            skipped = {rows[n]["id"] for n in ("invalid", "too_big", "infinite")}
            assert listed == {r["id"] for r in rows.values()} - skipped
            whole = store.get_session_context(rows["whole"]["id"], str(user), history=10)
            assert whole is not None and [h["content"] for h in whole.history] == [
                m["text"] for m in rows["whole"]["messages"]
            ]  # the conversation comes from the messages table
            missing = store.get_session(rows["missing"]["id"], str(user))
            assert missing is not None and missing.context.session_goal == "Only a goal"
        verified = run_verify(source, client, StoreConfig(), progress=False)
        # what was skipped is missing from Redis: verify lists it; what was repaired compares equal
        assert verified.differences >= 3 + 2 + 1 + 1
        with pg_server.database(schema=False) as target:
            out = run_export(target, client, StoreConfig(), create_schema=True, progress=False)
            assert out.reported == 0
            back = {r[0]: json.loads(r[2]) for r in table_rows(target)["sessions"]}
            assert back[rows["string"]["id"]] == rows["string"]["context_data"]
            assert back[rows["no_ids"]["id"]]["session_id"] == str(rows["no_ids"]["id"])
            assert "legacy_flag" not in back[rows["unknown"]["id"]]
            assert "history" not in back[rows["whole"]["id"]]


def test_import_with_fewer_kept_messages_trims_like_the_store(
    pg_server: PgServer, client: Any
) -> None:
    from redis_sessions.migrate._import import run_import

    user = uuid.uuid4()
    row = realistic_row(user, turns=8)
    with pg_server.database() as source:
        with psycopg.connect(source) as conn:
            insert_session(conn, row)
        config = StoreConfig(max_messages=5)
        summary = run_import(source, client, config, progress=False)
        assert summary.skipped == {"session_messages": 3, "whiteboard_snapshots": 1}  # turn 2 drew
        with SessionStore(client, config=config) as store:
            kept = store.get_messages(row["id"], str(user), limit=5)
            assert [m.turn_no for m in kept] == [4, 5, 6, 7, 8]
            assert store.append_message(row["id"], str(user), "user", "more") == 9
            assert [m.turn_no for m in store.get_messages(row["id"], str(user), limit=5)] == [
                5, 6, 7, 8, 9,
            ]  # fmt: skip
        listing = io.StringIO()
        verified = run_verify(source, client, config, progress=False, report=listing)
        # turns 1-4 (trimmed, expected) are not differences; the session's new turn is
        lines = [json.loads(line) for line in listing.getvalue().splitlines()]
        assert sorted(e["what"] for e in lines if not e.get("expected")) == [
            "context_data.latest_turn_no: 8 != 9", "message 9: only in Redis", "updated_at",
        ]  # fmt: skip
        assert verified.differences == 3
        assert len([e for e in lines if e.get("expected")]) == 4 + 2  # turns 1-4, snapshots 2, 4


def test_export_reports_what_the_original_schema_cannot_hold(
    pg_server: PgServer, client: Any
) -> None:
    with SessionStore(client) as store:
        email = store.create_session("ada@example.com")  # user ids there are uuids
        user = str(uuid.uuid4())
        sid = store.create_session(user)
        store.append_message(sid, user, "system", "You are a tutor.")
        store.append_message(sid, user, "user", "hi")
    with pg_server.database(schema=False) as target:
        out = run_export(target, client, StoreConfig(), create_schema=True, progress=False)
        assert out.skipped == {"sessions": 1, "session_messages": 1}
        rows = table_rows(target)
        assert [r[0] for r in rows["sessions"]] == [sid]
        assert [(r[1], r[2]) for r in rows["session_messages"]] == [(2, "user")]
        assert email not in {r[0] for r in rows["sessions"]}
        with psycopg.connect(target) as conn:  # an existing table: upserts, nothing doubled
            conn.execute("UPDATE session_messages SET text = 'edited'")
        again = run_export(target, client, StoreConfig(), progress=False)
        assert again.copied["session_messages"] == 1
        assert [r[3] for r in table_rows(target)["session_messages"]] == ["hi"]


def test_a_clear_error_without_postgres_or_redis(pg_server: PgServer, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from redis_sessions.cli import cli

    runner = CliRunner()
    result = runner.invoke(
        cli, ["migrate", "import", "--postgres", "dbname=x"], env={"REDIS_SESSIONS_URL": ""}
    )
    assert result.exit_code == 2 and "--url" in result.output
    bad = f"host={tmp_path} port=1 dbname=nothing connect_timeout=2"
    result = runner.invoke(
        cli, ["--url", "redis://127.0.0.1:1/0", "migrate", "verify", "--postgres", bad]
    )
    assert result.exit_code == 3 and "PostgreSQL:" in result.output
    with pg_server.database() as source:
        down = ["--url", "redis://127.0.0.1:1/0", "migrate", "import", "--postgres", source]
        result = runner.invoke(cli, down)
        assert result.exit_code == 3
        assert result.output == (
            "Error: cannot reach Redis at redis://127.0.0.1:1/0: Error 111 connecting to"
            " 127.0.0.1:1. Connection refused.\n"
        )  # one line, worded as every other command words it


CORRUPTIONS = {
    # name: (how the row is damaged, the table and reason the report must give, its action)
    "json_string": ("sessions", "context_data is a JSON string", "repaired"),
    "no_ids": ("sessions", "context_data has no session_id", "repaired"),
    "unknown": ("sessions", "context_data has unknown fields", "repaired"),
    "whole": ("sessions", "whole context with history inside", "repaired"),
    "invalid": ("sessions", "context_data fails validation", "skipped"),
    "infinite": ("sessions", "a time out of range", "skipped"),
    "turn_zero": ("session_messages", "turn_no below 1", "skipped"),
    "deep": ("session_messages", "the store refuses the message", "skipped"),
    "not_actions": ("whiteboard_snapshots", "the store refuses the actions", "skipped"),
}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_corrupt_rows_are_each_reported_and_nothing_is_dropped_silently(
    pg_server: PgServer, client: Any, data: st.DataObject
) -> None:
    from redis_sessions.migrate._import import run_import

    user = uuid.uuid4()
    damage = data.draw(st.lists(st.sampled_from([None, *CORRUPTIONS]), min_size=1, max_size=6))
    rows = [data.draw(session_rows(user)) for _ in damage]
    for row, kind in zip(rows, damage, strict=True):
        ctx = row["context_data"]
        if kind == "no_ids":
            del ctx["session_id"], ctx["user_id"]
        elif kind == "unknown":
            ctx["legacy"] = 1
        elif kind == "whole":
            ctx["history"] = []
        elif kind == "invalid":
            ctx["max_high_cost_calls"] = "three"
        elif kind in ("turn_zero", "deep", "not_actions"):
            row["messages"].append(
                {"turn_no": 60, "role": "assistant", "text": "t", "payload": None, "wsi": 60,
                 "created_at": row["updated_at"]}
            )  # fmt: skip
            row["snaps"].append({"index": 60, "actions": [], "created_at": row["updated_at"]})
            if kind == "turn_zero":
                row["messages"][-1]["turn_no"] = 0
            elif kind == "deep":
                row["messages"][-1]["payload"] = _deep(80)
            else:
                row["snaps"][-1]["actions"] = [1, 2]
    client.flushall()
    with pg_server.database() as source:
        with psycopg.connect(source) as conn:
            for row, kind in zip(rows, damage, strict=True):
                insert_session(conn, row)
                if kind == "json_string":
                    conn.execute(
                        "UPDATE sessions SET context_data = to_jsonb(context_data::text)"
                        " WHERE id = %s",
                        (row["id"],),
                    )
                elif kind == "infinite":
                    conn.execute(
                        "UPDATE sessions SET ended_at = 'infinity' WHERE id = %s", (row["id"],)
                    )
        report = io.StringIO()
        summary = run_import(source, client, StoreConfig(), report=report, progress=False)
        entries = [json.loads(line) for line in report.getvalue().splitlines()]
        for row, kind in zip(rows, damage, strict=True):
            if kind is None:
                assert not [e for e in entries if e["id"].startswith(str(row["id"]))]
                continue
            table, reason, action = CORRUPTIONS[kind]
            hits = [
                e for e in entries if e["id"].startswith(str(row["id"])) and e["table"] == table
            ]
            assert any(reason in e["reason"] and e["action"] == action for e in hits), (kind, hits)
        # every row is accounted for: copied, or skipped and reported
        counts = {"sessions": len(rows), "session_messages": 0, "whiteboard_snapshots": 0}
        for row in rows:
            counts["session_messages"] += len(row["messages"])
            counts["whiteboard_snapshots"] += len(row["snaps"])
        for table, total in counts.items():
            copied, skipped = summary.copied.get(table, 0), summary.skipped.get(table, 0)
            assert copied + skipped == total, (table, summary)
        assert summary.reported == len(entries)
        with SessionStore(client) as store:
            assert store.check().problems == {}
