"""The original backend's PostgreSQL side: its schema, and reading it as a stream of sessions.

Reading never holds more than one batch of rows per table: three server-side cursors (sessions by
id, messages by (session_id, turn_no), snapshots by (session_id, snapshot_index)), each walking an
index in order, are merged by session id, so a session comes out with its messages and snapshots.
psycopg is imported here and only here (it is the optional extra ``redis-sessions[postgres]``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import msgspec
import psycopg
import psycopg.types.json

T = TypeVar("T")

#: The original's tables (``original-postgres-schema.md``), without Supabase's ``auth.users``: there
#: ``user_id`` is a plain uuid. No ``updated_at`` trigger: the export writes the store's times.
SCHEMA_SQL = """
DO $$ BEGIN
  CREATE TYPE session_role AS ENUM ('user', 'assistant');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE IF NOT EXISTS folders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  name varchar NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  vector_store_id varchar(255),
  knowledge_base text
);
CREATE TABLE IF NOT EXISTS sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  context_data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  folder_id uuid REFERENCES folders ON DELETE SET NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  analysis_status text
);
CREATE TABLE IF NOT EXISTS session_messages (
  id bigserial PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  turn_no integer NOT NULL,
  role session_role NOT NULL,
  text text,
  payload_json jsonb,
  whiteboard_snapshot_index integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (session_id, turn_no)
);
CREATE INDEX IF NOT EXISTS session_messages_session_created
  ON session_messages (session_id, created_at);
CREATE TABLE IF NOT EXISTS whiteboard_snapshots (
  id bigserial,
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  snapshot_index integer NOT NULL,
  actions_json jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, snapshot_index)
);
CREATE INDEX IF NOT EXISTS whiteboard_snapshots_session_created
  ON whiteboard_snapshots (session_id, created_at);
