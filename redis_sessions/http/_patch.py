"""JSON merge patch (RFC 7396), as a pure function on decoded JSON."""

from __future__ import annotations

from typing import Any

__all__ = ["merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied by the rules of RFC 7396; neither argument is changed.

    An object patch merges into an object target member by member: a ``null`` member removes
    that member, any other value replaces it (objects merge recursively). A patch that is not an
    object (an array, a string, a number, ``null``) replaces the whole target.
    """
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
