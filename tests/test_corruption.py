"""Records damaged by hand (raw redis commands) read as None / are left out, logged with their key,
counted in stats(), and never crash a read or get overwritten by one."""

from __future__ import annotations

import uuid

import pytest

from redis_sessions import BackendError, SessionStore, TutorContext
from redis_sessions.samples import realistic_context


def corrupt(store: SessionStore, user: str, **fields: bytes) -> tuple[str, str]:
    sid = store.create_session(user, initial_context=realistic_context(user))
    key = store._core.keys.session(user, sid)
    store.client.hset(key, mapping=fields)  # type: ignore[arg-type]
    store._core.cache.clear()
    return sid, key


@pytest.mark.parametrize(
    "fields",
    [
        {"c:lesson_plan": b"{not json"},
        {"c:high_cost_calls": b'"many"'},
        {"c:user_model_state": b'{"concepts": {"algebra": {"alpha": "x"}}}'},
        {"version": b"seven"},
        {"created_at": b"yesterday"},
        {"user_id": b"mallory"},
    ],
    ids=["bad-json", "wrong-type", "nested-wrong-type", "bad-version", "bad-time", "wrong-owner"],
)
def test_undecodable_record_reads_as_none_and_is_logged(
    store: SessionStore, caplog: pytest.LogCaptureFixture, fields: dict[str, bytes]
) -> None:
    sid, key = corrupt(store, "alice", **fields)
    before = store.stats().undecodable_records
    assert store.get_session(sid, "alice") is None
    assert store.get_session_context(sid, "alice") is None
    assert store.get_session_context(sid, "alice", history=5) is None
    assert key in caplog.text
    assert store.stats().undecodable_records == before + 3
    # the damaged record is left as it was for an operator to inspect
    assert store.client.hget(key, next(iter(fields))) == next(iter(fields.values()))


def test_wrongtype_key_reads_as_none_and_write_raises(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    sid = str(uuid.uuid4())
    key = store._core.keys.session("alice", sid)
    store.client.set(key, b"somebody else's string")
    assert store.get_session(sid, "alice") is None
    assert store.get_session_context(sid, "alice", history=3) is None
    assert key in caplog.text
    with pytest.raises(BackendError) as info:
        store.update_session_context(
            sid, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(sid))
        )
    assert info.value.__cause__ is not None
    assert store.client.get(key) == b"somebody else's string"


def test_corrupt_listing_row_is_left_out_and_logged(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = store.create_session("alice", initial_context={"session_goal": "fine"})
    bad, key = corrupt(store, "alice", **{"c:session_goal": b"{broken"})
    rows = store.list_user_sessions("alice")
    assert [r.session_id for r in rows] == [good]
    assert key in caplog.text and store.stats().undecodable_records == 1
    assert store.client.zscore(store._core.keys.index("alice"), bad) is not None  # not pruned


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
