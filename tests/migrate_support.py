"""PostgreSQL for the migration tests, and the original's data to fill it with.

``pg_server``: a throwaway PostgreSQL for the test session, from the ``pgserver`` package (it bundles
PostgreSQL; as root it runs it as a ``pgserver`` system user), listening on a Unix socket in a
temporary folder, never on a port. ``REDIS_SESSIONS_TEST_PG_DSN`` may point at an existing server
instead: then each test creates its own database there and drops it after, touching nothing else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from redis_sessions.migrate._shape import full_dump
from redis_sessions.models import TutorContext, UserConceptMastery, UserModelState
from redis_sessions.samples import chat_turn, realistic_context

ENV_DSN = "REDIS_SESSIONS_TEST_PG_DSN"


class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    @contextlib.contextmanager
    def database(self, schema: bool = True) -> Iterator[str]:
        """A new database (with the original's schema), dropped afterwards; yields its DSN."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        from redis_sessions.migrate._pg import SCHEMA_SQL

        name = f"rs_migrate_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        dsn = make_conninfo(self.admin_dsn, dbname=name)
        try:
            if schema:
                with psycopg.connect(dsn) as conn:
                    conn.execute(SCHEMA_SQL)
            yield dsn
        finally:
            with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL (see the module docstring); skips when none can be had."""
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")
    existing = os.environ.get(ENV_DSN)
    if existing:
        yield PgServer(existing)
        return
    pgserver = pytest.importorskip("pgserver", reason=f"no pgserver package and no ${ENV_DSN}")
    # its INFO lines ("exiting ... remaining pids") come from a thread after pytest has closed the
    # streams, as a "Logging error" traceback at the end of every run
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    folder = tempfile.mkdtemp(prefix="rs-pg-")
    os.chmod(folder, 0o777)  # as root, pgserver runs postgres as its own system user
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield PgServer(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- data

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=123456)


def lean(context: TutorContext) -> dict[str, Any]:
    """The original's ``context_data``: pydantic's JSON-mode dump without the bulky fields."""
    data: dict[str, Any] = full_dump(context)
    return data


def insert_session(conn: Any, row: dict[str, Any]) -> None:
    """Insert a session and its messages and snapshots (dicts with the tables' columns)."""
    from psycopg.types.json import Jsonb

    conn.execute(
        "INSERT INTO sessions (id, user_id, context_data, created_at, folder_id, updated_at,"
        " ended_at, analysis_status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            row["id"], row["user_id"], Jsonb(row["context_data"]), row["created_at"],
            row.get("folder_id"), row["updated_at"], row.get("ended_at"),
            row.get("analysis_status"),
        ),
    )  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO session_messages (session_id, turn_no, role, text, payload_json,"
            " whiteboard_snapshot_index, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    row["id"], m["turn_no"], m["role"], m["text"],
                    Jsonb(m["payload"]) if m["payload"] is not _SQL_NULL else None,
                    m["wsi"], m["created_at"],
                )
                for m in row["messages"]
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO whiteboard_snapshots (session_id, snapshot_index, actions_json,"
            " created_at) VALUES (%s, %s, %s, %s)",
            [(row["id"], w["index"], Jsonb(w["actions"]), w["created_at"]) for w in row["snaps"]],
        )


_SQL_NULL: Any = object()
SQL_NULL = _SQL_NULL


def realistic_row(
    user_id: uuid.UUID, *, turns: int = 4, ago: dt.timedelta = dt.timedelta(hours=1)
) -> dict[str, Any]:
    """A session as the original wrote it: lean context, user and assistant turns, snapshots."""
    sid = uuid.uuid4()
    context = realistic_context(str(user_id), sid)
    context.latest_turn_no = turns
    updated = NOW - ago
    messages, snaps = [], []
    for turn in range(1, turns + 1):
        role, text, actions = chat_turn(turn)
        at = updated - dt.timedelta(seconds=turns - turn)
        messages.append(
            {
                "turn_no": turn, "role": role, "text": text,
                "payload": {"tool": "explain", "turn": turn} if role == "assistant" else SQL_NULL,
                "wsi": turn if actions else None, "created_at": at,
            }
        )  # fmt: skip
        if actions:
            snaps.append({"index": turn, "actions": actions, "created_at": at})
            context.latest_snapshot_index = turn
    return {
        "id": sid, "user_id": user_id, "context_data": lean(context),
        "created_at": updated - dt.timedelta(days=1), "updated_at": updated,
        "messages": messages, "snaps": snaps,
    }  # fmt: skip


# Text PostgreSQL can hold (no NUL) in any script.
texts = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40
)
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(-1e9, 1e9, allow_nan=False) | texts
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
times = st.datetimes(
    min_value=dt.datetime(2026, 1, 1),
    max_value=dt.datetime(2026, 1, 20),
    timezones=st.just(dt.timezone.utc),
).map(lambda t: t + (NOW - dt.datetime(2026, 1, 21, tzinfo=dt.timezone.utc)))


