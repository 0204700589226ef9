"""Encoding and decoding between the models and what Redis holds. Pure functions, no I/O.

A session record is a hash. Metadata fields are plain text, readable in redis-cli:

    user_id, session_id, folder_id (absent when None), created_at, updated_at, ended_at (absent until
    ended; ISO-8601 UTC), version (int), schema (int), turns (messages appended so far)

The lean context (the context minus ``history`` and ``whiteboard_history``) is stored one top-level
field per hash field, ``c:<name>`` holding that field's JSON, and only where the value differs from the
reference default. ``user_id``, ``session_id`` and ``folder_id`` of the context are the metadata fields
themselves, stored once. Reading composes the fields back into one JSON object and decodes it with one
typed msgspec decode.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from .exceptions import InvalidInput
from .models import TutorContext
from .records import Folder, Message, Role, Session, SessionInfo

SCHEMA_VERSION: Final = 1
CONTEXT_PREFIX: Final = b"c:"
BULKY_FIELDS: Final = ("history", "whiteboard_history")
META_BACKED: Final = ("user_id", "session_id", "folder_id")
#: Fields only ever raised, never lowered, by a context update (the store allocates turns).
MONOTONIC_FIELDS: Final = ("latest_turn_no", "latest_snapshot_index")
#: Record fields that ``list_user_sessions`` reads for each row (same order as ``info_from_row``).
LISTING_FIELDS: Final = (
    "user_id",
    "folder_id",
    "created_at",
    "updated_at",
    "ended_at",
    "version",
    "c:session_goal",
)

_encoder = msgspec.json.Encoder()
_context_decoder = msgspec.json.Decoder(TutorContext)
_split_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str_decoder = msgspec.json.Decoder(str)

_CONTEXT_FIELDS: Final = frozenset(f.name for f in msgspec.structs.fields(TutorContext))
_STORED_FIELDS: Final = _CONTEXT_FIELDS - set(BULKY_FIELDS) - set(META_BACKED)
#: Field name (bytes, as stored after ``c:``) -> the JSON of its default; equal values are not stored.
_DEFAULT_JSON: Final[dict[str, bytes]] = {
    f.name: _encoder.encode(
        f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
    )
    for f in msgspec.structs.fields(TutorContext)
    if f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
}


class CorruptRecord(ValueError):
    """A stored record that cannot be decoded (internal: reads turn it into None and a log line)."""


# --------------------------------------------------------------------------- time


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def check_aware(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InvalidInput(f"the clock must give timezone-aware datetimes, got {now!r}")
    return now.astimezone(dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    """Readable UTC text stored in hashes: ``2026-11-24T04:42:22.123456+00:00``."""
    return moment.isoformat(timespec="microseconds")


def epoch_ms(moment: dt.datetime) -> int:
    """Index score: whole milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def parse_time(raw: bytes | str) -> dt.datetime:
    text = raw.decode() if isinstance(raw, bytes) else raw
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(dt.timezone.utc)


# --------------------------------------------------------------------------- writing a context


def encode_context(
    context: TutorContext, *, user_id: str, session_id: str, max_bytes: int
) -> list[tuple[str, bytes]]:
    """The record fields of ``context``: ``("c:<name>", json)`` pairs plus ``("folder_id", text)``.

    Checks that the context belongs to (user_id, session_id), that every field has its declared type
    (a Struct built by hand is not validated by msgspec, so a wrong type would only fail on a later
    read), and that the lean JSON fits in ``max_bytes``. Raises InvalidInput, writing nothing.
    ``history`` and ``whiteboard_history`` are left out: they are never stored in the record.
    """
    if not isinstance(context, TutorContext):
        raise InvalidInput(f"context must be a TutorContext, got {type(context).__name__}")
    if context.user_id != user_id:
        raise InvalidInput(
            f"context.user_id is {context.user_id!r}, but the call is for {user_id!r}"
        )
    if str(context.session_id) != session_id:
        raise InvalidInput(
            f"context.session_id is {context.session_id}, but the call is for session {session_id}"
        )
    lean = msgspec.structs.replace(context, history=[], whiteboard_history=[])
    try:
        raw = _encoder.encode(lean)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"context cannot be encoded as JSON: {exc}") from exc
    if len(raw) > max_bytes:
        raise InvalidInput(
            f"lean context is {len(raw)} bytes, more than max_context_bytes={max_bytes}"
        )
    try:
        _context_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid context: {exc}") from exc
    fields: list[tuple[str, bytes]] = []
    for name, value in _split_decoder.decode(raw).items():
        if name in _STORED_FIELDS:
            blob = bytes(value)
            if _DEFAULT_JSON.get(name) != blob:
                fields.append(("c:" + name, blob))
    if context.folder_id is not None:
        fields.append(("folder_id", str(context.folder_id).encode()))
    return fields


