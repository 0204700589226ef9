"""Writing a context: a TutorContext as the record fields a write sends, validated, and the change
that takes a stored record to them (pure functions; the record layout is in codec's docstring).

Each field is encoded on its own and, unless it is byte for byte what Redis holds already,
validated with its own decoder, so that an error names the field.
"""

from __future__ import annotations

import datetime as dt
import operator
import uuid
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import msgspec
import msgspec.inspect as mi

from .codec import (
    _STORED_FIELDS,
    MONOTONIC_FIELDS,
    SCHEMA_VERSION,
    _encoder,
    iso,
)
from .exceptions import InvalidInput
from .keys import check_uuid
from .models import MAX_FLOAT, TutorContext
from .validation import field_errors, unfit

#: Where NaN, infinity or deep nesting can hide in a field that holds the declared type: the
#: attributes from the field's value to a float (False) or a free-form value (True), and how deep
#: that sits in the context (the context itself: 1).
Probe = tuple[tuple[str, ...], int, bool]


class _StoredField(NamedTuple):
    """How one stored context field is written: its attribute, hash field, default and checker."""

    name: str
    key: bytes  # b"c:<name>"
    #: the default itself when it is an immutable scalar (compared without encoding), else _MUTABLE
    scalar_default: Any
    default_json: bytes | None  # None: the field has no default
    decoder: msgspec.json.Decoder[Any]  # the field's declared type, to validate what was encoded
    probes: tuple[Probe, ...] | None  # None: no float or free-form value inside
    overhead: int  # what the field adds to the lean JSON besides its value: ,"<name>":


_MUTABLE: Final = object()
_SCALARS: Final = (type(None), bool, int, float, str)


def _stored_field(f: msgspec.structs.FieldInfo) -> _StoredField:
    if f.default is not msgspec.NODEFAULT:
        default: Any = f.default
    elif f.default_factory is not msgspec.NODEFAULT:
        default = f.default_factory()
    else:
        default = msgspec.NODEFAULT
    scalar = default if type(default) in _SCALARS else _MUTABLE
    return _StoredField(
        name=f.name,
        key=b"c:" + f.name.encode(),
        scalar_default=scalar,
        default_json=None if default is msgspec.NODEFAULT else _encoder.encode(default),
        decoder=msgspec.json.Decoder(f.type),
        probes=tuple(_probes(mi.type_info(f.type), (), 2)) or None,
        overhead=len(f.name) + 4,
    )


def _probes(t: mi.Type, chain: tuple[str, ...], level: int) -> list[Probe]:
    """The probes of a value of type ``t`` reached by ``chain``, at ``level``."""
    if isinstance(t, mi.UnionType):
        return [p for member in t.types for p in _probes(member, chain, level)]
    if isinstance(t, mi.FloatType):
        return [(chain, level, False)]
    if isinstance(t, mi.StructType):
        return [p for f in t.fields for p in _probes(f.type, (*chain, f.name), level + 1)]
    if isinstance(t, (mi.ListType, mi.DictType)):
        inner = t.item_type if isinstance(t, mi.ListType) else t.value_type
        # a container of floats or free-form values (or of Structs with some) is walked whole
        return [(chain, level, True)] if _probes(inner, (), level + 1) else []
    if isinstance(t, mi.AnyType):
        return [(chain, level, True)]
    return []


def _unfit(value: Any, probes: tuple[Probe, ...]) -> bool:
    """Whether a probe of a field's value finds NaN, infinity, or nesting deeper than MAX_DEPTH."""
    for chain, level, free in probes:
        found = value
        for attribute in chain:
            found = getattr(found, attribute, None)
        if found is None:
            continue
        if free:
            if unfit(found, level):
                return True
        elif isinstance(found, float) and not -MAX_FLOAT <= found <= MAX_FLOAT:
            return True
    return False


def _refuse(name: str, value: Any) -> None:
    """Raise InvalidInput with the first problem validation finds in field ``name``, if any: the
    same message as ``validate_session_context`` gives for it."""
    errors = field_errors(name, value)
    if errors:
        raise InvalidInput(f"invalid context: {errors[0]}")


