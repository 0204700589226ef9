"""From the original's rows to the store's records: what one session (or folder) becomes in Redis.

Pure: no I/O. Uses the store's own encoders (``write_codec.encode_context`` and ``record_fields``,
``message_codec.encode_message``, ``folders.folder_fields``), so every check the store makes on its
own writes (types, NaN, nesting depth, size) is made on imported data too.

What the store has no place for is kept in one extra record field, ``pg_extra`` (JSON, present only
when needed), which the store ignores and leaves alone and the export reads back: a message whose
``text`` was NULL (stored as ""), whose ``payload_json`` was the JSON ``null`` rather than SQL NULL,
whose ``whiteboard_snapshot_index`` is not its own turn, and a snapshot whose ``created_at`` is not
its message's. ``analysis_status`` is a plain record field of that name. A folder whose
``knowledge_base`` was NULL gets ``pg_extra`` = ``{"knowledge_base_null": true}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import msgspec

from .. import codec, write_codec
from ..config import StoreConfig
from ..exceptions import InvalidInput
from ..folders import folder_fields
from ..keys import KeySpace
from ..message_codec import StoredMessage, encode_message
from ..records import Folder
from ..validation import MAX_DEPTH
from ._pg import Bundle, FolderRow, loads
from ._report import Issue
from ._shape import read_context

EXTRA_FIELD = b"pg_extra"
_ROLES = frozenset(("user", "assistant", "system"))
_raw_list = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])  # parses one level only
_encoder = msgspec.json.Encoder()


def _raw(text: str) -> msgspec.Raw | None:
    """The jsonb text as it is, when the store would surely take it: jsonb holds no NaN or
    infinity, so only nesting can be too deep (brackets inside strings count too: a false alarm
    only sends it the slow way). None: check it the store's way (decoded, then encoded by
    ``encode_message``). An integer past 64 bits, which ``encode_message`` cannot encode, is
    kept as PostgreSQL wrote it (the store's readers decode it)."""
    blob = text.encode()
    if blob.count(b"[") + blob.count(b"{") > MAX_DEPTH:
        return None
    return msgspec.Raw(blob)


def _raw_actions(text: str) -> bytes | None:
    """The actions' jsonb text as it is when it is surely a list of objects the store takes."""
    raw = _raw(text)
    if raw is None:
        return None
    try:
        _raw_list.decode(raw)
    except msgspec.DecodeError:
        return None
    return bytes(raw)


STATUS_FIELD = b"analysis_status"
_encode = msgspec.json.Encoder().encode


class SessionPlan(NamedTuple):
    """Everything one session's import script writes."""

    keys: list[str]  # KEYS of the script: record, msgs, wb, idx, live, ended
    session_id: str
    member: str
    record: dict[bytes, bytes]
    messages: list[tuple[int, bytes]]
    snapshots: list[tuple[int, bytes]]
    index_score_us: int
    expiry_score_ms: int
    ended: bool
    ttl_ms: int


class Outcome(NamedTuple):
    """A converted session: its plan (None when skipped or expired), whether it is expired, and
    every issue of its rows."""

    plan: SessionPlan | None
    expired: bool
    issues: list[Issue]


def session_plan(bundle: Bundle, keys: KeySpace, config: StoreConfig, now: dt.datetime) -> Outcome:
    """What ``bundle`` becomes in Redis, or why it does not."""
    row = bundle.session
    sid = str(row.id)
    issues: list[Issue] = []

    def note(table: str, ident: str, reason: str, action: str, detail: str = "") -> None:
        issues.append(Issue(table=table, id=ident, reason=reason, action=action, detail=detail))

    def skip_children(why: str) -> None:
        for m in bundle.messages:
            note("session_messages", f"{sid}/{m.turn_no}", why, "skipped")
        for w in bundle.snapshots:
            note("whiteboard_snapshots", f"{sid}/{w.snapshot_index}", why, "skipped")

    if row.bad_times or row.created_at is None or row.updated_at is None:
        note("sessions", sid, "a time out of range", "skipped", row.bad_times)
        skip_children("its session was skipped")
        return Outcome(None, False, issues)
    user_id = str(row.user_id)
    context, notes = read_context(
        row.context_data, session_id=row.id, user_id=user_id, folder_id=row.folder_id
    )
    for n in notes:
        note("sessions", sid, n.reason, n.action, n.detail)
    if context is None:
        skip_children("its session was skipped")
        return Outcome(None, False, issues)
    try:
        fields = write_codec.encode_context(
            context, user_id=user_id, session_id=sid, max_bytes=config.max_context_bytes
        )
    except InvalidInput as exc:
        note("sessions", sid, "the store refuses the context", "skipped", str(exc))
        skip_children("its session was skipped")
        return Outcome(None, False, issues)

    last = row.updated_at
    ended = row.ended_at is not None
    idle = now - last
    if idle > (config.ended_age if ended else config.max_age):
        note(
            "sessions",
            sid,
            "idle past the store's max age",
            "expired",
            f"last activity {codec.iso(last)}: not imported, as the sweeper would delete it",
        )
        return Outcome(None, True, issues)

    extra: dict[str, Any] = {}
    messages, message_times, top = _messages(bundle, config, note, extra)
    snapshots = _snapshots(
        bundle=bundle, config=config, note=note, extra=extra, message_times=message_times, top=top
    )
    record = write_codec.record_fields(
        user_id=user_id, session_id=sid, now=row.created_at, context_fields=fields
    )
    record[b"updated_at"] = codec.iso(last).encode()
    if row.ended_at is not None:
        record[b"ended_at"] = codec.iso(row.ended_at).encode()
    turns = max(top, context.latest_turn_no)
    if turns > 0:
        record[b"turns"] = str(turns).encode()
    if row.analysis_status is not None:
        record[STATUS_FIELD] = row.analysis_status.encode()
    if extra:
        record[EXTRA_FIELD] = _encode(extra)
    ttl = config.key_ttl_ms
    if ttl:
        ttl = max(ttl - int(idle.total_seconds() * 1000), 1)
    return Outcome(
        SessionPlan(
            keys=keys.session_write_keys(user_id, sid),
            session_id=sid,
            member=keys.expiry_member(user_id, sid),
            record=record,
            messages=messages,
            snapshots=snapshots,
            index_score_us=codec.epoch_us(last),
            expiry_score_ms=codec.epoch_ms(last),
            ended=ended,
            ttl_ms=ttl,
        ),
        False,
        issues,
    )


def _messages(
    bundle: Bundle, config: StoreConfig, note: Any, extra: dict[str, Any]
) -> tuple[list[tuple[int, bytes]], dict[int, dt.datetime], int]:
    """(turn, message JSON) of the messages kept, their times by turn, and the highest turn."""
    sid = str(bundle.session.id)
    valid = []
    for m in bundle.messages:
        if m.bad_times or m.created_at is None:
            note(
                "session_messages",
                f"{sid}/{m.turn_no}",
                "created_at out of range",
                "skipped",
                m.bad_times,
            )
        elif m.turn_no < 1:
            note("session_messages", f"{sid}/{m.turn_no}", "turn_no below 1", "skipped")
        else:
            valid.append(m)
    top = max((m.turn_no for m in valid), default=0)
    floor = top - config.max_messages
    out: list[tuple[int, bytes]] = []
    times: dict[int, dt.datetime] = {}
    for m in valid:
        if m.turn_no <= floor:
            note(
                "session_messages",
                f"{sid}/{m.turn_no}",
                f"more messages than the store keeps (max_messages={config.max_messages})",
                "skipped",
                "the oldest turns are left out, as the store trims them",
            )
            continue
        wsi, created = m.whiteboard_snapshot_index, m.created_at
        assert created is not None  # checked above
        text = m.text if m.text is not None else ""
        raw = m.payload_json
        payload = None if raw is None or raw == "null" else _raw(raw)
        try:
            if m.role in _ROLES and (payload is not None or raw is None or raw == "null"):
                blob = _encoder.encode(
                    StoredMessage(
                        role=m.role,  # type: ignore[arg-type]  # checked just above
                        text=text,
                        payload=payload,
                        snapshot=wsi == m.turn_no,
                        created_at=created,
                    )
                )
            else:  # what may not fit: the store's own checks, on the decoded value
                value = loads(raw) if raw is not None else None
                blob, _ = encode_message(
                    m.role, text, value, [] if wsi == m.turn_no else None, created
                )
        except InvalidInput as exc:
            note(
                "session_messages",
                f"{sid}/{m.turn_no}",
                "the store refuses the message",
                "skipped",
                str(exc),
            )
            continue
        if m.text is None:
            extra.setdefault("text_null", []).append(m.turn_no)
        if m.payload_json_null:
            extra.setdefault("payload_json_null", []).append(m.turn_no)
        if wsi is not None and wsi != m.turn_no:
            extra.setdefault("snapshot_index", {})[str(m.turn_no)] = wsi
        out.append((m.turn_no, blob))
        times[m.turn_no] = created
    return out, times, top


def _snapshots(
    *,
    bundle: Bundle,
    config: StoreConfig,
    note: Any,
    extra: dict[str, Any],
    message_times: dict[int, dt.datetime],
    top: int,
) -> list[tuple[int, bytes]]:
    """(index, actions JSON) of the snapshots kept."""
    sid = str(bundle.session.id)
    floor = top - config.max_messages if top else None
    out = []
    for w in bundle.snapshots:
        if w.bad_times or w.created_at is None:
            note(
                "whiteboard_snapshots",
                f"{sid}/{w.snapshot_index}",
                "created_at out of range",
                "skipped",
                w.bad_times,
            )
            continue
        if w.snapshot_index < 1:
            note(
                "whiteboard_snapshots",
                f"{sid}/{w.snapshot_index}",
                "snapshot_index below 1",
                "skipped",
            )
            continue
        if floor is not None and w.snapshot_index <= floor:
            note(
                "whiteboard_snapshots",
                f"{sid}/{w.snapshot_index}",
                f"its turn is older than the store keeps (max_messages={config.max_messages})",
                "skipped",
            )
            continue
        blob = _raw_actions(w.actions_json)
        if blob is None:  # what may not fit: the store's own checks, on the decoded value
            try:
                _, blob = encode_message("user", "", None, loads(w.actions_json), w.created_at)
            except InvalidInput as exc:
                note(
                    "whiteboard_snapshots",
                    f"{sid}/{w.snapshot_index}",
                    "the store refuses the actions",
                    "skipped",
                    str(exc),
                )
                continue
        if message_times.get(w.snapshot_index) != w.created_at:
            extra.setdefault("snapshot_at", {})[str(w.snapshot_index)] = codec.iso(w.created_at)
        out.append((w.snapshot_index, blob))
    return out


def folder_record(row: FolderRow) -> tuple[str, list[tuple[str, str | bytes]]] | Issue:
    """(user id, hash fields) of a folder, or the issue that keeps it out."""
    if row.bad_times or row.created_at is None or row.updated_at is None:
        return Issue(
            table="folders",
            id=str(row.id),
            reason="a time out of range",
            action="skipped",
            detail=row.bad_times,
        )
    user_id = str(row.user_id)
    folder = Folder(
        id=row.id,
        name=row.name,
        vector_store_id=row.vector_store_id,
        knowledge_base=row.knowledge_base or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    pairs = [
        (name, codec.iso(row.updated_at) if name == "updated_at" else value)
        for name, value in folder_fields(folder, user_id, row.updated_at)
    ]
    if row.knowledge_base is None:
        pairs.append((EXTRA_FIELD.decode(), _encode({"knowledge_base_null": True})))
    return user_id, pairs
