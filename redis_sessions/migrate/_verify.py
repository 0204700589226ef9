"""``migrate verify``: both sides compared session by session; every difference listed.

PostgreSQL's sessions are streamed (as the import reads them) and each batch's Redis copies are read
in one pipelined round trip; then Redis is SCANned for sessions PostgreSQL lacks (one query per
batch). Contexts are compared canonically: PostgreSQL's ``context_data`` read as the import reads it
(a JSON string parsed, ids from the row, defaults filled) against the store's context in the
original's full form. Messages and snapshots are compared by content: every column but the
surrogate ``id``.

Not differences (listed with ``expected``, not counted): a session idle past the store's max age
that Redis lacks (the import leaves it out, as the sweeper would delete it), and messages or
snapshots older than the store keeps (``max_messages``) that Redis lacks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import IO, Any

from ..codec import utc_now
from ..config import StoreConfig
from ..keys import KeySpace
from . import _pg
from ._fromredis import SessionOut, read_sessions, scan
from ._report import Progress, Reporter, Summary
from ._shape import differences, full_dump, read_context

Echo = Callable[[str], None]


def run_verify(
    dsn: str,
    client: Any,
    config: StoreConfig,
    *,
    user: uuid.UUID | None = None,
    since: dt.datetime | None = None,
    batch_size: int = 500,
    report: IO[str] | None = None,
    echo: Echo | None = None,
    progress: bool = True,
    now: dt.datetime | None = None,
) -> Summary:
    """Compare PostgreSQL and the store; ``summary.differences`` counts what differs."""
    started = utc_now()
    moment = now or started
    summary = Summary(command="verify")
    reporter = Reporter(summary, report)
    keys = KeySpace(config.key_prefix)
    flt = _pg.Filter(user=user, since=since)

    def differ(
        sid: str, what: str, pg: Any = None, rd: Any = None, *, expected: bool = False
    ) -> None:
        entry = {"session": sid, "what": what, "postgres": _text(pg), "redis": _text(rd)}
        if expected:
            entry["expected"] = True
        else:
            summary.differences += 1
            if echo is not None:
                tail = (
                    f": postgres {entry['postgres']} / redis {entry['redis']}"
                    if pg is not None or rd is not None
                    else ""
                )
                echo(f"session {sid}: {what}{tail}")
        reporter.write(entry)

    with _pg.connect(dsn) as conn:
        bar = Progress("verify", _pg.count_sessions(conn, flt), enabled=progress)
        batch: list[_pg.Bundle] = []

        def flush() -> None:
            ids = [(str(b.session.user_id), str(b.session.id)) for b in batch]
            for bundle, copy in zip(batch, read_sessions(client, keys, ids), strict=True):
                _compare(
                    bundle=bundle,
                    copy=copy,
                    config=config,
                    now=moment,
                    differ=differ,
                    summary=summary,
                )
            bar.advance(len(batch))
            batch.clear()

        for item in _pg.bundles(conn, flt, batch_size):
            if isinstance(item, _pg.Orphan):
                differ(
                    str(item.row.session_id), f"{item.table} row {item.row[1]} has no session row"
                )
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
        bar.finish()
        for ids in scan(client, keys, "record", str(user) if user else None, batch_size):
            _redis_only(conn=conn, client=client, keys=keys, ids=ids, since=since, differ=differ)
    summary.seconds = (utc_now() - started).total_seconds()
    return summary


def _redis_only(
    *,
    conn: Any,
    client: Any,
    keys: KeySpace,
    ids: list[tuple[str, str]],
    since: dt.datetime | None,
    differ: Any,
) -> None:
    wanted = []
    for _, sid in ids:
        try:
            wanted.append(uuid.UUID(sid))
        except ValueError:  # pragma: no cover - classify keeps canonical UUIDs only
            continue
    found = {
        row[0] for row in conn.execute("SELECT id FROM sessions WHERE id = ANY(%s)", (wanted,))
    }
    conn.commit()
    missing = [(u, s) for u, s in ids if uuid.UUID(s) not in found]
    if not missing:
        return
    pipe = client.pipeline(transaction=False)
    for u, s in missing:
        pipe.hget(keys.session(u, s), "updated_at")
    for (u, s), updated in zip(missing, pipe.execute(raise_on_error=False), strict=True):
        if (
            since is not None
            and isinstance(updated, bytes)
            and dt.datetime.fromisoformat(updated.decode()) < since
        ):
            continue
        differ(s, f"only in Redis (user {u})")


def _compare(
    *,
    bundle: _pg.Bundle,
    copy: SessionOut | Any,
    config: StoreConfig,
    now: dt.datetime,
    differ: Any,
    summary: Summary,
) -> None:
    row = bundle.session
    sid = str(row.id)
    if not isinstance(copy, SessionOut):
        if copy is not None:  # an Issue: Redis holds it, but it cannot be read
            differ(sid, f"unreadable in Redis: {copy.reason}", rd=copy.detail)
            return
        last = row.updated_at
        if last is not None:
            age = config.ended_age if row.ended_at is not None else config.max_age
            if now - last > age:
                summary.expired += 1
                differ(
                    sid,
                    "only in PostgreSQL: idle past max age (the sweeper would delete it)",
                    expected=True,
                )
                return
        differ(sid, "only in PostgreSQL")
        return
    for name, pg, rd in (
        ("user_id", row.user_id, copy.user_id),
        ("created_at", row.created_at, copy.created_at),
        ("updated_at", row.updated_at, copy.updated_at),
        ("ended_at", row.ended_at, copy.ended_at),
        ("folder_id", row.folder_id, copy.folder_id),
        ("analysis_status", row.analysis_status, copy.analysis_status),
    ):
        if pg != rd:
            differ(sid, name, pg, rd)
    context, _ = read_context(
        row.context_data, session_id=row.id, user_id=str(row.user_id), folder_id=row.folder_id
    )
    if context is None:
        differ(sid, "context_data: unreadable in PostgreSQL", row.context_data, copy.context_data)
    else:
        for path in differences(full_dump(context), copy.context_data, "context_data"):
            differ(sid, path)
    # what the store trimmed: turns at or below the newest turn of either side less max_messages
    top = max([m.turn_no for m in bundle.messages] + [m.turn_no for m in copy.messages], default=0)
    floor = top - config.max_messages
    theirs = {m.turn_no: m for m in copy.messages}
    for m in bundle.messages:
        got = theirs.pop(m.turn_no, None)
        ident = f"message {m.turn_no}"
        if got is None:
            differ(sid, f"{ident}: only in PostgreSQL", expected=m.turn_no <= floor)
            continue
        pg_row = (
            m.role,
            m.text,
            bool(m.payload_json_null),
            m.whiteboard_snapshot_index,
            m.created_at,
        )
        rd_row = (
            got.role,
            got.text,
            got.payload_json_null,
            got.whiteboard_snapshot_index,
            got.created_at,
        )
        for name, a, b in zip(
            ("role", "text", "payload_json null", "whiteboard_snapshot_index", "created_at"),
            pg_row,
            rd_row,
            strict=True,
        ):
            if a != b:
                differ(sid, f"{ident}: {name}", a, b)
        pg_payload = _pg.loads(m.payload_json) if m.payload_json is not None else None
        for path in differences(pg_payload, got.payload_json, f"{ident}: payload_json"):
            differ(sid, path)
    for turn in theirs:
        differ(sid, f"message {turn}: only in Redis")
    snaps = {w.snapshot_index: w for w in copy.snapshots}
    for w in bundle.snapshots:
        got_w = snaps.pop(w.snapshot_index, None)
        ident = f"snapshot {w.snapshot_index}"
        if got_w is None:
            differ(
                sid, f"{ident}: only in PostgreSQL", expected=top > 0 and w.snapshot_index <= floor
            )
            continue
        if w.created_at != got_w.created_at:
            differ(sid, f"{ident}: created_at", w.created_at, got_w.created_at)
        for path in differences(
            _pg.loads(w.actions_json), got_w.actions_json, f"{ident}: actions_json"
        ):
            differ(sid, path)
    for index in snaps:
        differ(sid, f"snapshot {index}: only in Redis")


def _text(value: Any, width: int = 200) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value) if not isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
