"""The store operations agent frameworks need: message batches, taking the last message back,
clearing a history, a session's free-form state (every backend, sync and async)."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from redis_sessions import CorruptData, InvalidInput, SessionNotFound, SessionStore, StoreConfig

from .conftest import Clock, StoreFactory, data_keys


def texts(store: SessionStore, sid: Any, user: str = "alice") -> list[str]:
    return [m.text for m in store.get_messages(sid, user, limit=1000)]


def test_a_batch_takes_consecutive_turns_and_returns_the_last(store: SessionStore) -> None:
    sid = store.create_session("alice")
    store.append_message(sid, "alice", "user", "first")
    last = store.append_messages(
        sid, "alice", [("user", "q", {"type": "message"}), ("assistant", "a", None)]
    )
    assert last == 3
    got = store.get_messages(sid, "alice")
    assert [(m.turn_no, m.role, m.text, m.payload) for m in got] == [
        (1, "user", "first", None),
        (2, "user", "q", {"type": "message"}),
        (3, "assistant", "a", None),
    ]
    assert store.append_messages(sid, "alice", []) == 3  # an empty batch adds nothing
    assert store.get_session_context(sid, "alice").latest_turn_no == 3


def test_a_bad_message_in_a_batch_writes_nothing(store: SessionStore) -> None:
    sid = store.create_session("alice")
    before = store.get_session(sid, "alice")
    for bad in (
        [("user", "ok", None), ("robot", "x", None)],
        [("user", "ok", None), ("user", "x", {"score": math.nan})],
        [("user", "ok", None), ("user", 3, None)],
        [("user", "ok")],
        "user",
    ):
        with pytest.raises(InvalidInput):
            store.append_messages(sid, "alice", bad)  # type: ignore[arg-type]
    assert store.get_messages(sid, "alice") == []
    assert store.get_session(sid, "alice") == before


def test_a_batch_of_a_foreign_or_missing_session_raises(store: SessionStore) -> None:
    sid = store.create_session("alice")
    with pytest.raises(SessionNotFound):
        store.append_messages(sid, "mallory", [("user", "x", None)])
    assert store.get_messages(sid, "alice") == []
    with pytest.raises(SessionNotFound):
        store.pop_message(sid, "mallory")
    with pytest.raises(SessionNotFound):
        store.clear_messages(sid, "mallory")
    assert store.update_session_state(sid, "mallory", {"k": 1}) is False
    assert store.get_session_state(sid, "mallory") is None
    assert store.get_session_state(sid, "alice") == {}


def test_a_batch_keeps_only_max_messages(store_factory: StoreFactory, clock: Clock) -> None:
    store = store_factory(clock=clock, max_messages=4)
    sid = store.create_session("alice")
    store.append_messages(sid, "alice", [("user", f"m{i}", None) for i in range(1, 4)])
    store.append_messages(sid, "alice", [("user", f"m{i}", None) for i in range(4, 7)])
    assert texts(store, sid) == ["m3", "m4", "m5", "m6"]
    store.append_messages(sid, "alice", [("user", f"m{i}", None) for i in range(7, 17)])
    assert texts(store, sid) == ["m13", "m14", "m15", "m16"]
    raw = store.client.hkeys(store.keyspace.session_keys("alice", str(sid))[1])
    assert sorted(int(k) for k in raw) == [13, 14, 15, 16]  # nothing older is left behind


def test_concurrent_batches_lose_nothing_and_never_interleave(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock)
    sid = store.create_session("alice")
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            other = (
                store_factory(clock=clock, key_prefix=store.config.key_prefix)
                if store.__class__ is SessionStore
                else store
            )
            for i in range(10):
                other.append_messages(
                    sid, "alice", [("user", f"{name}{i}a", None), ("user", f"{name}{i}b", None)]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    if store.__class__ is SessionStore:  # real threads against one server
        threads = [threading.Thread(target=writer, args=(n,)) for n in "xyz"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for n in "xyz":
            writer(n)
    assert not errors
    got = texts(store, sid)
    assert len(got) == 60
    for i in range(0, 60, 2):  # each batch's two messages sit side by side
        assert got[i][:-1] == got[i + 1][:-1] and got[i].endswith("a")


def test_pop_takes_the_latest_message_back(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert store.pop_message(sid, "alice") is None
    store.append_message(sid, "alice", "user", "q1")
    store.append_message(sid, "alice", "assistant", "a1", whiteboard_actions=[{"draw": 1}])
    popped = store.pop_message(sid, "alice")
    assert popped is not None and (popped.turn_no, popped.role, popped.text) == (
        2,
        "assistant",
        "a1",
    )
    assert popped.whiteboard_snapshot_index == 2
    assert store.get_whiteboard_state(sid, "alice") == []  # its snapshot went with it
    assert texts(store, sid) == ["q1"]
    assert store.append_message(sid, "alice", "assistant", "a1'") == 2  # the turn is given back
    assert texts(store, sid) == ["q1", "a1'"]
    assert [m.text for m in (store.pop_message(sid, "alice"), store.pop_message(sid, "alice"))] == [
        "a1'",
        "q1",
    ]
    assert store.pop_message(sid, "alice") is None
    assert store.get_messages(sid, "alice") == []
    assert store.append_message(sid, "alice", "user", "again") == 1


def test_clear_keeps_the_session_and_its_turn_numbers(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "Matrices"})
    store.update_session_state(sid, "alice", {"k": "v"})
    store.append_messages(sid, "alice", [("user", "q", None), ("assistant", "a", None)])
    store.append_message(sid, "alice", "assistant", "b", whiteboard_actions=[{"draw": 3}])
    assert store.clear_messages(sid, "alice") == 3
    assert store.get_messages(sid, "alice") == []
    assert store.get_whiteboard_state(sid, "alice") == []
    assert store.pop_message(sid, "alice") is None
    assert store.get_session_context(sid, "alice").session_goal == "Matrices"
    assert store.get_session_state(sid, "alice") == {"k": "v"}
    assert store.append_message(sid, "alice", "user", "next") == 4  # numbers are never reused
    assert texts(store, sid) == ["next"]
    assert [r.session_id for r in store.list_user_sessions("alice")] == [sid]
    assert store.clear_messages(sid, "alice") == 1
    assert store.check().problems == {}


def test_session_state_round_trip_and_removal(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert store.update_session_state(sid, "alice", {"a": 1, "b": {"x": [1, 2]}, "c": None})
    assert store.update_session_state(sid, "alice", {"a": 2}, remove=["c", "absent"])
    assert store.get_session_state(sid, "alice") == {"a": 2, "b": {"x": [1, 2]}}
    with pytest.raises(InvalidInput, match="inf"):
        store.update_session_state(sid, "alice", {"a": 3, "bad": math.inf})
    with pytest.raises(InvalidInput):
        store.update_session_state(sid, "alice", {1: "x"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        store.update_session_state(sid, "alice", {"a": 1}, remove=["a"])
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(InvalidInput):
        store.update_session_state(sid, "alice", {"deep": deep})
    assert store.get_session_state(sid, "alice") == {"a": 2, "b": {"x": [1, 2]}}
    other = store.create_session("alice")
    assert store.get_session_state(other, "alice") == {}


def test_state_and_history_expire_and_go_with_the_session(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock, key_prefix="st" + clock.now.strftime("%H%M%S"))
    sid = store.create_session("alice")
    store.append_messages(sid, "alice", [("user", "q", None)])
    store.update_session_state(sid, "alice", {"k": 1})
    record, messages, _ = store.keyspace.session_keys("alice", str(sid))
    state = store.keyspace.session_state("alice", str(sid))
    client = store.client
    ttls = [client.pttl(k) for k in (record, messages, state)]
    assert all(t > 0 for t in ttls), ttls
    assert max(ttls) - min(ttls) < 5_000  # one deadline for the session's keys
    assert store.delete_session(sid, "alice")
    assert data_keys(client, store.config.key_prefix, match="{u:alice}:s:*") == set()


def test_a_state_key_left_alone_is_found_and_repaired(store: SessionStore) -> None:
    sid = store.create_session("alice")
    store.update_session_state(sid, "alice", {"k": 1})
    record = store.keyspace.session("alice", str(sid))
    store.client.delete(record)  # damage from outside: the record gone, its state left
    report = store.check()
    assert report.problems == {"orphan-parts": 1, "dangling-index": 1, "dangling-expiry": 1}
    store.check(repair=True)
    assert store.check().problems == {}
    assert store.client.exists(store.keyspace.session_state("alice", str(sid))) == 0


def test_the_keep_alive_refresh_reaches_the_state(
    store_factory: StoreFactory, clock: Clock
) -> None:
    ttl_config = StoreConfig().ttl_backstop
    assert ttl_config is not None
    store = store_factory(clock=clock)
    sid = store.create_session("alice")
    store.update_session_state(sid, "alice", {"k": 1})
    state = store.keyspace.session_state("alice", str(sid))
    store.client.pexpire(state, 1_000_000)  # as if set long ago
    store.client.hdel(store.keyspace.session("alice", str(sid)), "ttl_until")  # the refresh is due
    store.append_message(sid, "alice", "user", "q")
    assert store.client.pttl(state) > 1_000_000_000  # refreshed with the session's other keys


def test_a_sweep_takes_the_state_and_history_with_the_session(
    store: SessionStore, clock: Clock
) -> None:
    sid = store.create_session("alice")
    store.append_messages(sid, "alice", [("user", "q", None)])
    store.update_session_state(sid, "alice", {"k": 1})
    clock.advance(days=31)
    report = store.cleanup_expired_sessions()
    assert report.deleted == 1
    assert data_keys(store.client, store.config.key_prefix, match="{u:alice}:s:*") == set()


def test_a_resent_request_is_applied_once(store: SessionStore) -> None:
    sid = store.create_session("alice")
    batch = [("user", "q", None), ("assistant", "a", None)]
    assert store.append_messages(sid, "alice", batch, request_id="batch-1") == 2
    assert store.append_messages(sid, "alice", batch, request_id="batch-1") == 2
    assert texts(store, sid) == ["q", "a"]
    first = store.pop_message(sid, "alice", request_id="pop-1")
    again = store.pop_message(sid, "alice", request_id="pop-1")
    assert first is not None and again is not None and first.text == again.text == "a"
    assert texts(store, sid) == ["q"]  # one message taken, not two
    assert store.clear_messages(sid, "alice", request_id="clear-1") == 1
    store.append_message(sid, "alice", "user", "kept")
    assert store.clear_messages(sid, "alice", request_id="clear-1") == 1  # the first reply
    assert texts(store, sid) == ["kept"]
    with pytest.raises(InvalidInput, match="request_id"):
        store.pop_message(sid, "alice", request_id="batch-1")  # an id of another write


def test_a_damaged_messages_key_stops_the_write(store: SessionStore) -> None:
    sid = store.create_session("alice")
    _, messages_key, _ = store.keyspace.session_keys("alice", str(sid))
    store.client.set(messages_key, b"not a hash")
    for write in (
        lambda: store.append_messages(sid, "alice", [("user", "q", None)]),
        lambda: store.clear_messages(sid, "alice"),
    ):
        with pytest.raises(CorruptData):
            write()
    assert store.client.get(messages_key) == b"not a hash"
    state_key = store.keyspace.session_state("alice", str(sid))
    store.client.set(state_key, b"not a hash")
    with pytest.raises(CorruptData):
        store.update_session_state(sid, "alice", {"k": 1})
    with pytest.raises(CorruptData):
        store.get_session_state(sid, "alice")
    assert store.check().problems == {"wrong-type": 2}
    store.check(repair=True, drop_corrupt=True)
    assert store.check().problems == {}
    assert store.get_session_state(sid, "alice") == {}  # the damage went, the session stayed


def test_check_knows_the_scoped_keys_and_drops_them_damaged(store: SessionStore) -> None:
    keys = store.keyspace
    sid = store.create_session("alice")
    store.update_session_state(sid, "alice", {"k": 1})
    for key in (
        keys.user_state("alice", "app"),
        keys.app_state("app"),
        keys.scoped_index("alice", "app"),
    ):
        store.client.set(key, b"damage")
    report = store.check()
    assert report.problems == {"wrong-type": 3} and report.unknown_keys == 0
    store.check(repair=True, drop_corrupt=True)
    report = store.check()
    assert report.problems == {} and report.unknown_keys == 0
    assert store.get_session_state(sid, "alice") == {"k": 1}
