"""JSON merge patch (RFC 7396): the examples of its Appendix A, and that inputs are not changed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from redis_sessions.http._patch import merge_patch

# RFC 7396, Appendix A: (original, patch, result)
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC_EXAMPLES)
def test_rfc_7396_examples(original: Any, patch: Any, expected: Any) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    assert merge_patch(original, patch) == expected
    assert original == before and patch == patch_before  # a pure function


def test_nulls_inside_arrays_are_values_not_removals() -> None:
    assert merge_patch({"a": 1}, {"b": [None, {"c": None}]}) == {"a": 1, "b": [None, {"c": None}]}


def test_an_empty_patch_changes_nothing() -> None:
    doc = {"a": {"b": [1, 2]}, "c": None}
    assert merge_patch(doc, {}) == doc
