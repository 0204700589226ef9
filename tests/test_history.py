"""The original backend's two history reads: a page of messages before a turn, and the whiteboard
as it stood at a snapshot (each one round trip, on every backend, sync and async)."""

from __future__ import annotations

import uuid

import pytest

from redis_sessions import CorruptData, InvalidInput, SessionStore

from .conftest import StoreFactory
from .test_round_trips import Recorder


def chat(store: SessionStore, turns: int) -> uuid.UUID:
    """A session whose assistant turns (the even ones) each draw one shape on the board."""
    sid = store.create_session("alice")
    for turn in range(1, turns + 1):
        if turn % 2:
            store.append_message(sid, "alice", "user", f"q{turn}")
        else:
            store.append_message(
                sid, "alice", "assistant", f"a{turn}", whiteboard_actions=[{"draw": turn}]
            )
    return sid


def test_messages_before_a_turn_page_backwards(store: SessionStore) -> None:
    sid = chat(store, 10)
    assert [m.turn_no for m in store.get_messages(sid, "alice", limit=3)] == [8, 9, 10]
    page = store.get_messages(sid, "alice", limit=3, before_turn_no=8)
    assert [m.turn_no for m in page] == [5, 6, 7]  # the newest three below 8, oldest first
    page = store.get_messages(sid, "alice", 3, page[0].turn_no)  # positional, as documented
    assert [m.turn_no for m in page] == [2, 3, 4]
    assert [m.turn_no for m in store.get_messages(sid, "alice", 3, before_turn_no=2)] == [1]
    assert store.get_messages(sid, "alice", 3, before_turn_no=1) == []
    assert [m.turn_no for m in store.get_messages(sid, "alice", 50, before_turn_no=99)] == list(
        range(1, 11)
    )
    assert [m.text for m in store.get_messages(sid, "alice", 2, before_turn_no=5)] == ["q3", "a4"]


def test_whiteboard_state_at_a_snapshot(store: SessionStore) -> None:
    sid = chat(store, 10)  # snapshots at 2, 4, 6, 8, 10
    assert store.get_whiteboard_state(sid, "alice") == [{"draw": n} for n in (2, 4, 6, 8, 10)]
    assert store.get_whiteboard_state(sid, "alice", 6) == [{"draw": n} for n in (2, 4, 6)]
    assert store.get_whiteboard_state(sid, "alice", 7) == [{"draw": n} for n in (2, 4, 6)]
    assert store.get_whiteboard_state(sid, "alice", target_snapshot_index=1) == []
    other = store.create_session("alice")
    assert store.get_whiteboard_state(other, "alice") == []


def test_the_board_keeps_index_order_past_ten(store: SessionStore) -> None:
    sid = chat(store, 24)  # indexes 2..24: "10" sorts before "2" as text, not as a number
    assert store.get_whiteboard_state(sid, "alice") == [{"draw": n} for n in range(2, 25, 2)]


def test_a_trimmed_board_starts_from_the_oldest_snapshot_kept(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(max_messages=4)
    sid = chat(store, 10)  # messages 7-10 kept, with the snapshots of 8 and 10
    assert store.get_whiteboard_state(sid, "alice") == [{"draw": 8}, {"draw": 10}]


def test_missing_foreign_and_damaged_sessions(store: SessionStore) -> None:
    sid = chat(store, 4)
    assert store.get_messages(sid, "bob", before_turn_no=3) == []
    assert store.get_whiteboard_state(sid, "bob") == []
    assert store.get_whiteboard_state(uuid.uuid4(), "alice") == []
    for bad in (0, -1, "3", True, 2**60):
        with pytest.raises(InvalidInput):
            store.get_messages(sid, "alice", before_turn_no=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.get_whiteboard_state(sid, "alice", -1)
    _, _, snapshots_key = store.keyspace.session_keys("alice", str(sid))
    store.client.delete(snapshots_key)
    store.client.set(snapshots_key, b"not a hash")
    with pytest.raises(CorruptData) as info:
        store.get_whiteboard_state(sid, "alice")
    assert info.value.key == snapshots_key


def test_each_is_one_round_trip(store: SessionStore) -> None:
    sid = chat(store, 6)
    recorder = Recorder(store)
    store.get_messages(sid, "alice", 2, before_turn_no=4)
    assert len(recorder.take()) == 1
    store.get_whiteboard_state(sid, "alice", 4)
    assert len(recorder.take()) == 1