"""

# Python's datetime holds years 1-9999; PostgreSQL also holds BC dates, years to 294276 and
# +-infinity. A time outside comes out as NULL plus its text in ``bad_times`` (never a failed fetch).
_LOW, _HIGH = "'0001-01-02 00:00:00+00'", "'9999-12-30 00:00:00+00'"


def _time(column: str) -> str:
    return f"CASE WHEN {column} BETWEEN {_LOW} AND {_HIGH} THEN {column} END"


def _bad_times(*columns: str) -> str:
    parts = ", ".join(
        f"CASE WHEN NOT ({c} BETWEEN {_LOW} AND {_HIGH}) THEN '{c.split('.')[-1]}=' || {c}::text END"
        for c in columns
    )
    return f"concat_ws(' ', {parts})"


SESSION_COLUMNS = (
    f"s.id, s.user_id, s.context_data, {_time('s.created_at')}, s.folder_id, "
    f"{_time('s.updated_at')}, {_time('s.ended_at')}, s.analysis_status, "
    f"{_bad_times('s.created_at', 's.updated_at', 's.ended_at')}"
)
MESSAGE_COLUMNS = (
    f"m.session_id, m.turn_no, m.role::text, m.text, m.payload_json::text, "
    f"m.whiteboard_snapshot_index, {_time('m.created_at')}, {_bad_times('m.created_at')}"
)
SNAPSHOT_COLUMNS = (
    f"w.session_id, w.snapshot_index, w.actions_json::text, {_time('w.created_at')}, "
    f"{_bad_times('w.created_at')}"
)
FOLDER_COLUMNS = (
    f"f.id, f.user_id, f.name, {_time('f.created_at')}, {_time('f.updated_at')}, "
    f"f.vector_store_id, f.knowledge_base, {_bad_times('f.created_at', 'f.updated_at')}"
)


class SessionRow(NamedTuple):
    """A ``sessions`` row (times out of Python's range are None, their text in ``bad_times``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    context_data: Any
    created_at: dt.datetime | None
    folder_id: uuid.UUID | None
    updated_at: dt.datetime | None
    ended_at: dt.datetime | None
    analysis_status: str | None
    bad_times: str


class MessageRow(NamedTuple):
    """A ``session_messages`` row (without its surrogate ``id``); ``payload_json`` is the jsonb's
    text (copied as it is when it can be: decoding and encoding it again costs more than reading)."""

    session_id: uuid.UUID
    turn_no: int
    role: str
    text: str | None
    payload_json: str | None
    whiteboard_snapshot_index: int | None
    created_at: dt.datetime | None
    bad_times: str

    @property
    def payload_json_null(self) -> bool:
        """Whether the payload is the JSON ``null`` (rather than SQL NULL)."""
        return self.payload_json == "null"


class SnapshotRow(NamedTuple):
    """A ``whiteboard_snapshots`` row (without its surrogate ``id``; ``actions_json`` as text)."""

    session_id: uuid.UUID
    snapshot_index: int
    actions_json: str
    created_at: dt.datetime | None
    bad_times: str


class FolderRow(NamedTuple):
    """A ``folders`` row."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    vector_store_id: str | None
    knowledge_base: str | None
    bad_times: str


class Bundle(NamedTuple):
    """One session as PostgreSQL holds it: its row, its messages, its snapshots (in order)."""

    session: SessionRow
    messages: list[MessageRow]
    snapshots: list[SnapshotRow]


class Orphan(NamedTuple):
    """A message or snapshot row whose session row was not in the stream (no such session)."""

    table: str
    row: MessageRow | SnapshotRow


def loads(data: bytes | str) -> Any:
    """jsonb as Python values: msgspec (fast), else the standard library (numbers msgspec refuses,
    such as 1e400, which the store then refuses in turn, with a reason)."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def connect(dsn: str) -> psycopg.Connection[Any]:
    """A connection reading times in UTC and jsonb with msgspec. Raises psycopg.OperationalError."""
    conn = psycopg.connect(dsn, autocommit=False)
    conn.execute("SET TIME ZONE 'UTC'")
    psycopg.types.json.set_json_loads(loads, conn)
    conn.commit()
    return conn


class Filter(NamedTuple):
    """Which sessions a run covers: all, or one user's, or those changed since a time; and where a
    resumed run starts (after the session id of its checkpoint)."""

    user: uuid.UUID | None = None
    since: dt.datetime | None = None
    after: uuid.UUID | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """(SQL condition on ``sessions s``, its parameters)."""
        parts: list[str] = ["TRUE"]
        params: dict[str, Any] = {}
        if self.user is not None:
            parts.append("s.user_id = %(user)s")
            params["user"] = self.user
        if self.since is not None:
            parts.append(
                "(s.updated_at >= %(since)s"
                " OR EXISTS (SELECT 1 FROM session_messages m2"
                " WHERE m2.session_id = s.id AND m2.created_at >= %(since)s)"
                " OR EXISTS (SELECT 1 FROM whiteboard_snapshots w2"
                " WHERE w2.session_id = s.id AND w2.created_at >= %(since)s))"
            )
            params["since"] = self.since
        if self.after is not None:
            parts.append("s.id > %(after)s")
            params["after"] = self.after
        return " AND ".join(parts), params

    def child_where(self, alias: str) -> tuple[str, dict[str, Any]]:
        """The condition on a child table (``session_messages`` or ``whiteboard_snapshots``)."""
        if self.user is None and self.since is None:
            if self.after is None:
                return "TRUE", {}
            return f"{alias}.session_id > %(after)s", {"after": self.after}
        where, params = self.where()
        return f"{alias}.session_id IN (SELECT s.id FROM sessions s WHERE {where})", params


def count_sessions(conn: psycopg.Connection[Any], flt: Filter) -> int:
    """How many sessions the filter covers (for the progress bar). One query."""
    where, params = flt.where()
    row = conn.execute(f"SELECT count(*) FROM sessions s WHERE {where}", params).fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def folders(conn: psycopg.Connection[Any], flt: Filter, batch: int) -> Iterator[FolderRow]:
    """The folders of the run (one user's with ``--user``; changed since, with ``--since``)."""
    parts: list[str] = ["TRUE"]
    params: dict[str, Any] = {}
    if flt.user is not None:
        parts.append("f.user_id = %(user)s")
        params["user"] = flt.user
    if flt.since is not None:
        parts.append("f.updated_at >= %(since)s")
        params["since"] = flt.since
    with conn.transaction(), conn.cursor(name="rs_folders") as cur:
        cur.itersize = batch
        cur.execute(
            f"SELECT {FOLDER_COLUMNS} FROM folders f WHERE {' AND '.join(parts)} ORDER BY f.id",
            params,
        )
        for row in cur:
            yield FolderRow(*row)


def bundles(conn: psycopg.Connection[Any], flt: Filter, batch: int) -> Iterator[Bundle | Orphan]:
    """Every session of the filter, in id order, with its messages and snapshots; and the rows of
    the child tables whose session is not there (no FK, or a session row that failed to load).
    Three server-side cursors in one read-only transaction: memory holds one batch of each."""
    where, params = flt.where()
    mwhere, mparams = flt.child_where("m")
    wwhere, wparams = flt.child_where("w")
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY, ISOLATION LEVEL REPEATABLE READ")
        with (
            conn.cursor(name="rs_sessions") as scur,
            conn.cursor(name="rs_messages") as mcur,
            conn.cursor(name="rs_snapshots") as wcur,
        ):
            for cur in (scur, mcur, wcur):
                cur.itersize = batch
            scur.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions s WHERE {where} ORDER BY s.id", params
            )
            mcur.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM session_messages m WHERE {mwhere}"
                " ORDER BY m.session_id, m.turn_no",
                mparams,
            )
            wcur.execute(
                f"SELECT {SNAPSHOT_COLUMNS} FROM whiteboard_snapshots w WHERE {wwhere}"
                " ORDER BY w.session_id, w.snapshot_index",
                wparams,
            )
            rows = max(batch, CHILD_ROWS)
            messages = _Peek(_rows(mcur, MessageRow, rows))
            snapshots = _Peek(_rows(wcur, SnapshotRow, rows))
            for row in _rows(scur, SessionRow, batch):
                key = row.id.int
                for orphan in messages.before(key):
                    yield Orphan("session_messages", orphan)
                for orphan in snapshots.before(key):
                    yield Orphan("whiteboard_snapshots", orphan)
                yield Bundle(row, messages.take(key), snapshots.take(key))
            for orphan in messages.before(None):
                yield Orphan("session_messages", orphan)
            for orphan in snapshots.before(None):
                yield Orphan("whiteboard_snapshots", orphan)


