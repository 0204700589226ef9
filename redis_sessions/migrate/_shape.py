"""The context in the original's shape: its lean dict (what ``sessions.context_data`` holds), read
leniently the way the original's reader did, and written in full the way pydantic dumped it."""

from __future__ import annotations

import functools
import operator
import types
import typing
import uuid
from typing import Any, Final, NamedTuple

import msgspec

from ..codec import BULKY_FIELDS
from ..models import TutorContext

_FIELDS: Final = frozenset(f.name for f in msgspec.structs.fields(TutorContext))
_LEAN_FIELDS: Final = tuple(
    f.name for f in msgspec.structs.fields(TutorContext) if f.name not in BULKY_FIELDS
)


def _mirror(t: Any, made: dict[type, Any]) -> Any:
    """``t`` with every context Struct replaced by a copy that keeps its defaults when encoded."""
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        if t not in made:
            hints = typing.get_type_hints(t, include_extras=True)
            fields: list[tuple[Any, ...]] = []
            for f in msgspec.structs.fields(t):
                kind = _mirror(hints[f.name], made)
                if f.default is not msgspec.NODEFAULT:
                    fields.append((f.name, kind, f.default))
                elif f.default_factory is not msgspec.NODEFAULT:
                    fields.append((f.name, kind, msgspec.field(default_factory=f.default_factory)))
                else:
                    fields.append((f.name, kind))
            made[t] = msgspec.defstruct(f"Full{t.__name__}", fields, kw_only=True)
        return made[t]
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(t)
        args = (_mirror(inner, made), *extras)
        return typing.Annotated[args]
    if origin in (list, dict):
        return origin[tuple(_mirror(a, made) for a in typing.get_args(t))]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, (_mirror(a, made) for a in typing.get_args(t)))
    return t


#: TutorContext (and every Struct inside it) as Structs that encode their defaults too: pydantic's
#: ``model_dump`` in one msgspec call. ``history`` and ``whiteboard_history`` are dropped after.
_FULL: Any = _mirror(TutorContext, {})


def full_dump(context: TutorContext) -> dict[str, Any]:
    """A context as the JSON-shaped builtins pydantic's ``model_dump(mode="json")`` gives: every
    field, defaults included, UUIDs as text, without ``history`` and ``whiteboard_history``."""
    full = msgspec.convert(context, _FULL, from_attributes=True)
    data: dict[str, Any] = msgspec.to_builtins(full)
    for name in BULKY_FIELDS:
        del data[name]
    return data


def _full_from(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a lean dict with the row's ids) converted as the store converts it, in full."""
    out: dict[str, Any] = msgspec.to_builtins(msgspec.convert(data, _FULL))
    for name in BULKY_FIELDS:
        del out[name]
    return out


class Note(NamedTuple):
    """Something the lenient read of a context had to do: ``action`` is repaired or skipped."""

    reason: str
    action: str
    detail: str = ""


def read_context(
    value: Any, *, session_id: uuid.UUID, user_id: str, folder_id: uuid.UUID | None
) -> tuple[TutorContext | None, list[Note]]:
    """``context_data`` as a TutorContext of the row (session id, user id and folder id are the
    row's), or None when it cannot be one; and a note of everything that was not as the store holds
    it. As the original's reader: a JSON string is parsed, missing ids are filled from the row, and
    a context that fails validation is refused (the original read it as no session)."""
    notes: list[Note] = []
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            return None, [Note("context_data is a string that is not JSON", "skipped", str(exc))]
        notes.append(Note("context_data is a JSON string", "repaired", "parsed"))
    if not isinstance(value, dict):
        kind = type(value).__name__
        return None, [*notes, Note(f"context_data is a {kind}, not an object", "skipped")]
    data = dict(value)
    bulky = [name for name in BULKY_FIELDS if name in data]
    if bulky:
        sizes = ", ".join(
            f"{name}: {len(data[name]) if isinstance(data[name], list) else '?'} entries"
            for name in bulky
        )
        for name in bulky:
            del data[name]
        notes.append(
            Note(
                "whole context with history inside",
                "repaired",
                f"{sizes} dropped from the context (messages and snapshots are their own rows)",
            )
        )
    for name, want in (("session_id", str(session_id)), ("user_id", user_id)):
        got = data.get(name)
        if got is None:
            notes.append(Note(f"context_data has no {name}", "repaired", "filled from the row"))
        elif got != want:
            notes.append(
                Note(
                    f"context_data.{name} is not the row's", "repaired", f"{got!r}: the row's kept"
                )
            )
        data[name] = want
    row_folder = str(folder_id) if folder_id is not None else None
    if data.get("folder_id") != row_folder:
        notes.append(
            Note(
                "context_data.folder_id is not the row's folder_id (a folder that is gone)",
                "repaired",
                f"{data.get('folder_id')!r}: the row's {row_folder!r} kept",
            )
        )
    data["folder_id"] = row_folder
    unknown = sorted(key for key in data if key not in _FIELDS)
    for key in unknown:
        del data[key]
    try:
        full = _full_from(data)
        context = msgspec.convert(full, TutorContext)
    except msgspec.ValidationError as exc:
        return None, [*notes, Note("context_data fails validation", "skipped", str(exc))]
    if unknown:
        notes.append(Note("context_data has unknown fields", "repaired", f"dropped: {unknown}"))
    missing = sorted(name for name in _LEAN_FIELDS if name not in data)
    if missing:
        notes.append(
            Note("context_data lacks fields", "repaired", f"filled with defaults: {missing}")
        )
    changed = []
    if data != full:  # the common case compares equal (in C): nothing to say
        top = tuple(f"$.{name}: only in Redis" for name in missing)
        changed = [c for c in differences(data, full, "$") if not c.startswith(top)]
    if changed:
        notes.append(Note("context_data normalized", "repaired", "; ".join(changed[:5])))
    return context, notes


def differences(
    a: Any, b: Any, path: str, *, skip_missing: bool = False, limit: int = 20
) -> list[str]:
    """Where PostgreSQL's value ``a`` and the store's ``b`` differ (paths, at most ``limit``).
    Numbers compare by value (1 equals 1.0, as in jsonb). ``skip_missing``: keys absent from ``a``
    are not differences."""
    out: list[str] = []
    _diff(a, b, path, out, skip=skip_missing, limit=limit)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str], *, skip: bool, limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            if key not in a:
                if not skip:
                    out.append(f"{path}.{key}: only in Redis")
            elif key not in b:
                out.append(f"{path}.{key}: only in PostgreSQL")
            else:
                _diff(a[key], b[key], f"{path}.{key}", out, skip=skip, limit=limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out, skip=skip, limit=limit)
        return
    if isinstance(a, bool) or isinstance(b, bool):
        same = type(a) is type(b) and a == b
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        same = a == b
    else:
        same = type(a) is type(b) and a == b
    if not same:
        out.append(f"{path}: {_short(a)} != {_short(b)}")


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
