"""``migrate import``: PostgreSQL -> Redis, streamed, resumable, idempotent.

Round trips: PostgreSQL is read through three server-side cursors (one fetch per ``batch_size`` rows
of each table); Redis gets one pipeline per batch of sessions (the store's ``restore_sessions``: one
script per session) and one ``SET`` of the checkpoint after it.

The checkpoint (key ``<prefix>-migrate:<digest of the run>``, outside the store's key space, so
``check`` never meets it) holds the id of the last session whose batch Redis acknowledged. A killed
run started again with the same options starts after it; sessions are written whole and messages
are keyed by turn, so redoing a batch never stores anything twice. A finished run leaves the
checkpoint marked done: running it again changes nothing (``restart=True`` copies again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import msgspec
import psycopg

from ..codec import utc_now
from ..config import StoreConfig
from ..restore import FolderRestore, SessionRestore
from ..store import SessionStore
from . import _pg
from ._report import Issue, Progress, Reporter, Summary
from ._toredis import Outcome, Planned, folder_record, session_plan, skipped_children
from ._write import Writer


def checkpoint_key(prefix: str, dsn: str, flt: _pg.Filter) -> str:
    """The checkpoint of a run: one per (database, key prefix, --user, --since)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    where = {k: info.get(k) for k in ("host", "port", "dbname", "user")}
    ident = json.dumps([where, prefix, str(flt.user), str(flt.since)], sort_keys=True, default=str)
    return f"{prefix}-migrate:{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def run_import(
    dsn: str,
    client: Any,
    config: StoreConfig,
    *,
    user: uuid.UUID | None = None,
    since: dt.datetime | None = None,
    batch_size: int = 500,
    dry_run: bool = False,
    restart: bool = False,
    report: IO[str] | None = None,
    progress: bool = True,
    now: dt.datetime | None = None,
) -> Summary:
    """Copy folders, sessions, messages and snapshots from PostgreSQL into the store's Redis."""
    started = utc_now()
    moment = now or started
    summary = Summary(command="import", dry_run=dry_run)
    reporter = Reporter(summary, report)
    # the store writes and announces; it caches nothing, so it needs no invalidation listener
    store = SessionStore(client, config=dataclasses.replace(config, cache_size=0))
    writer = Writer(
        store, lambda bundle, strict: session_plan(bundle, config, moment, strict=strict)
    )
    flt = _pg.Filter(user=user, since=since)
    ckey = checkpoint_key(config.key_prefix, dsn, flt)
    state: dict[str, Any] = {}
    if not restart and not dry_run:
        raw = client.get(ckey)
        state = json.loads(raw) if raw else {}
    if state.get("done"):
        summary.already_complete = True
        return summary
    with _pg.connect(dsn) as conn, store, _pg.collector_paused() as tick:
        after = state.get("after")
        if after is None:
            _folders(
                conn=conn,
                flt=flt,
                writer=writer,
                reporter=reporter,
                batch_size=batch_size,
                dry_run=dry_run,
            )
        else:
            summary.resumed_after = after
            flt = flt._replace(after=uuid.UUID(after))
        total = _pg.count_sessions(conn, flt)
        bar = Progress("import", total, enabled=progress)
        # Redis writes run in one background thread while the next batch is read and converted:
        # at most one batch in flight, and its checkpoint is set only once Redis has applied it.
        pool = ThreadPoolExecutor(1, thread_name_prefix="redis-sessions-migrate")
        pending: tuple[Future[dict[int, Outcome] | None], list[Planned]] | None = None
        batch: list[Planned] = []
        last: str | None = None
        seen = 0

        def write(plans: list[Planned], upto: str | None) -> dict[int, Outcome] | None:
            refused = writer.sessions(plans)
            if upto is not None:
                client.set(ckey, json.dumps({"after": upto, "at": started.isoformat()}))
            return refused

        def account(plans: list[Planned], refused: dict[int, Outcome] | None) -> None:
            sessions = messages = snapshots = 0
            for i, planned in enumerate(plans):
                restore: SessionRestore | None = planned.restore
                if refused and i in refused:
                    for issue in refused[i].issues:
                        reporter.issue(issue)
                    restore = refused[i].plan
                if restore is not None:
                    sessions += 1
                    messages += len(restore.messages)
                    snapshots += len(restore.snapshots)
            if plans:
                reporter.copied("sessions", sessions)
                reporter.copied("session_messages", messages)
                reporter.copied("whiteboard_snapshots", snapshots)

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                future, plans = pending
                pending = None
                account(plans, future.result())  # raises what the write raised

        def flush() -> None:
            nonlocal seen, batch, pending
            settle()
            if dry_run:
                account(batch, _dry_check(store, batch))
            else:
                pending = (pool.submit(write, batch, last), batch)
            bar.advance(seen)
            seen = 0
            batch = []

        try:
            for item in _pg.prefetched(_pg.bundles(conn, flt, batch_size)):
                tick(1)
                if isinstance(item, _pg.Orphan):
                    ident = f"{item.row.session_id}/{item.row[1]}"
                    reporter.issue(
                        Issue(
                            table=item.table, id=ident, reason="no such session", action="skipped"
                        )
                    )
                    continue
                outcome = session_plan(item, config, moment, strict=dry_run)
                for issue in outcome.issues:
                    if issue.action == "expired":
                        reporter.write(msgspec.to_builtins(issue))
                    else:
                        reporter.issue(issue)
                summary.expired += outcome.expired
                if outcome.plan is not None:
                    batch.append(Planned(outcome.plan, item))
                last = str(item.session.id)
                seen += 1
                if len(batch) >= batch_size or seen >= batch_size:
                    flush()
            flush()
            settle()
        finally:
            pool.shutdown(wait=True)
        bar.finish()
    if not dry_run:
        client.set(ckey, json.dumps({"done": True, "at": started.isoformat()}))
    summary.seconds = (utc_now() - started).total_seconds()
    return summary


def _dry_check(store: SessionStore, plans: list[Planned]) -> dict[int, Outcome]:
    """What a write would refuse, without writing: each context checked by the store's validator
    (the rows were converted strictly)."""
    out = {}
    for i, planned in enumerate(plans):
        result = store.validate_session_context(planned.restore.context)
        if not result.valid:
            issue = Issue(
                table="sessions",
                id=str(planned.bundle.session.id),
                reason="the store refuses the session",
                action="skipped",
                detail="; ".join(result.errors),
            )
            children = skipped_children(planned.bundle, "its session was skipped")
            out[i] = Outcome(None, False, [issue, *children])
    return out


def _folders(
    *,
    conn: psycopg.Connection[Any],
    flt: _pg.Filter,
    writer: Writer,
    reporter: Reporter,
    batch_size: int,
    dry_run: bool,
) -> None:
    batch: list[FolderRestore] = []

    def flush() -> None:
        refused = [] if dry_run else writer.folders(batch)
        for issue in refused:
            reporter.issue(issue)
        reporter.copied("folders", len(batch) - len(refused))

    for row in _pg.folders(conn, flt, batch_size):
        made = folder_record(row)
        if isinstance(made, Issue):
            reporter.issue(made)
            continue
        batch.append(made)
        if len(batch) >= batch_size:
            flush()
            batch = []
    flush()