#: rows of messages (or snapshots) a fetch brings at least: a session has many, and each fetch is a
#: round trip after which the reading thread waits for the GIL (up to the switch interval, 5 ms)
CHILD_ROWS = 8192


def _rows(cursor: Any, kind: type[T], size: int) -> Iterator[T]:
    """A server-side cursor's rows as ``kind`` (a NamedTuple), ``size`` a fetch: ``fetchmany`` and
    ``tuple.__new__`` keep the per-row work in C (iterating the cursor, or ``kind(*row)``, is
    Python code for each row)."""
    make: Any = functools.partial(tuple.__new__, kind)
    while chunk := cursor.fetchmany(size):
        yield from map(make, chunk)


class _Peek:
    """A stream of child rows ordered by session id, taken one session at a time."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next: Any = next(rows, None)

    def before(self, key: int | None) -> list[Any]:
        """Rows of sessions ordered before the one whose id is ``key`` (its ``.int``; all that
        are left when None). Ids compare by their ints: as PostgreSQL orders uuids, in C."""
        out = []
        nxt = self._next
        while nxt is not None and (key is None or nxt.session_id.int < key):
            out.append(nxt)
            nxt = next(self._rows, None)
        self._next = nxt
        return out

    def take(self, key: int) -> list[Any]:
        """The rows of the session whose id is ``key`` (its ``.int``)."""
        out = []
        nxt = self._next
        while nxt is not None and nxt.session_id.int == key:
            out.append(nxt)
            nxt = next(self._rows, None)
        self._next = nxt
        return out


def prefetched(items: Iterator[T], *, chunk: int = 64, depth: int = 8) -> Iterator[T]:
    """``items``, produced in a thread of its own up to ``depth`` chunks ahead: PostgreSQL computes
    the next rows of a server-side cursor while the caller works on the last ones (psycopg waits
    without the GIL). Memory: at most ``depth`` chunks. An error in the thread is raised here;
    leaving early stops the thread."""
    box: queue.Queue[list[T] | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            out: list[T] = []
            for item in items:
                out.append(item)
                if len(out) >= chunk:
                    while not stop.is_set():
                        try:
                            box.put(out, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                    out = []
            box.put(out)
            box.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(exc)

    thread = threading.Thread(target=produce, name="redis-sessions-migrate-read", daemon=True)
    thread.start()
    try:
        while True:
            got = box.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()
        while thread.is_alive():
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                continue
        thread.join()


#: sessions between two collections of cyclic garbage while the collector is paused
COLLECT_EVERY = 20_000


@contextlib.contextmanager
def collector_paused() -> Iterator[Callable[[int], None]]:
    """Run a stream with Python's cyclic garbage collector paused; yields ``tick(sessions)``,
    which collects once every COLLECT_EVERY sessions, so memory stays flat.

    Rows, contexts and plans live a batch or two: long enough to be promoted to the oldest
    generation, whose automatic collections then scan the whole heap again and again (measured:
    about 45 % of the import's CPU, and 15 % of merely reading). The stream makes almost no cycles.
    Everything made before is frozen (``gc.freeze``) so that the periodic collections scan only what
    the stream holds. Process-wide (the collector has no other scope): the state before is
    restored on leaving."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    count = 0

    def tick(sessions: int) -> None:
        nonlocal count
        count += sessions
        if count >= COLLECT_EVERY:
            count = 0
            gc.collect()

    try:
        yield tick
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
