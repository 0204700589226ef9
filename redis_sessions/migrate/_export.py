"""``migrate export``: the store's Redis -> the original's PostgreSQL tables (rollback).

Writes ``folders``, then ``sessions``, ``session_messages`` and ``whiteboard_snapshots``, upserting
by their keys (id; (session_id, turn_no); (session_id, snapshot_index)) so that a rerun, or an
export into the tables the import read, leaves one row per key. Rows the store no longer holds
(deleted or swept sessions, messages trimmed past ``max_messages``) are left alone in PostgreSQL.
``context_data`` is the original's lean dict: every field (defaults included), UUIDs as text, no
``history`` or ``whiteboard_history``. One transaction per batch of sessions.

Round trips: Redis, one SCAN page per 1000 keys (two passes: folders, then sessions) and one
pipeline per batch; PostgreSQL, one pipelined ``executemany`` per table per batch.
"""

from __future__ import annotations

from typing import IO, Any

import psycopg
from psycopg.types.json import Jsonb

from ..codec import utc_now
from ..config import StoreConfig
from ..keys import KeySpace
from . import _pg
from ._fromredis import FolderOut, SessionOut, read_folders, read_sessions, scan
from ._report import Issue, Progress, Reporter, Summary

_FOLDER_SQL = """
INSERT INTO folders (id, user_id, name, created_at, updated_at, vector_store_id, knowledge_base)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, name = EXCLUDED.name,
  created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
  vector_store_id = EXCLUDED.vector_store_id, knowledge_base = EXCLUDED.knowledge_base
"""
_SESSION_SQL = """
INSERT INTO sessions (id, user_id, context_data, created_at, folder_id, updated_at, ended_at,
  analysis_status)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, context_data = EXCLUDED.context_data,
  created_at = EXCLUDED.created_at, folder_id = EXCLUDED.folder_id,
  updated_at = EXCLUDED.updated_at, ended_at = EXCLUDED.ended_at,
  analysis_status = EXCLUDED.analysis_status
"""
_MESSAGE_SQL = """
INSERT INTO session_messages (session_id, turn_no, role, text, payload_json,
  whiteboard_snapshot_index, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (session_id, turn_no) DO UPDATE SET role = EXCLUDED.role, text = EXCLUDED.text,
  payload_json = EXCLUDED.payload_json,
  whiteboard_snapshot_index = EXCLUDED.whiteboard_snapshot_index,
  created_at = EXCLUDED.created_at
"""
_SNAPSHOT_SQL = """
INSERT INTO whiteboard_snapshots (session_id, snapshot_index, actions_json, created_at)
VALUES (%s, %s, %s, %s)
ON CONFLICT (session_id, snapshot_index) DO UPDATE SET actions_json = EXCLUDED.actions_json,
  created_at = EXCLUDED.created_at
"""


def run_export(
    dsn: str,
    client: Any,
    config: StoreConfig,
    *,
    user: str | None = None,
    create_schema: bool = False,
    batch_size: int = 500,
    dry_run: bool = False,
    report: IO[str] | None = None,
    progress: bool = True,
) -> Summary:
    """Write the store's folders and sessions into PostgreSQL (see the module docstring)."""
    started = utc_now()
    summary = Summary(command="export", dry_run=dry_run)
    reporter = Reporter(summary, report)
    keys = KeySpace(config.key_prefix)
    with _pg.connect(dsn) as conn:
        if create_schema and not dry_run:
            conn.execute(_pg.SCHEMA_SQL)
            conn.commit()
        for ids in scan(client, keys, "folder", user, batch_size):
            rows: list[FolderOut] = []
            for folder in read_folders(client, keys, ids):
                if isinstance(folder, Issue):
                    reporter.issue(folder)
                else:
                    rows.append(folder)
            _write_folders(conn, rows, dry_run)
            reporter.copied("folders", len(rows))
        bar = Progress("export", 0, enabled=progress)
        for ids in scan(client, keys, "record", user, batch_size):
            sessions: list[SessionOut] = []
            for made in read_sessions(client, keys, ids):
                if isinstance(made, Issue):
                    reporter.issue(made)
                elif made is not None:
                    sessions.append(made)
            _write_sessions(conn, sessions, reporter, dry_run)
            bar.total += len(ids)
            bar.advance(len(ids))
        bar.finish()
    summary.seconds = (utc_now() - started).total_seconds()
    return summary


def _write_folders(conn: psycopg.Connection[Any], rows: list[FolderOut], dry_run: bool) -> None:
    if not rows or dry_run:
        return
    with conn.cursor() as cur:
        cur.executemany(_FOLDER_SQL, [tuple(r) for r in rows])
    conn.commit()


def _write_sessions(
    conn: psycopg.Connection[Any], sessions: list[SessionOut], reporter: Reporter, dry_run: bool
) -> None:
    """One transaction: the batch's sessions, then their messages and snapshots."""
    if not sessions:
        return
    wanted = list({s.folder_id for s in sessions if s.folder_id is not None})
    present: set[Any] = set()
    if wanted:
        found = conn.execute("SELECT id FROM folders WHERE id = ANY(%s)", (wanted,)).fetchall()
        present = {row[0] for row in found}
    session_rows: list[tuple[Any, ...]] = []
    message_rows: list[tuple[Any, ...]] = []
    snapshot_rows: list[tuple[Any, ...]] = []
    for s in sessions:
        folder = s.folder_id
        if folder is not None and folder not in present:
            reporter.issue(
                Issue(
                    table="sessions",
                    id=str(s.id),
                    reason="its folder is not in the folders table",
                    action="repaired",
                    detail=f"folder_id column {folder} set to NULL (context_data keeps it)",
                )
            )
            folder = None
        session_rows.append(
            (
                s.id,
                s.user_id,
                Jsonb(s.context_data),
                s.created_at,
                folder,
                s.updated_at,
                s.ended_at,
                s.analysis_status,
            )
        )
        for m in s.messages:
            if m.role not in ("user", "assistant"):
                reporter.issue(
                    Issue(
                        table="session_messages",
                        id=f"{s.id}/{m.turn_no}",
                        reason=f"role {m.role!r} is not in the original's session_role enum",
                        action="skipped",
                    )
                )
                continue
            payload = (
                Jsonb(None)
                if m.payload_json_null
                else (Jsonb(m.payload_json) if m.payload_json is not None else None)
            )
            message_rows.append(
                (
                    s.id,
                    m.turn_no,
                    m.role,
                    m.text,
                    payload,
                    m.whiteboard_snapshot_index,
                    m.created_at,
                )
            )
        snapshot_rows.extend(
            (s.id, w.snapshot_index, Jsonb(w.actions_json), w.created_at) for w in s.snapshots
        )
    if not dry_run:
        with conn.cursor() as cur:
            cur.executemany(_SESSION_SQL, session_rows)
            if message_rows:
                cur.executemany(_MESSAGE_SQL, message_rows)
            if snapshot_rows:
                cur.executemany(_SNAPSHOT_SQL, snapshot_rows)
        conn.commit()
    else:
        conn.rollback()
    reporter.copied("sessions", len(session_rows))
    reporter.copied("session_messages", len(message_rows))
    reporter.copied("whiteboard_snapshots", len(snapshot_rows))
