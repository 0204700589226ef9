"""From the store's records back to the original's rows: what the export writes and what
``verify`` compares. Reads Redis in pipelined batches (one round trip per batch of sessions: the
record, messages and snapshots hashes of each), after a SCAN of the store's key space.

Depends on the store's key layout (``keys.KeySpace.classify``) and decoders
(``codec.session_from_fields``, ``message_codec.StoredMessage``, ``folders.folder_from_fields``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec

from .. import codec
from ..folders import folder_from_fields
from ..keys import KeySpace
from ..message_codec import StoredMessage
from ._report import Issue
from ._shape import full_dump
from ._toredis import EXTRA_FIELD, STATUS_FIELD

_message = msgspec.json.Decoder(StoredMessage)
_actions = msgspec.json.Decoder(list[dict[str, Any]])
_extra = msgspec.json.Decoder(dict[str, Any])


class SessionOut(NamedTuple):
    """A session as the original's rows: ``sessions`` columns, then its messages and snapshots."""

    id: uuid.UUID
    user_id: uuid.UUID
    context_data: dict[str, Any]
    created_at: dt.datetime
    folder_id: uuid.UUID | None
    updated_at: dt.datetime
    ended_at: dt.datetime | None
    analysis_status: str | None
    messages: list[MessageOut]
    snapshots: list[SnapshotOut]


class MessageOut(NamedTuple):
    """A ``session_messages`` row (``payload_json`` is the JSON value, ``payload_json_null`` when
    it is the JSON null rather than SQL NULL)."""

    turn_no: int
    role: str
    text: str | None
    payload_json: Any
    payload_json_null: bool
    whiteboard_snapshot_index: int | None
    created_at: dt.datetime


class SnapshotOut(NamedTuple):
    """A ``whiteboard_snapshots`` row."""

    snapshot_index: int
    actions_json: list[dict[str, Any]]
    created_at: dt.datetime


