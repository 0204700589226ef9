"""Encoding and decoding between the models and what Redis holds. Pure functions, no I/O.

A session record is a hash. Metadata fields are plain text, readable in redis-cli:

    user_id, session_id, folder_id (absent when None), created_at, updated_at, ended_at (absent until
    ended; ISO-8601 UTC), version (int), schema (int), turns (messages appended so far),
    ttl_until (epoch ms when the TTL backstop of the session's keys runs out: Redis's bookkeeping,
    see keep_alive in lua/_lib.lua; the cache leaves it out)

The lean context (the context minus ``history`` and ``whiteboard_history``) is stored one top-level
field per hash field, ``c:<name>`` holding that field's JSON, and only where the value differs from the
reference default. ``user_id``, ``session_id`` and ``folder_id`` of the context are the metadata fields
themselves, stored once. Reading composes the fields back into one JSON object and decodes it with one
typed msgspec decode.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from .exceptions import InvalidInput
from .models import MAX_SAFE_INT, TutorContext
from .records import Session, SessionInfo

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
_str_decoder = msgspec.json.Decoder(str)

_CONTEXT_FIELDS: Final = frozenset(f.name for f in msgspec.structs.fields(TutorContext))
_STORED_FIELDS: Final = _CONTEXT_FIELDS - set(BULKY_FIELDS) - set(META_BACKED)


class CorruptRecord(ValueError):
    """A stored record that cannot be decoded (internal: reads turn it into None and a log line)."""


# --------------------------------------------------------------------------- time


def utc_now() -> dt.datetime:
    """The default clock: now, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def check_aware(now: dt.datetime) -> dt.datetime:
    """A clock reading in UTC; InvalidInput when it is not a timezone-aware datetime."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InvalidInput(f"the clock must give timezone-aware datetimes, got {now!r}")
    return now.astimezone(dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    """Readable UTC text stored in hashes: ``2026-11-24T04:42:22.123456+00:00``."""
    return moment.isoformat(timespec="microseconds")


def epoch_ms(moment: dt.datetime) -> int:
    """Expiry index score: whole milliseconds since the epoch."""
    return epoch_us(moment) // 1000


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def epoch_us(moment: dt.datetime) -> int:
    """User index score: whole microseconds since the epoch, exactly the ``updated_at`` it orders
    (integer arithmetic: a float timestamp would round some of them)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_time(raw: bytes | str) -> dt.datetime:
    """A stored ISO-8601 timestamp (it must carry its timezone) as a UTC datetime."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(dt.timezone.utc)


def flatten(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> list[str | bytes]:
    """Pairs as the flat ``[field, value, ...]`` list a script or HSET takes."""
    out: list[str | bytes] = []
    for pair in pairs:
        out.extend(pair)
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
    """The lean context JSON of a record as a TutorContext; raises CorruptRecord."""
    try:
        return _context_decoder.decode(blob)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise CorruptRecord(str(exc)) from exc


_packer: Final = msgspec.msgpack.Encoder()
_unpacker: Final = msgspec.msgpack.Decoder(TutorContext)


def pack_context(context: TutorContext) -> bytes:
    """A decoded context as MessagePack, for the cache (``unpack_context`` decodes it about a
    quarter faster than its JSON, validating it the same); b"" when MessagePack cannot hold it
    (a free-form integer past 64 bits): then the JSON stays the way."""
    try:
        return _packer.encode(context)
    except (OverflowError, TypeError, ValueError):
        return b""


def unpack_context(packed: bytes) -> TutorContext:
    """A context from ``pack_context``; raises CorruptRecord."""
    try:
        return _unpacker.decode(packed)
    except msgspec.DecodeError as exc:
        raise CorruptRecord(str(exc)) from exc


def checked_lean_json(fields: Mapping[bytes, bytes], user_id: str) -> bytes:
    """The lean context JSON of a record whose metadata is sound (``meta_problem``); raises
    CorruptRecord. What reading a context needs: the metadata's values are parsed only for a
    Session (``session_meta``)."""
    problem = meta_problem([fields.get(name) for name in _META_KEYS], user_id)
    if problem:
        raise CorruptRecord(problem)
    return lean_json(fields)


def session_meta(fields: Mapping[bytes, bytes], user_id: str, session_id: str) -> dict[str, Any]:
    """The metadata of a record as a Session's keyword arguments; raises CorruptRecord."""
    return _meta(fields, user_id, session_id)


def session_from_fields(fields: Mapping[bytes, bytes], user_id: str, session_id: str) -> Session:
    """Decode a record read with HGETALL; raises CorruptRecord when it cannot be decoded."""
    meta = _meta(fields, user_id, session_id)
    return Session(context=decode_context(lean_json(fields)), **meta)


#: Record fields that Redis's bookkeeping keeps and a session never shows: ``ttl_until``, when the
#: TTL of the session's keys runs out (epoch ms; see keep_alive in lua/_lib.lua). The cache leaves
#: them out.
BOOKKEEPING_FIELDS: Final = (b"ttl_until",)

#: The record fields every write script checks before it writes (record_meta in lua/_lib.lua).
META_FIELDS: Final = (
    "user_id",
    "version",
    "turns",
    "created_at",
    "updated_at",
    "c:latest_turn_no",
    "c:latest_snapshot_index",
)
_META_KEYS: Final = tuple(name.encode() for name in META_FIELDS)
_INT = re.compile(rb"-?[0-9]+\Z")
_TIME = re.compile(
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}.*([+-][0-9]{2}:[0-9]{2}|Z)\Z", re.S
)