def record_fields(
    *,
    user_id: str,
    session_id: str,
    now: dt.datetime,
    context_fields: Iterable[tuple[str, bytes]],
) -> list[tuple[str, str | bytes]]:
    """Every field of a new session record."""
    stamp = iso(now)
    meta: list[tuple[str, str | bytes]] = [
        ("user_id", user_id),
        ("session_id", session_id),
        ("created_at", stamp),
        ("updated_at", stamp),
        ("version", "1"),
        ("schema", str(SCHEMA_VERSION)),
    ]
    meta.extend(context_fields)
    return meta


def flatten(pairs: Iterable[tuple[str, str | bytes]]) -> list[str | bytes]:
    out: list[str | bytes] = []
    for name, value in pairs:
        out.append(name)
        out.append(value)
    return out


# --------------------------------------------------------------------------- reading a record


def lean_json(fields: Mapping[bytes, bytes]) -> bytes:
    """Compose a stored record's fields into the lean context JSON (validates against the reference).

    Only known context fields are taken; unknown ``c:`` fields (a newer schema) are passed over.
    """
    try:
        parts = [
            b'{"user_id":' + _encoder.encode(fields[b"user_id"].decode()),
            b'"session_id":' + _encoder.encode(fields[b"session_id"].decode()),
        ]
        folder = fields.get(b"folder_id")
        if folder is not None:
            parts.append(b'"folder_id":' + _encoder.encode(folder.decode()))
    except (KeyError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"metadata field missing or not UTF-8: {exc}") from exc
    parts.extend(_JSON_KEY[key] + value for key, value in fields.items() if key in _JSON_KEY)
    return b",".join(parts) + b"}"


#: Stored field name -> the JSON object key it becomes (``c:state`` -> ``"state":``).
_JSON_KEY: Final = {b"c:" + n.encode(): b'"' + n.encode() + b'":' for n in _STORED_FIELDS}


def decode_context(blob: bytes) -> TutorContext:
    try:
        return _context_decoder.decode(blob)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise CorruptRecord(str(exc)) from exc


def session_parts(
    fields: Mapping[bytes, bytes], user_id: str, session_id: str
) -> tuple[dict[str, Any], bytes]:
    """(metadata, lean context JSON) of a record; raises CorruptRecord. What a Session is made of:
    a cached record keeps them, so that a cache hit only decodes the context."""
    return _meta(fields, user_id, session_id), lean_json(fields)


def session_from_parts(parts: tuple[dict[str, Any], bytes]) -> Session:
    meta, lean = parts
    return Session(context=decode_context(lean), **meta)


def session_from_fields(fields: Mapping[bytes, bytes], user_id: str, session_id: str) -> Session:
    """Decode a record read with HGETALL; raises CorruptRecord when it cannot be decoded."""
    return session_from_parts(session_parts(fields, user_id, session_id))


def _meta(fields: Mapping[bytes, bytes], user_id: str, session_id: str) -> dict[str, Any]:
    try:
        stored_user = fields[b"user_id"].decode()
        if stored_user != user_id:
            raise CorruptRecord(f"record names user {stored_user!r}, key names {user_id!r}")
        folder = fields.get(b"folder_id")
        ended = fields.get(b"ended_at")
        return {
            "session_id": session_id,
            "user_id": user_id,
            "folder_id": folder.decode() if folder is not None else None,
            "created_at": parse_time(fields[b"created_at"]),
            "updated_at": parse_time(fields[b"updated_at"]),
            "ended_at": parse_time(ended) if ended is not None else None,
            "version": int(fields[b"version"]),
        }
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, CorruptRecord):
            raise
        raise CorruptRecord(f"bad metadata: {exc!r}") from exc


def pairs_to_dict(flat: list[bytes]) -> dict[bytes, bytes]:
    """A flat ``[field, value, ...]`` reply (HGETALL inside Lua) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def info_from_row(session_id: bytes, row: list[bytes | None], user_id: str) -> SessionInfo:
    """One listing row: values of LISTING_FIELDS in order. Raises CorruptRecord."""
    fields = {
        name.encode(): value
        for name, value in zip(LISTING_FIELDS, row, strict=True)
        if value is not None
    }
    sid = session_id.decode()
    meta = _meta(fields, user_id, sid)
    goal_raw = fields.get(b"c:session_goal")
    try:
        goal = _str_decoder.decode(goal_raw) if goal_raw is not None else None
    except msgspec.DecodeError as exc:
        raise CorruptRecord(f"bad session_goal: {exc}") from exc
    return SessionInfo(session_goal=goal, **meta)


# --------------------------------------------------------------------------- messages


class StoredMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A message as stored in ``...:msgs`` (the turn number is the hash field)."""

    role: Role
    text: str
    payload: Any = None
    snapshot: bool = False
    created_at: dt.datetime


