"""Sliding expiry and the sweep, driven by an injected clock (never sleep)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from redis_sessions import InvalidInput, SessionStore, TutorContext
from redis_sessions.requests import Pipeline, RunScript
from redis_sessions.samples import chat_turn

from .conftest import Clock, StoreFactory, data_keys

DAY = dt.timedelta(days=1)


def keys_of(store: SessionStore) -> set[bytes]:
    return data_keys(store.client, store.config.key_prefix)


def busy_session(store: SessionStore, user: str, turns: int = 4) -> str:
    sid = store.create_session(user, initial_context={"session_goal": "g"})
    for turn in range(1, turns + 1):
        role, text, actions = chat_turn(turn)
        store.append_message(sid, user, role, text, whiteboard_actions=actions)
    return sid


def test_idle_sessions_go_with_everything_that_belongs_to_them(
    store: SessionStore, clock: Clock
) -> None:
    old = busy_session(store, "alice")
    clock.advance(days=20)
    fresh = busy_session(store, "alice")
    assert store.get_session(old, "alice") is not None  # cached
    clock.advance(days=11)  # old: idle 31 days; fresh: 11
    report = store.cleanup_expired_sessions(now=clock.now)
    assert (report.scanned, report.deleted, report.kept) == (1, 1, 0)
    assert report.max_age == 30 * DAY and report.now == clock.now
    assert store.get_session(old, "alice") is None  # evicted from the cache too
    assert not [k for k in keys_of(store) if str(old).encode() in k]
    assert store.get_session(fresh, "alice") is not None
    assert [r.session_id for r in store.list_user_sessions("alice")] == [fresh]
    live, _ = store.keyspace.expiry("alice")
    assert store.client.zscore(live, store.keyspace.expiry_member("alice", old)) is None


@pytest.mark.parametrize("write", ["update", "append", "end"])
def test_every_write_slides_the_expiry(store: SessionStore, clock: Clock, write: str) -> None:
    sid = store.create_session("alice")
    clock.advance(days=25)
    if write == "update":
        store.update_session_context(
            sid, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
        )
    elif write == "append":
        store.append_message(sid, "alice", "user", "still here")
    else:
        store.end_session(sid, "alice")
    clock.advance(days=25)  # 50 days after creation, 25 after the write
    assert store.cleanup_expired_sessions(now=clock.now).deleted == 0
    clock.advance(days=6)
    assert store.cleanup_expired_sessions(now=clock.now).deleted == 1
    assert store.get_session(sid, "alice") is None


def test_reads_do_not_slide_the_expiry(store: SessionStore, clock: Clock) -> None:
    sid = store.create_session("alice")
    clock.advance(days=29)
    store._core.cache.clear()
    assert store.get_session_context(sid, "alice", history=5) is not None
    assert store.list_user_sessions("alice")
    clock.advance(days=2)
    assert store.cleanup_expired_sessions(now=clock.now).deleted == 1


def test_max_age_argument_and_exact_boundary(store: SessionStore, clock: Clock) -> None:
    sid = store.create_session("alice")
    exactly = clock.now + dt.timedelta(hours=2)
    assert store.cleanup_expired_sessions(dt.timedelta(hours=2), now=exactly).deleted == 0
    later = exactly + dt.timedelta(milliseconds=1)
    assert store.cleanup_expired_sessions(dt.timedelta(hours=2), now=later).deleted == 1
    assert store.session_exists(sid, "alice") is False


def test_ended_sessions_follow_their_own_retention(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock, ended_max_age=DAY)
    ended, live = store.create_session("alice"), store.create_session("alice")
    store.end_session(ended, "alice")
    clock.advance(days=2)
    report = store.cleanup_expired_sessions(now=clock.now)
    assert report.deleted == 1 and report.ended_max_age == DAY
    assert (
        store.get_session(ended, "alice") is None and store.get_session(live, "alice") is not None
    )
    # without the option, ended sessions keep the same retention as the others
    same = store_factory(clock=clock)
    done = same.create_session("bob")
    same.end_session(done, "bob")
    clock.advance(days=2)
    assert same.cleanup_expired_sessions(now=clock.now).deleted == 0


def test_many_expired_in_one_slot_take_several_batches(store: SessionStore, clock: Clock) -> None:
    ids = [store.create_session("alice") for _ in range(23)]  # one user: one hash slot
    keep = store.create_session("bob")
    clock.advance(days=31)
    store.append_message(keep, "bob", "user", "hi")
    dry = store.cleanup_expired_sessions(now=clock.now, batch_size=5, dry_run=True)
    assert (dry.scanned, dry.deleted, dry.dry_run) == (23, 23, True)
    assert all(store.session_exists(sid, "alice") for sid in ids)
    report = store.cleanup_expired_sessions(now=clock.now, batch_size=5)
    assert (report.deleted, report.kept) == (23, 0)
    assert store.list_user_sessions("alice") == []
    again = store.cleanup_expired_sessions(now=clock.now, batch_size=5)
    assert (again.scanned, again.deleted) == (0, 0)  # idempotent
    assert store.session_exists(keep, "bob")


def test_a_session_touched_after_it_was_picked_is_kept(store: SessionStore, clock: Clock) -> None:
    sid = busy_session(store, "alice")
    clock.advance(days=31)
    op = store._core.cleanup_expired_sessions(now=clock.now)
    request = next(op)
    while not isinstance(request, RunScript):  # discovery: the session is picked
        assert isinstance(request, Pipeline)
        request = op.send(store._execute(request))
    store.append_message(sid, "alice", "user", "I am back")  # touched before the delete runs
    reply = store._execute(request)
    try:
        while True:
            request = op.send(reply)
            reply = store._execute(request)
    except StopIteration as stop:
        report = stop.value
    assert (report.scanned, report.deleted, report.kept) == (1, 0, 1)
    assert [m.text for m in store.get_messages(sid, "alice")][-1] == "I am back"


def test_malformed_expiry_entries_are_removed_and_counted(
    store: SessionStore, clock: Clock
) -> None:
    live, _ = store.keyspace.expiry("alice")
    store.client.zadd(live, {b"no-session-id-here": 1})
    report = store.cleanup_expired_sessions(now=clock.now)
    assert report.malformed == 1 and store.client.zcard(live) == 0


def test_bad_arguments(store: SessionStore) -> None:
    with pytest.raises(InvalidInput):
        store.cleanup_expired_sessions(dt.timedelta(0))
    with pytest.raises(InvalidInput):
        store.cleanup_expired_sessions(batch_size=0)
    with pytest.raises(InvalidInput):
        store.cleanup_expired_sessions(now=dt.datetime(2026, 1, 1))  # naive


def test_interrupted_sweep_is_finished_by_the_next(store: SessionStore, clock: Clock) -> None:
    users = [f"user-{i}" for i in range(40)]  # spread over many slots
    for user in users:
        busy_session(store, user, turns=2)
    survivor = store.create_session("late")
    clock.advance(days=31)
    store.append_message(survivor, "late", "user", "hi")
    op = store._core.cleanup_expired_sessions(now=clock.now)
    request, scripts = next(op), 0
    while scripts < 10:  # killed after ten slots were swept
        scripts += isinstance(request, RunScript)
        request = op.send(store._execute(request))
    op.close()
    assert sum(1 for u in users if store.list_user_sessions(u)) == 30  # ten slots were swept
    assert store.check().problems == {}  # nothing half-deleted
    report = store.cleanup_expired_sessions(now=clock.now)
    assert report.deleted == 40 - 10
    assert store.check().problems == {}
    owners = {info.user_id for info in map(store.keyspace.classify, keys_of(store)) if info}
    assert owners == {"late", None}  # None: the expiry index of late's slot


def _ttl_bounds(store: SessionStore) -> tuple[int, int]:
    """(horizon, horizon + grace): a session's keys live at least the one after its last write,
    at most the other (see keep_alive in lua/_lib.lua)."""
    horizon = store.config.key_ttl_ms
    return horizon, horizon + min(horizon // 8, 86_400_000)


def test_ttl_backstop_covers_every_key_and_they_expire_together(store: SessionStore) -> None:
    sid = busy_session(store, "alice", turns=2)  # messages and snapshots made after the record
    keys = store.keyspace.session_keys("alice", sid)
    horizon, longest = _ttl_bounds(store)
    ttls = [store.client.pttl(key) for key in keys]
    assert all(horizon < ttl <= longest for ttl in ttls), ttls
    assert max(ttls) - min(ttls) < 5_000  # one deadline for the three


def test_ttl_backstop_is_refreshed_when_due_not_on_every_write(
    store: SessionStore, clock: Clock
) -> None:
    sid = busy_session(store, "alice", turns=2)
    record, messages, snapshots = store.keyspace.session_keys("alice", sid)
    horizon, longest = _ttl_bounds(store)
    store.client.persist(messages)
    context = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
    store.update_session_context(sid, "alice", context)
    assert store.client.pttl(messages) == -1  # the deadline is far: this write sent no TTL
    clock.advance(milliseconds=longest - horizon + 60_000)  # now fewer than `horizon` remain
    context.session_goal = "later"
    store.update_session_context(sid, "alice", context)
    for key in (record, messages, snapshots):  # all three again, the persisted one included
        assert horizon < store.client.pttl(key) <= longest


def test_records_without_a_ttl_deadline_get_one_on_their_next_write(store: SessionStore) -> None:
    """Records written before ttl_until existed (the upgrade path): the next write sets it."""
    sid = busy_session(store, "alice", turns=2)
    record, messages, snapshots = store.keyspace.session_keys("alice", sid)
    store.client.hdel(record, "ttl_until")
    for key in (record, messages, snapshots):
        store.client.persist(key)
    store.append_message(sid, "alice", "user", "one more")
    horizon, longest = _ttl_bounds(store)
    assert all(horizon < store.client.pttl(k) <= longest for k in (record, messages, snapshots))
    assert store.client.hget(record, "ttl_until") is not None


def test_no_ttl_when_the_backstop_is_off(store_factory: StoreFactory) -> None:
    store = store_factory(ttl_backstop=None)
    sid = busy_session(store, "alice", turns=2)
    assert all(store.client.pttl(k) == -1 for k in store.keyspace.session_keys("alice", sid))