#: Every stored context field, in declaration order.
_STORED: Final = tuple(
    _stored_field(f) for f in msgspec.structs.fields(TutorContext) if f.name in _STORED_FIELDS
)
#: The stored fields' values of a context, in _STORED's order (one call, in C).
_VALUES: Final = operator.attrgetter(*(f.name for f in _STORED))
#: Hash fields an update may remove: every stored context field but the monotonic ones, and
#: folder_id. (A ``c:`` field this version does not know, written by a newer one, is left alone.)
REMOVABLE_FIELDS: Final = (
    *(f.key for f in _STORED if f.name not in MONOTONIC_FIELDS),
    b"folder_id",
)


def encode_context(
    context: TutorContext,
    *,
    user_id: str,
    session_id: str,
    max_bytes: int,
    stored: Mapping[bytes, bytes] | None = None,
) -> dict[bytes, bytes]:
    """The record fields of ``context``: ``c:<name>`` -> that field's JSON, for every field that
    differs from its default, plus ``folder_id`` when set.

    Checks that the context belongs to (user_id, session_id), that every field has its declared type
    (a Struct built by hand is not validated by msgspec, so a wrong type would only fail on a later
    read), that no float is NaN or infinite (JSON has neither: they would be written as null), that
    free-form values nest at most MAX_DEPTH deep, and that the lean JSON fits in ``max_bytes``.
    Raises InvalidInput, writing nothing, with the message validation gives for the problem.
    ``history`` and ``whiteboard_history`` are left out: they are never stored in the record.

    ``stored``: the record as Redis holds it, when known (the cached one). A field whose JSON is
    byte for byte what is stored is not validated again: it was read back from Redis already
    (only its floats and free-form values are, which equal JSON can hide: NaN is written as null).
    (Encoding the whole context once and validating it with one decode is no faster: measured,
    the per-field decoders cost what one whole decode does, and splitting the JSON adds to it.)
    """
    if not isinstance(context, TutorContext):
        raise InvalidInput(f"context must be a TutorContext, got {type(context).__name__}")
    if context.user_id != user_id:
        raise InvalidInput(
            f"context.user_id is {context.user_id!r}, but the call is for {user_id!r}"
        )
    sid = context.session_id
    if (check_uuid(sid) if isinstance(sid, uuid.UUID) else str(sid)) != session_id:
        raise InvalidInput(
            f"context.session_id is {context.session_id}, but the call is for session {session_id}"
        )
    known = stored if stored is not None else {}
    fields: dict[bytes, bytes] = {}
    # size of the lean JSON object: {"user_id":...,"session_id":...,<fields>}
    size = 2 + 10 + len(_encoder.encode(user_id)) + 1 + 13 + 38
    encode, stored_value = _encoder.encode, known.get
    # the hot loop of writes
    for (name, key, default, default_json, decoder, probes, overhead), value in zip(
        _STORED, _VALUES(context), strict=True
    ):
        if default is not _MUTABLE:
            if value.__class__ is default.__class__ and value == default:
                continue
        elif value.__class__ is list and not value and default_json == b"[]":
            continue
        try:
            blob = encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                _refuse(name, value)  # nested too deep: say where
            raise InvalidInput(f"context cannot be encoded as JSON: {exc} - at `$.{name}`") from exc
        if blob == default_json:
            if blob == b"null" and value is not None:  # NaN or infinity, written as null
                _refuse(name, value)
            continue
        if stored_value(key) != blob:
            if probes is not None and _unfit(value, probes):
                _refuse(name, value)
            try:
                decoder.decode(blob)
            except (msgspec.ValidationError, RecursionError) as exc:
                _refuse(name, value)
                raise InvalidInput(f"invalid context: {_at(exc, name)}") from exc
        elif probes is not None and b"null" in blob and _unfit(value, probes):
            # what Redis holds already, but a NaN or an infinity is written as null: only a
            # JSON with a null in it can hide one
            _refuse(name, value)
        fields[key] = blob
        size += overhead + len(blob)  # ,"<name>":<json>
    if context.folder_id is not None:
        folder = str(context.folder_id).encode()
        fields[b"folder_id"] = folder
        size += 13 + 38
    if size > max_bytes:
        raise InvalidInput(f"lean context is {size} bytes, more than max_context_bytes={max_bytes}")
    return fields


_TURN, _SNAPSHOT = (b"c:" + name.encode() for name in MONOTONIC_FIELDS)
_MONOTONIC_KEYS: Final = frozenset((_TURN, _SNAPSHOT))


