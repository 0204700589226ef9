"""Validation that reports every problem, each with its JSON path (pure).

msgspec stops at the first error; this walks the type tree from ``msgspec.inspect`` and collects all
of them (``$.user_model_state.concepts["algebra"].alpha: expected int, got str``), then lets msgspec
build the normalized context.
"""

from __future__ import annotations

import difflib
import json
import math
import operator
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from itertools import accumulate
from typing import Any, Final, NamedTuple

import msgspec
import msgspec.inspect as mi

from .models import MAX_FLOAT, TutorContext
from .records import ValidationResult

#: Objects and arrays nest at most this deep in anything the store is given (a context, a message
#: payload, a batch of whiteboard actions), counting the outermost as 1. Deeper is InvalidInput.
MAX_DEPTH: Final = 64

_CONTEXT_TYPE = mi.type_info(TutorContext)
assert isinstance(_CONTEXT_TYPE, mi.StructType)
_FIELDS: Final = {f.encode_name: f for f in _CONTEXT_TYPE.fields}
_JSON_NAMES = {
    dict: "object",
    list: "array",
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _expected(t: mi.Type) -> str:
    if isinstance(t, mi.StructType):
        return "object"
    if isinstance(t, mi.UnionType):
        return " | ".join(_expected(m) for m in t.types)
    if isinstance(t, mi.LiteralType):
        return " | ".join(json.dumps(v) for v in t.values)
    names = {
        mi.StrType: "str",
        mi.IntType: "int",
        mi.FloatType: "float",
        mi.BoolType: "bool",
        mi.NoneType: "null",
        mi.UUIDType: "uuid",
        mi.ListType: "array",
        mi.DictType: "object",
    }
    return names.get(type(t), type(t).__name__)


def collect_errors(value: Any, t: mi.Type, path: str, errors: list[str], level: int = 1) -> None:
    """Append to ``errors`` every way ``value`` (JSON-shaped builtins) fails type ``t``.

    Besides the types: keys a Struct does not have (``unknown field``, with the nearest name), and
    NaN or infinity in float fields and in free-form values. ``level`` is how deep ``value`` sits
    (the context itself: 1); callers check the nesting first (``first_too_deep``).
    """
    if isinstance(t, mi.AnyType):
        _free_form_errors(value, path, errors, level)
        return
    if isinstance(t, mi.UnionType):
        if value is None and any(isinstance(m, mi.NoneType) for m in t.types):
            return
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        attempts = []
        for member in members:
            found: list[str] = []
            collect_errors(value, member, path, found, level)
            if not found:
                return
            attempts.append(found)
        if len(attempts) == 1:
            errors.extend(attempts[0])
        else:
            errors.append(f"{path}: expected {_expected(t)}, got {_kind(value)}")
        return
    if isinstance(t, mi.FloatType) and value.__class__ is float and not _finite(value):
        errors.append(_not_finite(path, value))
        return
    ok = _scalar_ok(value, t)
    if ok is not None:
        if not ok:
            errors.append(f"{path}: expected {_expected(t)}, got {_describe(value, t)}")
        return
    if isinstance(t, mi.ListType):
        if not isinstance(value, list):
            errors.append(f"{path}: expected array, got {_kind(value)}")
            return
        for i, item in enumerate(value):
            collect_errors(item, t.item_type, f"{path}[{i}]", errors, level + 1)
        return
    if isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {_kind(value)}")
            return
        for key, item in value.items():
            sub = f"{path}[{_key(key)}]"
            if not isinstance(key, str):
                errors.append(f"{sub}: object keys must be str")
            collect_errors(item, t.value_type, sub, errors, level + 1)
        return
    if isinstance(t, mi.StructType):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {_kind(value)}")
            return
        for field in t.fields:
            if field.encode_name in value:
                sub = f"{path}.{field.name}"
                collect_errors(value[field.encode_name], field.type, sub, errors, level + 1)
            elif field.required:
                errors.append(f"{path}.{field.name}: required field is missing")
        names = _field_names(t)
        for key in value:
            if key not in names:
                errors.append(unknown_field(path, key, names))
        return
    errors.append(f"{path}: unsupported type {t!r}")  # pragma: no cover - models use none other


# --------------------------------------------------------------------------- strict input


def unknown_field(path: str, key: object, names: Collection[str]) -> str:
    """The error for a key a Struct does not have, with the nearest field name when one is close."""
    if not isinstance(key, str):
        return f"{path}[{_key(key)}]: unknown field (object keys must be str)"
    where = f"{path}.{key}" if key.isidentifier() else f"{path}[{_key(key)}]"
    near = difflib.get_close_matches(key, list(names), n=1)
    hint = f", did you mean {near[0]!r}?" if near else ""
    return f"{where}: unknown field{hint}"


def _field_names(t: mi.StructType) -> frozenset[str]:
    names = _NAMES.get(t.cls)
    if names is None:
        names = _NAMES[t.cls] = frozenset(f.encode_name for f in t.fields)
    return names


_NAMES: dict[type, frozenset[str]] = {}


def _key(key: object) -> str:
    """An object key as a path step's text: ``"algebra"`` (JSON string syntax)."""
    return json.dumps(key if isinstance(key, str) else str(key), ensure_ascii=False)


def _finite(number: float) -> bool:
    return -MAX_FLOAT <= number <= MAX_FLOAT  # False for NaN too


def _not_finite(path: str, number: float) -> str:
    name = "NaN" if math.isnan(number) else ("inf" if number > 0 else "-inf")
    return f"{path}: expected a finite number, got {name} (JSON has no NaN or infinity)"


def _free_form_errors(value: Any, path: str, errors: list[str], level: int) -> None:
    """NaN and infinity anywhere in a free-form (``Any``) value, JSON-shaped builtins."""
    if value.__class__ is float:
        if not _finite(value):
            errors.append(_not_finite(path, value))
    elif level > MAX_DEPTH:  # callers check the nesting first; this only keeps the walk bounded
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            _free_form_errors(item, f"{path}[{_key(key)}]", errors, level + 1)
    elif isinstance(value, (list, tuple)):  # to_builtins keeps tuples
        for i, item in enumerate(value):
            _free_form_errors(item, f"{path}[{i}]", errors, level + 1)


#: A step of a path: an object key or an array index.
Step = str | int


def first_too_deep(value: Any, level: int) -> list[Step] | None:
    """The steps from ``value`` to its first object or array (depth first, in order) nested deeper
    than MAX_DEPTH; None when there is none. ``level``: how deep ``value`` itself sits (the
    document's outermost value: 1). Takes Python values as given (dicts, lists, tuples, sets,
    Structs); never recurses further than MAX_DEPTH, so cycles and 100,000 levels are fine."""
    steps = _too_deep(value, level)
    if steps is not None:
        steps.reverse()
    return steps


def _too_deep(value: Any, level: int) -> list[Step] | None:
    items: Iterable[tuple[Step, Any]]
    if isinstance(value, dict):
        items = ((k if isinstance(k, str) else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = enumerate(value)
    elif isinstance(value, msgspec.Struct):
        items = zip(value.__struct_encode_fields__, msgspec.structs.astuple(value), strict=True)
    else:
        return None
    if level > MAX_DEPTH:
        return []
    for step, item in items:
        found = _too_deep(item, level + 1)
        if found is not None:
            found.append(step)
            return found
    return None


def too_deep_error(path: str, steps: list[Step], t: mi.Type) -> str:
    """The error for a value nested too deep, at ``path`` + ``steps`` (written as ``collect_errors``
    writes paths: ``.field`` in a Struct, ``["key"]`` in a dict, ``[i]`` in an array)."""
    for step in steps:
        t = _container(t, step)
        if isinstance(step, int):
            path += f"[{step}]"
            t = t.item_type if isinstance(t, mi.ListType) else _ANY
        elif isinstance(t, mi.StructType):
            field = next((f for f in t.fields if f.encode_name == step), None)
            if field is None:
                path += f".{step}" if step.isidentifier() else f"[{_key(step)}]"
                t = _ANY
            else:
                path += f".{field.name}"
                t = field.type
        else:
            path += f"[{_key(step)}]"
            t = t.value_type if isinstance(t, mi.DictType) else _ANY
    return f"{path}: nested deeper than {MAX_DEPTH} levels of objects and arrays"


_ANY: Final = mi.AnyType()


def _container(t: mi.Type, step: Step) -> mi.Type:
    """The member of a union that a step into an object (str) or array (int) goes through."""
    if isinstance(t, mi.UnionType):
        kinds = (mi.ListType,) if isinstance(step, int) else (mi.StructType, mi.DictType)
        return next((m for m in t.types if isinstance(m, kinds)), _ANY)
    return t


def field_errors(name: str, value: Any) -> list[str]:
    """Every problem of one top-level context field (``$.<name>``), given as a Python value or as
    JSON-shaped builtins: nesting deeper than MAX_DEPTH (then nothing else: the value is not
    walked further), else types, unknown keys, NaN and infinity. Writes and validation both
    report through this, so that they say the same."""
    return _field(name, value)[0]


def _field(name: str, value: Any) -> tuple[list[str], Any]:
    """(field_errors, the value as JSON-shaped builtins)."""
    field = _FIELDS[name]
    steps = first_too_deep(value, 2)
    if steps is not None:
        return [too_deep_error(f"$.{field.name}", steps, field.type)], None
    try:
        builtins = msgspec.to_builtins(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # deep in a dataclass
        return [f"$.{field.name}: cannot be encoded as JSON: {exc}"], None
    errors: list[str] = []
    collect_errors(builtins, field.type, f"$.{field.name}", errors, 2)
    return errors, builtins


def free_form_errors(value: Any, root: str) -> list[str]:
    """The problems of a free-form value given on its own (a message payload, a batch of whiteboard
    actions), with paths from ``root``: nesting deeper than MAX_DEPTH, else NaN and infinity."""
    steps = first_too_deep(value, 1)
    if steps is not None:
        return [too_deep_error(root, steps, _ANY)]
    try:
        builtins = msgspec.to_builtins(value)  # tuples, sets, Structs: as they will be encoded
    except (TypeError, ValueError, OverflowError, RecursionError):
        return []  # the encoder says why
    errors: list[str] = []
    _free_form_errors(builtins, root, errors, 1)
    return errors


def unfit(value: Any, level: int) -> bool:
    """Whether a free-form value at ``level`` holds NaN or infinity, or nests deeper than
    MAX_DEPTH: the quick yes or no of the write paths (``field_errors`` and ``free_form_errors``
    then say where)."""
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return False
    if isinstance(value, float):
        return not -MAX_FLOAT <= value <= MAX_FLOAT
    items: Iterable[Any]
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    elif isinstance(value, msgspec.Struct):
        items = msgspec.structs.astuple(value)
    else:
        return False
    if level > MAX_DEPTH:
        return True
    level += 1
    for item in items:  # noqa: SIM110 - a loop is faster than any() on a generator
        if unfit(item, level):
            return True
    return False


def _scalar_ok(value: Any, t: mi.Type) -> bool | None:
    """True/False for scalar types, None when ``t`` is a container (checked by the caller)."""
    if isinstance(t, mi.StrType):
        return isinstance(value, str)
    if isinstance(t, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(t, mi.IntType):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(t, mi.FloatType):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(t, mi.NoneType):
        return value is None
    if isinstance(t, mi.LiteralType):
        return value in t.values and type(value) in {type(v) for v in t.values}
    if isinstance(t, mi.UUIDType):
        if not isinstance(value, str):
            return False
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return None


def _describe(value: Any, t: mi.Type) -> str:
    if isinstance(t, (mi.LiteralType, mi.UUIDType)) and isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _kind(value)


def validate_context(data: object, *, max_bytes: int | None = None) -> ValidationResult:
    """Validate a context given as JSON bytes or str, a mapping, or a TutorContext.

    Reports every problem with its path, and returns the normalized TutorContext when there is none.
    Input is strict: keys the models do not have, NaN and infinity, and objects and arrays nested
    deeper than MAX_DEPTH are problems (each top-level field reports its first too-deep spot and
    nothing else). ``max_bytes`` bounds the lean JSON (history and whiteboard_history excluded),
    as writes do.
    """
    fields: dict[Any, Any]
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        try:
            decoded = _json_decoder.decode(data)
        except RecursionError:  # deeper than msgspec goes: find where without building it
            scanned = _scan_json(data)
            if isinstance(scanned, str):
                return _invalid(scanned)
            fields = scanned
        except msgspec.DecodeError as exc:
            return _invalid(f"$: not valid JSON: {exc}")
        else:
            if not isinstance(decoded, dict):
                return _invalid(f"$: expected object, got {_kind(decoded)}")
            fields = decoded
    elif isinstance(data, TutorContext):
        fields = {name: getattr(data, name) for name in data.__struct_fields__}
    elif isinstance(data, Mapping):
        fields = dict(data)
    else:
        return _invalid(f"$: expected JSON bytes, str or a mapping, got {type(data).__name__}")
    errors: list[str] = []
    builtins: dict[str, Any] = {}
    for key, value in fields.items():
        field = _FIELDS.get(key) if isinstance(key, str) else None
        if field is None:
            errors.append(unknown_field("$", key, _FIELDS))
        elif isinstance(value, _TooDeep):
            errors.append(too_deep_error(f"$.{key}", value.steps, field.type))
        else:
            found, builtins[key] = _field(key, value)
            errors.extend(found)
    for field in _FIELDS.values():
        if field.required and field.encode_name not in fields:
            errors.append(f"$.{field.name}: required field is missing")
    if errors:
        return ValidationResult(valid=False, errors=errors, context=None)
    try:
        context = msgspec.convert(builtins, TutorContext)
    except msgspec.ValidationError as exc:  # pragma: no cover - the walk above found nothing
        return _invalid(str(exc))
    if max_bytes is not None:
        lean = msgspec.structs.replace(context, history=[], whiteboard_history=[])
        size = len(msgspec.json.encode(lean))
        if size > max_bytes:
            return _invalid(
                f"$: lean context is {size} bytes, more than max_context_bytes={max_bytes}"
            )
    return ValidationResult(valid=True, errors=[], context=context)


def _invalid(message: str) -> ValidationResult:
    return ValidationResult(valid=False, errors=[message], context=None)


# --------------------------------------------------------------------------- JSON too deep to decode

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


class _TooDeep(NamedTuple):
    """A member of a JSON object that ``_scan_json`` did not decode: where it is too deep."""

    steps: list[Step]


#: JSON input decodes numbers beyond the float range as infinity, so that they are reported
#: where they are (msgspec would only say "Number out of range")
_json_decoder: Final = msgspec.json.Decoder(float_hook=float)


def _scan_json(data: bytes | bytearray | memoryview | str) -> dict[str, Any] | str:
    """A JSON object too deep for msgspec, member by member, without building it: each member's
    value decoded, or, when it nests deeper than MAX_DEPTH, ``_TooDeep`` with the steps to its
    first too-deep spot (as ``first_too_deep`` finds it). An error instead when the outermost
    value is not an object or the text is not JSON. Only ever runs on input that is refused."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    blank = b""  # raw with the insides of strings blanked, made at the first too-deep spot
    # the open objects and arrays, outermost first: [is_object, step, expecting a key]
    stack: list[list[Any]] = []
    members: dict[str, Any] = {}
    start, resume, closed = 0, 0, False
    try:
        while resume >= 0:
            tokens, resume = _TOKEN.finditer(raw, resume), -1
            for match in tokens:
                token = match.group()
                first = token[0]
                if closed:
                    raise ValueError(f"text after the outermost value at byte {match.start()}")
                if first == 0x22:  # a string: a key where one is expected
                    top = stack[-1] if stack else None
                    if top is not None and top[2]:
                        top[1], top[2] = json.loads(token), False
                elif first in b"[{":
                    if not stack and first != 0x7B:
                        return "$: expected object, got array"
                    if len(stack) >= MAX_DEPTH:  # too deep: note where, go on after the member
                        members[stack[0][1]] = _TooDeep([frame[1] for frame in stack[1:]])
                        blank = blank or _STRING.sub(_blanked, raw)
                        resume = _closing(blank, match.start(), len(stack) - 1)
                        del stack[1:]
                        break
                    stack.append([first == 0x7B, None if first == 0x7B else 0, first == 0x7B])
                elif first in b",]}":
                    key = stack[0][1]
                    done = len(stack) == 1 and key is not None  # the end of a member's value
                    if done and not isinstance(members.get(key), _TooDeep):
                        members[key] = _json_decoder.decode(raw[start : match.start()])
                    if first == 0x2C:
                        top = stack[-1]
                        if top[0]:
                            top[2] = True
                        else:
                            top[1] += 1
                    else:
                        stack.pop()
                        closed = not stack
                elif len(stack) == 1:  # ":" of a member of the outermost object
                    start = match.end()
        if not closed:
            raise ValueError("the outermost object is not closed")
    except (IndexError, TypeError, ValueError, msgspec.DecodeError, RecursionError) as exc:
        return f"$: not valid JSON: {exc}"
    return members


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN_TABLE = bytes(1 if c in b"[{" else 0 for c in range(256))
_CLOSE_TABLE = bytes(1 if c in b"]}" else 0 for c in range(256))


def _blanked(match: re.Match[bytes]) -> bytes:
    return b'"' + b" " * (len(match.group()) - 2) + b'"'


def _closing(blank: bytes, position: int, enclosing: int) -> int:
    """Where the scan goes on after a too-deep spot: just past the closing bracket of the
    ``enclosing``-th object or array around the one that opens at ``position`` (``blank``: the
    text with no brackets inside strings). Linear, at C speed: running sums over windows that
    double. Raises ValueError when the text ends first."""
    level, size = 0, 4096
    while position < len(blank):
        window = blank[position : position + size]
        opens = accumulate(window.translate(_OPEN_TABLE))
        closes = accumulate(window.translate(_CLOSE_TABLE))
        levels = list(map(operator.sub, opens, closes))
        try:
            return position + levels.index(-enclosing - level) + 1
        except ValueError:
            level += levels[-1]
            position += size
            size *= 2
    raise ValueError("the outermost object is not closed")