def _is_int(value: bytes | None) -> bool:
    return value is not None and bool(_INT.match(value)) and abs(int(value)) <= MAX_SAFE_INT


def meta_problem(values: list[bytes | None], user_id: str) -> str | None:
    """What is damaged in a record's META_FIELDS (HMGET order): the same check as the write
    scripts' record_meta. None when sound; "" when there is no user_id (no record, or damage:
    the caller tells them apart)."""
    owner, version, turns, created, updated, turn, snapshot = values
    if owner is None:
        return ""
    if owner != user_id.encode():
        return "the record names another user than its key"
    if not _is_int(version):
        return "version is not an integer"
    for name, value in (
        ("turns", turns),
        ("c:latest_turn_no", turn),
        ("c:latest_snapshot_index", snapshot),
    ):
        if value is not None and not _is_int(value):
            return f"{name} is not an integer"
    if not (created and _TIME.match(created) and updated and _TIME.match(updated)):
        return "created_at or updated_at is not an ISO-8601 time"
    return None


def _meta(fields: Mapping[bytes, bytes], user_id: str, session_id: str) -> dict[str, Any]:
    problem = meta_problem([fields.get(name) for name in _META_KEYS], user_id)
    if problem:
        raise CorruptRecord(problem)
    try:
        stored_user = fields[b"user_id"].decode()
        if stored_user != user_id:
            raise CorruptRecord(f"record names user {stored_user!r}, key names {user_id!r}")
        folder = fields.get(b"folder_id")
        ended = fields.get(b"ended_at")
        return {
            "session_id": uuid.UUID(session_id),
            "user_id": user_id,
            "folder_id": uuid.UUID(folder.decode()) if folder is not None else None,
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


_infos_decoder: Final = msgspec.json.Decoder(list[SessionInfo])
_strs_decoder: Final = msgspec.json.Decoder(list[str])
#: the text around each value of a listing row's JSON (the user id's text is the call's)
_ROW_TEXT: Final = (
    b'{"session_id":"',
    b',"created_at":"',
    b'","updated_at":"',
    b'","ended_at":',
    b',"version":',
    b',"session_goal":',
    b"},",
)
_ROW_PIECES: Final = 15  # per row: 8 texts (the user's id in the second) around 7 values
_UTC: Final = b"+00:00"


def infos_from_rows(flat: list[Any], user_id: str) -> list[SessionInfo] | None:
    """Every row of a listing (``[session_id, *values of LISTING_FIELDS]`` after one another) in
    one msgspec decode: the metadata parsed in C rather than value by value (``info_from_row``
    costs several times more a row). Only rows exactly as the store writes them go this way (the
    owner, UTC times, plain integers and texts, a goal that is one JSON string); None as soon as
    one is not, for the per-row path to report what is wrong with which.

    Each check runs over a whole column at once (C loops: slices, joins, counts), not row by
    row: a listing of 100 costs about a third of what a Python loop over its rows did."""
    width = 1 + len(LISTING_FIELDS)
    n, rest = divmod(len(flat), width)
    if rest or not n:
        return None if rest else []
    sids, users, folders, created, updated, ended, versions, goals = (
        flat[i::width] for i in range(width)
    )
    if users.count(user_id.encode()) != n or None in sids or None in versions:
        return None
    if None in created or None in updated:
        return None
    folder_texts = [f for f in folders if f is not None]
    ended_texts = [e for e in ended if e is not None]
    times = [*created, *updated, *ended_texts]
    plain = b"".join((*sids, *folder_texts, *times))
    if b'"' in plain or b"\\" in plain:
        return None
    # with no quote in any of them, each time ends in +00:00 exactly when the quote-joined text
    # holds one +00:00" per time
    if (b'"'.join(times) + b'"').count(_UTC + b'"') != len(times):
        return None
    if b"" in versions or not b"".join(versions).isdigit() or max(map(len, versions)) > 15:
        return None
    present = [g for g in goals if g is not None]
    if present:
        # each goal one JSON string: joined, they are an array of exactly that many strings (an
        # empty goal or one with a top-level comma, a bracket or another type cannot make one)
        try:
            if len(_strs_decoder.decode(b"[" + b",".join(present) + b"]")) != len(present):
                return None
        except msgspec.DecodeError:
            return None
    # the JSON of every row, joined in one go: the texts around the values and each column's
    # values, interleaved by slice assignments (no loop over the rows)
    user_text = b'","user_id":' + _encoder.encode(user_id) + b',"folder_id":'
    pieces: list[bytes] = [b""] * (_ROW_PIECES * n)
    for at, text in enumerate((_ROW_TEXT[0], user_text, *_ROW_TEXT[1:])):
        pieces[2 * at :: _ROW_PIECES] = [text] * n
    columns = (
        sids,
        _quoted_or_null(folders, len(folder_texts)),
        created,
        updated,
        _quoted_or_null(ended, len(ended_texts)),
        versions,
        goals if len(present) == n else [b"null" if g is None else g for g in goals],
    )
    for at, column in enumerate(columns):
        pieces[2 * at + 1 :: _ROW_PIECES] = column
    pieces[-1] = b"}]"
    try:
        return _infos_decoder.decode(b"[" + b"".join(pieces))
    except msgspec.DecodeError:
        return None


def _quoted_or_null(column: list[bytes | None], present: int) -> list[bytes]:
    """Each value of a listing column as JSON text: quoted, or null where absent."""
    if not present:  # the usual case for folders and ends: no loop
        return [b"null"] * len(column)
    return [b"null" if v is None else b'"' + v + b'"' for v in column]


def new_session_id() -> uuid.UUID:
    """A new session id: a random UUID4."""
    return uuid.uuid4()