@st.composite
def session_rows(draw: st.DrawFn, user_id: uuid.UUID) -> dict[str, Any]:
    """A generated session the store can hold as it is: unicode everywhere, nulls where the
    columns allow them, free-form JSON payloads, 0 to 12 messages."""
    sid = uuid.uuid4()
    concepts = draw(st.dictionaries(texts, st.integers(1, 50), max_size=3))
    context = TutorContext(
        user_id=str(user_id), session_id=sid, state=draw(st.none() | texts),
        session_goal=draw(st.none() | texts),
        interaction_mode=draw(st.sampled_from(["chat_only", "chat_and_whiteboard"])),
        user_model_state=UserModelState(
            concepts={k: UserConceptMastery(alpha=v, attempts=v) for k, v in concepts.items()},
            overall_progress=draw(st.floats(0, 1)),
            session_summary_notes=draw(st.lists(texts, max_size=3)),
        ),
        last_event=draw(st.none() | st.dictionaries(texts, json_values, max_size=3)),
        high_cost_calls=draw(st.integers(0, 2**53 - 1)),
    )  # fmt: skip
    created = draw(times)
    count = draw(st.integers(0, 12))
    turn_numbers = sorted(draw(st.sets(st.integers(1, 40), min_size=count, max_size=count)))
    messages, snaps = [], []
    for turn in turn_numbers:
        at = draw(times)
        wsi = draw(st.sampled_from([None, turn, turn, turn + 100]))
        messages.append(
            {
                "turn_no": turn, "role": draw(st.sampled_from(["user", "assistant"])),
                "text": draw(st.none() | texts),
                "payload": draw(st.just(SQL_NULL) | json_values), "wsi": wsi, "created_at": at,
            }
        )  # fmt: skip
        if wsi == turn:
            actions = draw(st.lists(st.dictionaries(texts, json_values, max_size=3), max_size=3))
            snap_at = draw(st.just(at) | times)
            snaps.append({"index": turn, "actions": actions, "created_at": snap_at})
    context.latest_turn_no = max(turn_numbers, default=0)
    return {
        "id": sid, "user_id": user_id, "context_data": lean(context), "created_at": created,
        "updated_at": max([created, *(m["created_at"] for m in messages)]),
        "ended_at": draw(st.none() | times), "analysis_status": draw(
            st.sampled_from([None, "processing", "success", "failed"])
        ), "messages": messages, "snaps": snaps,
    }  # fmt: skip


TABLE_COLUMNS = {
    "folders": "id, user_id, name, created_at, updated_at, vector_store_id, knowledge_base",
    "sessions": "id, user_id, context_data::text, created_at, folder_id, updated_at, ended_at,"
    " analysis_status",
    "session_messages": "session_id, turn_no, role::text, text, payload_json::text,"
    " whiteboard_snapshot_index, created_at",
    "whiteboard_snapshots": "session_id, snapshot_index, actions_json::text, created_at",
}


def table_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the four tables, column for column (jsonb as PostgreSQL's canonical text;
    without the surrogate ``id`` of messages and snapshots), in key order."""
    import psycopg

    out = {}
    with psycopg.connect(dsn) as conn:
        for table, columns in TABLE_COLUMNS.items():
            first = columns.split(",")[0]
            second = columns.split(",")[1]
            out[table] = conn.execute(
                f"SELECT {columns} FROM {table} ORDER BY {first}, {second}"
            ).fetchall()
    return out
