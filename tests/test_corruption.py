"""Damage is seen, reported and contained (README "Damaged data").

A session record that cannot be used raises CorruptData, naming its key, from every operation but
delete_session, which removes it; nothing is written. What "cannot be used" means has two tiers:
- damaged metadata (the fields every write script checks: user_id, version, turns, the turn
  counters, created_at, updated_at; or a record key of another type): every operation raises;
- a damaged context (a ``c:`` field that does not decode): the operations that decode the context
  raise (get_session, get_session_context, modify); the session still exists for the others, and a
  whole update replaces the damaged context.
Reads never change anything; a listing leaves out (and reports) rows it cannot use; an index key of
another type does not stop writes (they go around it and report it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from redis_sessions import CorruptData, Folder, SessionStore, TutorContext
from redis_sessions.samples import realistic_context


def corrupt(store: SessionStore, user: str, **fields: bytes) -> tuple[str, str]:
    sid = str(store.create_session(user, initial_context=realistic_context(user)))
    key = store._core.keys.session(user, sid)
    store.client.hset(key, mapping=fields)  # type: ignore[arg-type]
    store._core.cache.clear()
    return sid, key


METADATA_DAMAGE = {
    "bad-version": {"version": b"seven"},
    "bad-time": {"created_at": b"yesterday"},
    "time-without-offset": {"updated_at": b"2026-01-01T00:00:00"},
    "time-with-bad-offset": {"created_at": b"2026-01-01T00:00:00+0000"},
    "wrong-owner": {"user_id": b"mallory"},
    "bad-turns": {"turns": b"x"},
    "huge-turn-counter": {"c:latest_turn_no": b"1.1805916207174113e+21"},
}
CONTEXT_DAMAGE = {
    "bad-json": {"c:lesson_plan": b"{not json"},
    "wrong-type": {"c:high_cost_calls": b'"many"'},
    "nested-wrong-type": {"c:user_model_state": b'{"concepts": {"algebra": {"alpha": "x"}}}'},
}

CONTEXT_READS: dict[str, Callable[[SessionStore, str], Any]] = {
    "get_session": lambda s, sid: s.get_session(sid, "alice"),
    "get_session_context": lambda s, sid: s.get_session_context(sid, "alice"),
    "get_with_history": lambda s, sid: s.get_session_context(sid, "alice", history=5),
    "modify": lambda s, sid: s.modify(sid, "alice", lambda ctx: None),
}
OTHERS: dict[str, Callable[[SessionStore, str], Any]] = {
    "session_exists": lambda s, sid: s.session_exists(sid, "alice"),
    "append_message": lambda s, sid: s.append_message(sid, "alice", "user", "hi"),
    "end_session": lambda s, sid: s.end_session(sid, "alice"),
    "update": lambda s, sid: s.update_session_context(
        sid, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
    ),
}
METADATA_READS: dict[str, Callable[[SessionStore, str], Any]] = {
    "get_messages": lambda s, sid: s.get_messages(sid, "alice"),
}
EVERY = {**CONTEXT_READS, **OTHERS, **METADATA_READS}


@pytest.mark.parametrize("damage", list(METADATA_DAMAGE.values()), ids=list(METADATA_DAMAGE))
@pytest.mark.parametrize("operation", list(EVERY.values()), ids=list(EVERY))
def test_damaged_metadata_raises_from_every_operation_and_nothing_is_written(
    store: SessionStore,
    caplog: pytest.LogCaptureFixture,
    damage: dict[str, bytes],
    operation: Callable[[SessionStore, str], Any],
) -> None:
    sid, key = corrupt(store, "alice", **damage)
    before = store.client.hgetall(key)
    counted = store.stats().undecodable_records
    with pytest.raises(CorruptData) as info:
        operation(store, sid)
    assert info.value.key == key and info.value.problem
    assert key in caplog.text and store.stats().undecodable_records == counted + 1
    assert store.client.hgetall(key) == before  # left as it was for an operator
    assert not store.client.exists(f"{key}:msgs")  # no message was written


@pytest.mark.parametrize(
    "stamp", [b"2026-01-01T00:00:00Z", b"2026-01-01T05:30:00.5+05:30"], ids=["Z", "+05:30"]
)
@pytest.mark.parametrize("operation", list(EVERY.values()), ids=list(EVERY))
def test_times_with_z_or_another_offset_are_sound_for_every_operation(
    store: SessionStore, stamp: bytes, operation: Callable[[SessionStore, str], Any]
) -> None:
    # the other side of "time-without-offset": the scripts' check (record_meta) and the reads'
    # (codec.meta_problem) accept every offset form ISO-8601 allows
    sid, _ = corrupt(store, "alice", created_at=stamp, updated_at=stamp)
    operation(store, sid)
    assert store.stats().undecodable_records == 0


@pytest.mark.parametrize("damage", list(CONTEXT_DAMAGE.values()), ids=list(CONTEXT_DAMAGE))
@pytest.mark.parametrize("operation", list(CONTEXT_READS.values()), ids=list(CONTEXT_READS))
def test_a_damaged_context_raises_from_what_decodes_it(
    store: SessionStore, damage: dict[str, bytes], operation: Callable[[SessionStore, str], Any]
) -> None:
    sid, key = corrupt(store, "alice", **damage)
    before = store.client.hgetall(key)
    with pytest.raises(CorruptData) as info:
        operation(store, sid)
    assert info.value.key == key
    assert store.client.hgetall(key) == before


@pytest.mark.parametrize("damage", list(CONTEXT_DAMAGE.values()), ids=list(CONTEXT_DAMAGE))
def test_a_session_with_a_damaged_context_still_exists_and_a_whole_update_replaces_it(
    store: SessionStore, damage: dict[str, bytes]
) -> None:
    sid, _ = corrupt(store, "alice", **damage)
    assert store.session_exists(sid, "alice") is True
    assert store.append_message(sid, "alice", "user", "hi") == 1
    assert store.end_session(sid, "alice") is True
    fresh = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="again")
    assert store.update_session_context(sid, "alice", fresh) is True
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.session_goal == "again"


@pytest.mark.parametrize(
    "damage",
    [*METADATA_DAMAGE.values(), *CONTEXT_DAMAGE.values()],
    ids=[*METADATA_DAMAGE, *CONTEXT_DAMAGE],
)
def test_delete_removes_a_damaged_session(store: SessionStore, damage: dict[str, bytes]) -> None:
    sid, key = corrupt(store, "alice", **damage)
    store.client.hset(f"{key}:msgs", "1", b"{}")
    assert store.delete_session(sid, "alice") is True
    assert not store.client.exists(key, f"{key}:msgs", f"{key}:wb")
    assert store.client.zscore(store._core.keys.index("alice"), sid) is None
    assert store.session_exists(sid, "alice") is False


def test_a_record_key_of_another_type_raises_from_everything_but_delete(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    sid = store.create_session("alice")
    key = store._core.keys.session("alice", sid)
    store.client.delete(key)
    store.client.set(key, b"somebody else's string")
    store._core.cache.clear()  # a raw write by hand: no store announced it
    for name, operation in EVERY.items():
        with pytest.raises(CorruptData) as info:
            operation(store, sid)
        assert info.value.key == key, name
    assert store.client.get(key) == b"somebody else's string"
    assert [r.session_id for r in store.list_user_sessions("alice")] == []  # left out, reported
    assert f"{key}: holds another type than a hash" in caplog.text
    assert store.delete_session(sid, "alice") is True
    assert not store.client.exists(key)


def test_damaged_rows_are_left_out_of_a_listing_and_reported(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = store.create_session("alice", initial_context={"session_goal": "fine"})
    _, goal_key = corrupt(store, "alice", **{"c:session_goal": b"{broken"})
    _, meta_key = corrupt(store, "alice", version=b"seven")
    index = store.client.zrange(store._core.keys.index("alice"), 0, -1, withscores=True)
    rows = store.list_user_sessions("alice")
    assert [r.session_id for r in rows] == [good]
    assert goal_key in caplog.text and meta_key in caplog.text
    assert store.stats().undecodable_records == 2
    assert store.client.zrange(store._core.keys.index("alice"), 0, -1, withscores=True) == index


def test_messages_of_another_type_stop_append_and_reads_of_messages_only(
    store: SessionStore,
) -> None:
    sid = store.create_session("alice")
    record_key, messages_key, _ = store._core.keys.session_keys("alice", sid)
    store.client.set(messages_key, b"not a hash")
    with pytest.raises(CorruptData) as info:
        store.append_message(sid, "alice", "user", "hi")
    assert info.value.key == messages_key
    assert store.client.hget(record_key, "turns") is None  # nothing was written
    with pytest.raises(CorruptData):
        store.append_message(sid, "alice", "user", "hi", whiteboard_actions=[{"a": 1}])
    assert store.get_session(sid, "alice") is not None  # the record itself is fine
    store.client.delete(messages_key)
    assert store.append_message(sid, "alice", "user", "hi") == 1
    with pytest.raises(CorruptData) as info:
        store.client.set(messages_key, b"again")
        store.get_messages(sid, "alice")
    assert info.value.key == messages_key


def test_snapshots_of_another_type_take_the_message_back(store: SessionStore) -> None:
    sid = store.create_session("alice")
    record_key, messages_key, snapshots_key = store._core.keys.session_keys("alice", sid)
    store.client.rpush(snapshots_key, b"a list")
    with pytest.raises(CorruptData) as info:
        store.append_message(sid, "alice", "user", "hi", whiteboard_actions=[{"a": 1}])
    assert info.value.key == snapshots_key
    assert not store.client.exists(messages_key)  # the message written first was taken back
    assert store.client.hget(record_key, "turns") is None
    assert store.append_message(sid, "alice", "user", "no snapshot") == 1


def test_an_index_of_another_type_does_not_stop_writes(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    index = store._core.keys.index("alice")
    store.client.set(index, b"not a sorted set")
    sid = store.create_session("alice")  # written around the damaged index, and reported
    assert f"{index}: holds another type than a sorted set" in caplog.text
    assert store.append_message(sid, "alice", "user", "hi") == 1
    assert store.end_session(sid, "alice") is True
    with pytest.raises(CorruptData) as info:
        store.list_user_sessions("alice")  # nothing can be listed from it: a clear error
    assert info.value.key == index
    assert store.delete_session(sid, "alice") is True
    assert store.client.get(index) == b"not a sorted set"  # left for check --drop-corrupt


def test_an_expiry_index_of_another_type_does_not_stop_writes(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    live, _ = store._core.keys.expiry("alice")
    store.client.set(live, b"not a sorted set")
    sid = store.create_session("alice")
    assert live in caplog.text
    assert [r.session_id for r in store.list_user_sessions("alice")] == [sid]
    assert store.delete_session(sid, "alice") is True


def test_a_folder_of_another_type_is_a_broken_folder(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    fid = str(uuid.uuid4())
    store.client.set(store._core.keys.folder("alice", fid), b"not a hash")
    sid = store.create_session("alice", folder_id=fid)  # created without the folder's data
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.folder_id is None
    assert "not loadable" in caplog.text
    with pytest.raises(CorruptData):
        store.get_folder_data(fid, "alice")
    assert store.delete_folder(fid, "alice") is True
    assert store.put_folder("alice", Folder(id=fid, name="fixed")).name == "fixed"


def test_corrupt_message_is_left_out_of_reads_and_logged(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    sid = store.create_session("alice")
    for text in ("one", "two", "three"):
        store.append_message(
            sid, "alice", "user", text, whiteboard_actions=[{"type": "CLEAR_BOARD"}]
        )
    _, messages_key, snapshots_key = store._core.keys.session_keys("alice", sid)
    store.client.hset(messages_key, "2", b"{garbage")
    store.client.hset(snapshots_key, "3", b"[1, 2")
    assert [m.text for m in store.get_messages(sid, "alice")] == ["one", "three"]
    ctx = store.get_session_context(sid, "alice", history=10)
    assert ctx is not None
    assert [h["content"] for h in ctx.history] == ["one", "three"]
    assert len(ctx.whiteboard_history) == 2
    assert messages_key in caplog.text and snapshots_key in caplog.text
    assert store.stats().undecodable_records == 3


def test_unknown_fields_from_a_newer_schema_are_ignored(store: SessionStore) -> None:
    sid, _ = corrupt(store, "alice", **{"c:brand_new_field": b'{"x": 1}', "extra_meta": b"1"})
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.session_goal == realistic_context("alice").session_goal


def test_a_record_without_user_id_is_damage_not_absence(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    sid = str(store.create_session("alice"))
    key = store._core.keys.session("alice", sid)
    store.client.hdel(key, "user_id")
    store._core.cache.clear()
    for name, operation in EVERY.items():
        with pytest.raises(CorruptData) as info:
            operation(store, sid)
        assert info.value.key == key, name
    index = store._core.keys.index("alice")
    assert store.list_user_sessions("alice") == []
    assert f"{key}: the record has no user_id" in caplog.text
    assert store.client.zscore(index, sid) is not None  # a listing removes nothing
    assert store.delete_session(sid, "alice") is True
