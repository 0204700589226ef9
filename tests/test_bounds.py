"""Numbers: integer fields refuse what not every layer holds exactly (|n| > 2**53 - 1: Lua's
doubles, JSON readers) with InvalidInput, and the largest allowed value round-trips exactly through
the scripts; paging arguments beyond their documented maximum are refused, never a raw Redis ERR."""

from __future__ import annotations

import uuid

import pytest

from redis_sessions import InvalidInput, SessionStore, TutorContext
from redis_sessions.models import MAX_SAFE_INT, UserConceptMastery

from .conftest import StoreFactory


def context(sid: str, **fields: object) -> TutorContext:
    return TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [MAX_SAFE_INT + 1, 2**70, -MAX_SAFE_INT - 1])
@pytest.mark.parametrize("field", ["latest_turn_no", "latest_snapshot_index", "high_cost_calls"])
def test_integers_beyond_2_53_are_refused_and_nothing_is_written(
    store: SessionStore, field: str, value: int
) -> None:
    sid = store.create_session("alice")
    with pytest.raises(InvalidInput, match=f"{field}"):
        store.update_session_context(sid, "alice", context(sid, **{field: value}))
    with pytest.raises(InvalidInput, match=f"{field}"):
        store.create_session("alice", initial_context={field: value})
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1
    assert len(store.list_user_sessions("alice")) == 1


def test_nested_integers_are_bounded_too(store: SessionStore) -> None:
    sid = store.create_session("alice")
    ctx = context(sid)
    ctx.user_model_state.concepts["algebra"] = UserConceptMastery(alpha=2**60)
    with pytest.raises(InvalidInput, match=r"alpha"):
        store.update_session_context(sid, "alice", ctx)
    assert not store.validate_session_context(ctx).valid


def test_the_largest_safe_integer_round_trips_exactly_through_the_scripts(
    store: SessionStore,
) -> None:
    sid = store.create_session("alice")
    big = MAX_SAFE_INT
    ctx = context(sid, latest_turn_no=big, latest_snapshot_index=big - 1, high_cost_calls=-big)
    assert store.update_session_context(sid, "alice", ctx)
    store._core.cache.clear()
    stored = store.get_session_context(sid, "alice")
    assert stored is not None
    assert (stored.latest_turn_no, stored.latest_snapshot_index) == (big, big - 1)
    assert stored.high_cost_calls == -big
    record = store.client.hgetall(store.keyspace.session("alice", sid))
    assert record[b"c:latest_turn_no"] == str(big).encode()  # not 9.007199254741e+15
    # a message still gets the next turn; the counters stay exact
    assert store.append_message(sid, "alice", "user", "hi") == 1
    store._core.cache.clear()
    again = store.get_session_context(sid, "alice")
    assert again is not None and again.latest_turn_no == big


@pytest.mark.parametrize("bad", [MAX_SAFE_INT + 1, 2**64])
def test_expected_version_beyond_the_bound_is_refused(store: SessionStore, bad: int) -> None:
    sid = store.create_session("alice")
    with pytest.raises(InvalidInput, match="expected_version"):
        store.update_session_context(sid, "alice", context(sid), expected_version=bad)


def test_paging_beyond_its_maximum_is_refused_or_clamped(store_factory: StoreFactory) -> None:
    store = store_factory(max_messages=5)
    sid = store.create_session("alice")
    for n in range(7):
        store.append_message(sid, "alice", "user", f"m{n}")
    with pytest.raises(InvalidInput, match="offset"):
        store.list_user_sessions("alice", offset=10**18)
    with pytest.raises(InvalidInput, match="offset"):
        store.list_user_sessions("alice", offset=10_001)
    assert store.list_user_sessions("alice", offset=10_000) == []
    assert len(store.list_user_sessions("alice", limit=10**15)) == 1  # clamped to 100
    with pytest.raises(InvalidInput, match="limit"):
        store.list_user_sessions("alice", limit=10**18)
    assert [m.text for m in store.get_messages(sid, "alice", limit=10**15)] == [
        f"m{n}" for n in range(2, 7)
    ]  # clamped to max_messages
    ctx = store.get_session_context(sid, "alice", history=10**15)
    assert ctx is not None and len(ctx.history) == 5
    with pytest.raises(InvalidInput, match="retries"):
        store.modify(sid, "alice", lambda c: None, retries=10**6)
