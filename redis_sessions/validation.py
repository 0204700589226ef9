"""Validation that reports every problem, each with its JSON path (pure).

msgspec stops at the first error; this walks the type tree from ``msgspec.inspect`` and collects all
of them (``$.user_model_state.concepts["algebra"].alpha: expected int, got str``), then lets msgspec
build the normalized context.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi

from .models import TutorContext
from .records import ValidationResult

_CONTEXT_TYPE = mi.type_info(TutorContext)
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


def collect_errors(value: Any, t: mi.Type, path: str, errors: list[str]) -> None:
    """Append to ``errors`` every way ``value`` (JSON-shaped builtins) fails type ``t``."""
    if isinstance(t, mi.AnyType):
        return
    if isinstance(t, mi.UnionType):
        if value is None and any(isinstance(m, mi.NoneType) for m in t.types):
            return
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        attempts = []
        for member in members:
            found: list[str] = []
            collect_errors(value, member, path, found)
            if not found:
                return
            attempts.append(found)
        if len(attempts) == 1:
            errors.extend(attempts[0])
        else:
            errors.append(f"{path}: expected {_expected(t)}, got {_kind(value)}")
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
            collect_errors(item, t.item_type, f"{path}[{i}]", errors)
        return
    if isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {_kind(value)}")
            return
        for key, item in value.items():
            sub = f"{path}[{json.dumps(key, ensure_ascii=False)}]"
            if not isinstance(key, str):
                errors.append(f"{sub}: object keys must be str")
            collect_errors(item, t.value_type, sub, errors)
        return
    if isinstance(t, mi.StructType):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {_kind(value)}")
            return
        for field in t.fields:
            if field.encode_name in value:
                collect_errors(value[field.encode_name], field.type, f"{path}.{field.name}", errors)
            elif field.required:
                errors.append(f"{path}.{field.name}: required field is missing")
        return
    errors.append(f"{path}: unsupported type {t!r}")  # pragma: no cover - models use none other


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
    ``max_bytes`` bounds the lean JSON (history and whiteboard_history excluded), as writes do.
    """
    try:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            builtins = msgspec.json.decode(data)
        elif isinstance(data, (Mapping, TutorContext)):
            builtins = msgspec.to_builtins(dict(data) if isinstance(data, Mapping) else data)
        else:
            return _invalid(f"$: expected JSON bytes, str or a mapping, got {type(data).__name__}")
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        return _invalid(f"$: not valid JSON: {exc}")
    errors: list[str] = []
    collect_errors(builtins, _CONTEXT_TYPE, "$", errors)
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