class FolderOut(NamedTuple):
    """A ``folders`` row."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime
    vector_store_id: str | None
    knowledge_base: str | None


def scan(
    client: Any, keys: KeySpace, kind: str, user: str | None, batch: int
) -> Iterator[list[tuple[str, str]]]:
    """Batches of (user id, id) of the store's records (``kind`` "record") or folders ("folder"),
    one user's with ``user``. SCAN: memory holds one batch."""
    pattern = keys.user_pattern(user) if user is not None else keys.pattern()
    out: list[tuple[str, str]] = []
    for key in client.scan_iter(match=pattern, count=1000):
        try:
            info = keys.classify(key)
        except UnicodeDecodeError:
            continue
        if info is None or info.kind != kind:
            continue
        assert info.user_id is not None and info.session_id is not None
        out.append((info.user_id, info.session_id))
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def read_sessions(
    client: Any, keys: KeySpace, ids: list[tuple[str, str]]
) -> list[SessionOut | Issue | None]:
    """The sessions (user id, session id) as rows, an Issue for one that cannot be exported, None
    for one that is not there. One pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for user_id, sid in ids:
        for key in keys.session_keys(user_id, sid):
            pipe.hgetall(key)
    replies = pipe.execute(raise_on_error=False)
    out: list[SessionOut | Issue | None] = []
    for i, (user_id, sid) in enumerate(ids):
        record, messages, snapshots = replies[3 * i : 3 * i + 3]
        out.append(_session(user_id, sid, record, messages, snapshots))
    return out


def _issue(sid: str, reason: str, detail: str = "", table: str = "sessions") -> Issue:
    return Issue(table=table, id=sid, reason=reason, action="skipped", detail=detail)


def _session(
    user_id: str, sid: str, record: Any, messages: Any, snapshots: Any
) -> SessionOut | Issue | None:
    if (
        isinstance(record, Exception)
        or isinstance(messages, Exception)
        or isinstance(snapshots, Exception)
    ):
        return _issue(sid, "a key of the session holds another type than a hash")
    if not record:
        return None
    try:
        session = codec.session_from_fields(record, user_id, sid)
    except codec.CorruptRecord as exc:
        return _issue(sid, "the record cannot be decoded", str(exc))
    try:
        user_uuid = uuid.UUID(user_id)
    except ValueError:
        return _issue(sid, "user_id is not a UUID (the original's user_id column is uuid)", user_id)
    extra_raw = record.get(EXTRA_FIELD)
    try:
        extra = _extra.decode(extra_raw) if extra_raw else {}
    except msgspec.DecodeError:
        extra = {}
    text_null = set(extra.get("text_null", ()))
    payload_null = set(extra.get("payload_json_null", ()))
    wsi_map = extra.get("snapshot_index", {})
    snapshot_at = extra.get("snapshot_at", {})
    rows: list[MessageOut] = []
    times: dict[int, dt.datetime] = {}
    for turn_raw, blob in sorted(messages.items(), key=lambda kv: int(kv[0])):
        turn = int(turn_raw)
        try:
            m = _message.decode(blob)
        except msgspec.DecodeError:
            continue  # reported by the caller's check (left out of reads by the store too)
        times[turn] = m.created_at
        wsi = wsi_map.get(str(turn), turn if m.snapshot else None)
        rows.append(
            MessageOut(
                turn_no=turn,
                role=m.role,
                text=None if (turn in text_null and m.text == "") else m.text,
                payload_json=m.payload,
                payload_json_null=turn in payload_null and m.payload is None,
                whiteboard_snapshot_index=wsi,
                created_at=m.created_at,
            )
        )
    snaps: list[SnapshotOut] = []
    for index_raw, blob in sorted(snapshots.items(), key=lambda kv: int(kv[0])):
        index = int(index_raw)
        try:
            actions = _actions.decode(blob)
        except msgspec.DecodeError:
            continue
        at = snapshot_at.get(str(index))
        created = codec.parse_time(at) if at else times.get(index, session.updated_at)
        snaps.append(SnapshotOut(index, actions, created))
    status = record.get(STATUS_FIELD)
    return SessionOut(
        id=session.session_id,
        user_id=user_uuid,
        context_data=full_dump(session.context),
        created_at=session.created_at,
        folder_id=session.folder_id,
        updated_at=session.updated_at,
        ended_at=session.ended_at,
        analysis_status=status.decode() if status is not None else None,
        messages=rows,
        snapshots=snaps,
    )


def read_folders(
    client: Any, keys: KeySpace, ids: list[tuple[str, str]]
) -> list[FolderOut | Issue]:
    """The folders (user id, folder id) as rows, or the issue that keeps each out. One round trip."""
    pipe = client.pipeline(transaction=False)
    for user_id, fid in ids:
        pipe.hgetall(keys.folder(user_id, fid))
    out: list[FolderOut | Issue] = []
    for (user_id, fid), fields in zip(ids, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(fields, Exception) or not fields:
            out.append(_issue(fid, "the folder is gone or holds another type", table="folders"))
            continue
        try:
            folder = folder_from_fields(fields, user_id, fid)
            user_uuid = uuid.UUID(user_id)
        except (codec.CorruptRecord, ValueError) as exc:
            out.append(_issue(fid, "the folder cannot be exported", str(exc), table="folders"))
            continue
        extra_raw = fields.get(EXTRA_FIELD)
        kb_null = (
            bool(extra_raw) and b"knowledge_base_null" in extra_raw and folder.knowledge_base == ""
        )
        assert folder.created_at is not None and folder.updated_at is not None
        out.append(
            FolderOut(
                id=folder.id,
                user_id=user_uuid,
                name=folder.name,
                created_at=folder.created_at,
                updated_at=folder.updated_at,
                vector_store_id=folder.vector_store_id,
                knowledge_base=None if kb_null else folder.knowledge_base,
            )
        )
    return out
