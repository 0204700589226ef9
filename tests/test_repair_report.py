"""`check --repair` reports what it found in the same terms as `check`, and leaves a store that a
second `check` finds clean: for every kind of problem and every kind of damage `check` knows."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from redis_sessions import SessionStore

from .test_check import DAMAGES, make

Plant = Callable[[SessionStore], dict[str, int]]


def _unindexed(store: SessionStore) -> dict[str, int]:
    sid = make(store, "alice")
    store.client.zrem(store.keyspace.index("alice"), sid)
    return {"unindexed": 1}


def _no_expiry(store: SessionStore) -> dict[str, int]:
    sid = make(store, "alice")
    live, _ = store.keyspace.expiry("alice")
    store.client.zrem(live, store.keyspace.expiry_member("alice", sid))
    return {"no-expiry": 1}


def _record_gone(store: SessionStore) -> dict[str, int]:
    """Every remain at once: index entry, messages, snapshots, expiry entry."""
    store.client.delete(store.keyspace.session("alice", make(store, "alice")))
    return {"dangling-index": 1, "orphan-parts": 2, "dangling-expiry": 1}


def _only_parts(store: SessionStore) -> dict[str, int]:
    sid = make(store, "alice")
    keys = store.keyspace
    live, _ = keys.expiry("alice")
    store.client.zrem(keys.index("alice"), sid)
    store.client.zrem(live, keys.expiry_member("alice", sid))
    store.client.delete(keys.session("alice", sid))
    return {"orphan-parts": 2}


def _only_expiry(store: SessionStore) -> dict[str, int]:
    sid = make(store, "alice")
    keys = store.keyspace
    _, msgs, wb = keys.session_keys("alice", sid)
    store.client.zrem(keys.index("alice"), sid)
    store.client.delete(keys.session("alice", sid), msgs, wb)
    return {"dangling-expiry": 1}


def _two_users_gone(store: SessionStore) -> dict[str, int]:
    for user in ("alice", "bob", "a{b}:c"):
        store.client.delete(store.keyspace.session(user, make(store, user)))
    return {"dangling-index": 3, "orphan-parts": 6, "dangling-expiry": 3}


PROBLEM_CASES: dict[str, Plant] = {
    "unindexed": _unindexed,
    "no-expiry": _no_expiry,
    "record-gone": _record_gone,
    "only-parts": _only_parts,
    "only-expiry": _only_expiry,
    "three-sessions-gone": _two_users_gone,
}


@pytest.mark.parametrize("count", [1000, 2], ids=["one-batch", "small-batches"])
@pytest.mark.parametrize("plant", list(PROBLEM_CASES.values()), ids=list(PROBLEM_CASES))
def test_repair_reports_what_check_found_and_a_second_check_is_clean(
    store: SessionStore, plant: Plant, count: int
) -> None:
    make(store, "alice")  # a healthy session beside
    planted = plant(store)
    found = store.check(count=count)
    assert found.problems == planted
    fixed = store.check(repair=True, count=count)
    assert fixed.problems == found.problems and fixed.repaired == found.problems
    assert fixed.unrepaired == 0
    assert not [e for e in fixed.examples if re.search(r"\bb'", e)]  # keys as text, not bytes
    again = store.check(count=count)
    assert again.problems == {} and again.unrepaired == 0


@pytest.mark.parametrize("case", list(DAMAGES.values()), ids=list(DAMAGES))
def test_drop_corrupt_reports_what_check_found_and_a_second_check_is_clean(
    store: SessionStore, case: Callable[..., object]
) -> None:
    make(store, "alice")
    damage = case(store)
    found = store.check()
    dropped = store.check(repair=True, drop_corrupt=True)
    # what check found, plus what deleting a broken index makes visible (and repairs)
    expected = dict(found.problems)
    for kind, n in damage.consequences.items():  # type: ignore[attr-defined]
        expected[kind] = expected.get(kind, 0) + n
    assert dropped.problems == expected and dropped.repaired == expected
    assert not [e for e in dropped.examples if re.search(r"\bb'", e)]
    again = store.check()
    assert again.problems == {} and again.unrepaired == 0
