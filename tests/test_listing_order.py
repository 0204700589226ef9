"""Listing order and ``updated_at`` agree exactly, whatever the timing: the user index is scored in
epoch microseconds, the very ``updated_at`` of each record (also within one millisecond, and for
entries an older version scored in milliseconds, which sort before any write made since)."""

from __future__ import annotations

from redis_sessions import SessionStore, TutorContext, codec

from .conftest import Clock


def test_sessions_within_one_millisecond_list_in_updated_at_order(
    store: SessionStore, clock: Clock
) -> None:
    made = []
    for _ in range(6):
        clock.advance(microseconds=137)  # 6 sessions within 1 ms
        made.append(store.create_session("alice"))
    rows = store.list_user_sessions("alice")
    assert [r.session_id for r in rows] == made[::-1]
    stamps = [r.updated_at for r in rows]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 6
    clock.advance(microseconds=1)
    assert store.append_message(made[0], "alice", "user", "back")  # activity moves it first
    assert store.list_user_sessions("alice")[0].session_id == made[0]
    scores = dict(store.client.zrange(store.keyspace.index("alice"), 0, -1, withscores=True))
    for row in store.list_user_sessions("alice"):  # the score is updated_at, to the microsecond
        assert scores[str(row.session_id).encode()] == codec.epoch_us(row.updated_at)


def test_equal_updated_at_is_never_listed_out_of_order(store: SessionStore, clock: Clock) -> None:
    first, second = store.create_session("alice"), store.create_session("alice")  # same instant
    rows = store.list_user_sessions("alice")
    assert {r.session_id for r in rows} == {first, second}
    assert rows[0].updated_at == rows[1].updated_at


def test_index_entries_scored_in_milliseconds_by_an_older_version_sort_after_new_writes(
    store: SessionStore, clock: Clock
) -> None:
    old = store.create_session("alice")
    index = store.keyspace.index("alice")
    seconds = clock.now.timestamp()
    store.client.zadd(index, {str(old): int(seconds * 1000)})  # as the previous version scored it
    clock.advance(seconds=1)
    new = store.create_session("alice")
    assert [r.session_id for r in store.list_user_sessions("alice")] == [new, old]
    clock.advance(seconds=1)
    ctx = TutorContext(user_id="alice", session_id=old, session_goal="touched")
    assert store.update_session_context(old, "alice", ctx)  # rescored in microseconds by the write
    assert [r.session_id for r in store.list_user_sessions("alice")] == [old, new]
    assert store.client.zscore(index, str(old)) == int(clock.now.timestamp() * 1_000_000)