def monotonic_fields(latest_turn: int | bytes, latest_snapshot: int | bytes) -> dict[bytes, bytes]:
    """The monotonic context fields as a script reported storing them (0: absent)."""
    out = {}
    for name, value in ((_TURN, latest_turn), (_SNAPSHOT, latest_snapshot)):
        number = int(value)  # a script's integer reply
        if number > 0:
            out[name] = str(number).encode()
    return out


class ContextChange(NamedTuple):
    """What an update sends to ``update.lua`` (ARGV[10..]) besides the base version."""

    latest_turn_no: bytes  # b"": not given
    latest_snapshot_index: bytes
    removals: list[bytes]  # fields to remove (now at their default)
    sets: dict[bytes, bytes]  # fields to set

    def args(self) -> list[bytes | int]:
        """ARGV[11..] of ``update.lua``: the turn counters, the removals (counted) and the pairs to set."""
        flat: list[bytes | int] = [
            self.latest_turn_no,
            self.latest_snapshot_index,
            len(self.removals),
            *self.removals,
        ]
        for pair in self.sets.items():
            flat.extend(pair)
        return flat

    def applied_to(
        self, stored: Mapping[bytes, bytes], latest_turn: int, latest_snapshot: int
    ) -> dict[bytes, bytes]:
        """``stored`` with this change made, and the monotonic fields as the script left them."""
        record = dict(stored)
        for name in self.removals:
            record.pop(name, None)
        record.update(self.sets)
        record.update(monotonic_fields(latest_turn, latest_snapshot))
        return record


def whole_record(
    user_id: str,
    session_id: str,
    change: ContextChange,
    *,
    meta: list[bytes],
    latest_turn: int | bytes,
    latest_snapshot: int | bytes,
) -> dict[bytes, bytes]:
    """The record a whole-context update left, but for ``version`` and ``updated_at``: the context
    fields sent, the turn counters as the script kept them, and ``meta`` as ``update.lua`` read it
    (created_at, ended_at, turns, schema; b"" where absent)."""
    record = {b"user_id": user_id.encode(), b"session_id": session_id.encode()}
    for name, value in zip((b"created_at", b"ended_at", b"turns", b"schema"), meta, strict=True):
        if value:
            record[name] = value
    record.update(change.sets)
    record.update(monotonic_fields(latest_turn, latest_snapshot))
    return record


def context_change(
    fields: Mapping[bytes, bytes], stored: Mapping[bytes, bytes] | None
) -> ContextChange:
    """The update that makes a record hold the context ``fields`` (from ``encode_context``).

    With ``stored`` (the record as Redis holds it at some version, the cached one) only what
    differs from it; without, the whole context: every field, and every removable one it lacks.
    """
    turn, snapshot = fields.get(_TURN, b""), fields.get(_SNAPSHOT, b"")
    if stored is None:
        removals = [name for name in REMOVABLE_FIELDS if name not in fields]
        sets = {k: v for k, v in fields.items() if k not in _MONOTONIC_KEYS}
    else:
        removals = [name for name in REMOVABLE_FIELDS if name in stored and name not in fields]
        sets = {k: v for k, v in fields.items() if stored.get(k) != v}
        sets.pop(_TURN, None)
        sets.pop(_SNAPSHOT, None)
    return ContextChange(turn, snapshot, removals, sets)


def _at(exc: msgspec.ValidationError | RecursionError, name: str) -> str:
    """A field decoder's error, with the path from the context's root (``$.<name>...``)."""
    message = str(exc)
    if " - at `$" in message:
        return message.replace(" - at `$", f" - at `$.{name}", 1)
    return f"{message} - at `$.{name}`"


_SCHEMA: Final = str(SCHEMA_VERSION).encode()


def record_fields(
    *,
    user_id: str,
    session_id: str,
    now: dt.datetime,
    context_fields: Mapping[bytes, bytes],
) -> dict[bytes, bytes]:
    """Every field of a new session record (as Redis will hold it)."""
    stamp = iso(now).encode()
    record = {
        b"user_id": user_id.encode(),
        b"session_id": session_id.encode(),
        b"created_at": stamp,
        b"updated_at": stamp,
        b"version": b"1",
        b"schema": _SCHEMA,
    }
    record.update(context_fields)
    return record