_message_decoder = msgspec.json.Decoder(StoredMessage)
_ROLES: Final = frozenset(("user", "assistant", "system"))


def encode_message(
    role: str, text: str, payload: Any, whiteboard_actions: Any, now: dt.datetime
) -> tuple[bytes, bytes]:
    """(message JSON, snapshot JSON or b""). Raises InvalidInput for what can never be stored."""
    if role not in _ROLES:
        raise InvalidInput(f"role must be one of {sorted(_ROLES)}, got {role!r}")
    if not isinstance(text, str):
        raise InvalidInput(f"text must be a str, got {type(text).__name__}")
    if whiteboard_actions is not None and not (
        isinstance(whiteboard_actions, list)
        and all(isinstance(a, dict) for a in whiteboard_actions)
    ):
        raise InvalidInput("whiteboard_actions must be a list of dicts (one batch of actions)")
    stored = StoredMessage(
        role=role,  # type: ignore[arg-type]  # checked against _ROLES above
        text=text,
        payload=payload,
        snapshot=whiteboard_actions is not None,
        created_at=now,
    )
    try:
        message = _encoder.encode(stored)
        snapshot = _encoder.encode(whiteboard_actions) if whiteboard_actions is not None else b""
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"message cannot be encoded as JSON: {exc}") from exc
    return message, snapshot


def decode_messages(first_turn: int, blobs: list[bytes | None]) -> tuple[list[Message], list[str]]:
    """Messages of consecutive turns from ``first_turn``; trimmed (nil) turns are skipped.

    Returns the messages and a description of each one that could not be decoded (left out).
    """
    out, problems = [], []
    for offset, blob in enumerate(blobs):
        if blob is None:
            continue
        turn = first_turn + offset
        try:
            stored = _message_decoder.decode(blob)
        except msgspec.DecodeError as exc:
            problems.append(f"message {turn}: {exc}")
            continue
        out.append(
            Message(
                turn_no=turn,
                role=stored.role,
                text=stored.text,
                payload=stored.payload,
                whiteboard_snapshot_index=turn if stored.snapshot else None,
                created_at=stored.created_at,
            )
        )
    return out, problems


def history_entries(messages: list[Message]) -> list[dict[str, Any]]:
    """The ``history`` list of a context: ``{"role", "content"}`` per message, oldest first."""
    return [{"role": m.role, "content": m.text} for m in messages]


def decode_snapshots(
    first_turn: int, blobs: list[bytes | None]
) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """Snapshots of consecutive turns (None = that turn has none), and what could not be decoded."""
    out: list[list[dict[str, Any]]] = []
    problems = []
    for offset, blob in enumerate(blobs):
        if blob is None:
            continue
        try:
            out.append(_snapshot_decoder.decode(blob))
        except msgspec.DecodeError as exc:
            problems.append(f"snapshot {first_turn + offset}: {exc}")
    return out, problems


_snapshot_decoder = msgspec.json.Decoder(list[dict[str, Any]])


# --------------------------------------------------------------------------- folders


def folder_fields(folder: Folder, user_id: str, now: dt.datetime) -> list[tuple[str, str | bytes]]:
    """The hash fields of a stored folder, including the AnalysisResult derived from it."""
    from .folders import analysis_from_folder

    analysis = analysis_from_folder(folder)
    pairs: list[tuple[str, str | bytes]] = [
        ("id", folder.id),
        ("user_id", user_id),
        ("name", folder.name),
        ("knowledge_base", folder.knowledge_base),
        ("created_at", iso(folder.created_at or now)),
        ("updated_at", iso(now)),
    ]
    if folder.vector_store_id is not None:
        pairs.append(("vector_store_id", folder.vector_store_id))
    if analysis is not None:
        pairs.append(("analysis", _encoder.encode(analysis)))
    return pairs


def folder_from_fields(fields: Mapping[bytes, bytes], user_id: str, folder_id: str) -> Folder:
    try:
        if fields[b"user_id"].decode() != user_id:
            raise CorruptRecord("folder belongs to another user")
        vector = fields.get(b"vector_store_id")
        return Folder(
            id=folder_id,
            name=fields[b"name"].decode(),
            vector_store_id=vector.decode() if vector is not None else None,
            knowledge_base=fields.get(b"knowledge_base", b"").decode(),
            created_at=parse_time(fields[b"created_at"]),
            updated_at=parse_time(fields[b"updated_at"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, CorruptRecord):
            raise
        raise CorruptRecord(f"bad folder record: {exc!r}") from exc


def new_session_id() -> str:
    return str(uuid.uuid4())
