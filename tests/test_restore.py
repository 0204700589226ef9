"""restore_session / restore_sessions: a session written whole, as the store's own writes would
have left it (every backend: real Redis and Valkey servers run lua/restore.lua, fakeredis too; sync
and async)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import msgspec
import pytest

from redis_sessions import (
    Folder,
    FolderRestore,
    InvalidInput,
    Message,
    SessionRestore,
    SessionStore,
    TutorContext,
)
from redis_sessions.samples import chat_turn, realistic_context

from .conftest import Clock, StoreFactory, data_keys

SPAN_MS = lambda ttl: ttl + min(ttl // 8, 86_400_000)  # noqa: E731  (keep_alive's ttl_span)


def dump(store: SessionStore) -> dict[bytes, Any]:
    """Every key of the store's prefix (less replay keys): hashes and sorted sets with scores,
    keyed without the prefix so that two stores' dumps compare."""
    client, prefix = store.client, store.config.key_prefix.encode()
    out: dict[bytes, Any] = {}
    for key in data_keys(client, store.config.key_prefix):
        kind = client.type(key)
        short = key[len(prefix) :]
        if kind == b"hash":
            out[short] = client.hgetall(key)
        else:
            out[short] = client.zrange(key, 0, -1, withscores=True)
    return out


def built(store: SessionStore, user: str = "alice") -> tuple[uuid.UUID, SessionRestore]:
    """A session made by the store's own create and appends (all at the clock's time), and the
    SessionRestore that says the same thing, read back through the public API."""
    sid = store.create_session(user, initial_context=realistic_context(user))
    for turn in range(1, 5):
        role, text, actions = chat_turn(turn)
        store.append_message(
            sid,
            user,
            role,
            text,
            payload={"turn": turn, "é": [1.5, None]},
            whiteboard_actions=actions,
        )
    session = store.get_session(sid, user)
    assert session is not None
    snapshots_key = store.keyspace.session_keys(user, str(sid))[2]
    board = {int(i): json.loads(a) for i, a in store.client.hgetall(snapshots_key).items()}
    assert sorted(board) == [2, 4]
    restore = SessionRestore(
        context=session.context,
        created_at=session.created_at,
        updated_at=session.updated_at,
        messages=store.get_messages(sid, user),
        snapshots=board,
    )
    return sid, restore


def test_a_restored_session_is_what_create_and_append_leave(
    store_factory: StoreFactory, clock: Clock
) -> None:
    own = store_factory(clock=clock)
    sid, restore = built(own)
    again = store_factory(clock=clock)
    assert again.restore_session(restore) == 1
    assert dump(again) == dump(own)  # record, messages, snapshots, index and expiry scores
    for made, mine in zip(
        own.keyspace.session_keys("alice", str(sid)),
        again.keyspace.session_keys("alice", str(sid)),
        strict=True,
    ):
        assert abs(own.client.pttl(made) - again.client.pttl(mine)) < 5_000
        assert again.client.pttl(mine) > SPAN_MS(again.config.key_ttl_ms) - 5_000
    assert again.get_messages(sid, "alice") == own.get_messages(sid, "alice")
    assert again.get_whiteboard_state(sid, "alice") == own.get_whiteboard_state(sid, "alice")
    assert again.list_user_sessions("alice") == own.list_user_sessions("alice")
    assert again.check().problems == {}
    assert again.append_message(sid, "alice", "user", "next") == 5  # the turn counter goes on


def test_raw_payloads_and_actions_are_stored_as_that_json(
    store: SessionStore, clock: Clock
) -> None:
    sid = uuid.uuid4()
    now = clock()
    restore = SessionRestore(
        context=TutorContext(user_id="alice", session_id=sid),
        created_at=now,
        updated_at=now,
        messages=[
            Message(turn_no=7, role="user", text="q", created_at=now),
            Message(
                turn_no=8,
                role="assistant",
                text="a",
                payload=msgspec.Raw(b'{"tool": "draw", "n": 18446744073709551616}'),
                whiteboard_snapshot_index=8,
                created_at=now,
            ),
        ],
        snapshots={8: msgspec.Raw(b'[{"type": "CLEAR_BOARD"}]'), 6: [{"type": "DRAW", "x": 1}]},
    )
    store.restore_session(restore)
    got = store.get_messages(sid, "alice")
    assert [(m.turn_no, m.payload, m.whiteboard_snapshot_index) for m in got] == [
        (7, None, None),
        (8, {"tool": "draw", "n": 18446744073709551616}, 8),
    ]
    assert store.get_whiteboard_state(sid, "alice") == [
        {"type": "DRAW", "x": 1},
        {"type": "CLEAR_BOARD"},
    ]
    context = store.get_session_context(sid, "alice")
    assert context is not None
    assert store.append_message(sid, "alice", "user", "next") == 9  # turns: the latest message


def test_restoring_twice_changes_nothing_and_a_change_bumps_the_version(
    store: SessionStore, clock: Clock
) -> None:
    sid, restore = built(store)
    store.restore_session(restore)
    before = dump(store)
    assert store.restore_sessions([restore, restore]) == [1, 1]
    assert dump(store) == before  # same keys, fields, scores and version
    changed = msgspec.structs.replace(
        restore, context=msgspec.structs.replace(restore.context, session_goal="another goal")
    )
    assert store.restore_session(changed) == 2
    assert store.restore_session(changed) == 2
    assert store.get_session(sid, "alice").context.session_goal == "another goal"
    ctx = store.get_session_context(sid, "alice")
    ctx.session_goal = "the app's own"
    assert store.update_session_context(sid, "alice", ctx)  # version 3
    assert store.restore_session(changed) == 4  # the record differs again: a holder of 3 conflicts


def test_a_restore_replaces_what_was_there(store: SessionStore, clock: Clock) -> None:
    sid, restore = built(store)
    store.update_session_state(sid, "alice", {"agent": {"k": 1}})
    store.end_session(sid, "alice")
    for turn in range(5, 9):
        store.append_message(sid, "alice", "user", f"m{turn}")
    later = clock.advance(hours=1)
    fewer = msgspec.structs.replace(
        restore, messages=restore.messages[:2], updated_at=later, turns=4
    )
    store.restore_session(fewer)
    assert [m.turn_no for m in store.get_messages(sid, "alice")] == [1, 2]
    assert store.get_session(sid, "alice").ended_at is None  # ended no more
    keys = store.keyspace.session_write_keys("alice", str(sid))
    member = store.keyspace.expiry_member("alice", str(sid))
    assert store.client.zscore(keys[4], member) == int(later.timestamp() * 1000)  # live index
    assert store.client.zscore(keys[5], member) is None  # not in the ended one
    assert store.client.zscore(keys[3], str(sid)) == int(later.timestamp() * 1_000_000)
    state_key = store.keyspace.session_state("alice", str(sid))
    assert store.get_session_state(sid, "alice") == {"agent": {"k": 1}}  # its state is kept
    assert store.client.pttl(state_key) > SPAN_MS(store.config.key_ttl_ms) - 5_000
    ended = msgspec.structs.replace(fewer, ended_at=later)
    store.restore_session(ended)
    assert store.client.zscore(keys[4], member) is None
    assert store.client.zscore(keys[5], member) == int(later.timestamp() * 1000)
    assert store.check().problems == {}


def test_the_idle_clock_and_the_ttl_start_at_updated_at(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock, max_age=dt.timedelta(days=30))
    sid, restore = built(store)
    store.delete_session(sid, "alice")
    last = clock() - dt.timedelta(days=20)
    store.restore_session(msgspec.structs.replace(restore, updated_at=last))
    record = store.keyspace.session("alice", str(sid))
    deadline = int(last.timestamp() * 1000) + SPAN_MS(store.config.key_ttl_ms)
    assert int(store.client.hget(record, "ttl_until")) == deadline
    assert abs(store.client.pttl(record) - (deadline - int(clock().timestamp() * 1000))) < 5_000
    assert [s.session_id for s in store.list_user_sessions("alice")] == [sid]
    assert store.cleanup_expired_sessions(now=clock.advance(days=9)).deleted == 0
    assert store.cleanup_expired_sessions(now=clock.advance(days=1, seconds=1)).deleted == 1
    assert store.get_session(sid, "alice") is None


def test_a_restore_tells_other_stores(store_factory: StoreFactory, clock: Clock) -> None:
    store = store_factory(clock=clock)
    sid, restore = built(store)
    pubsub = store.client.pubsub()
    pubsub.subscribe(store.keyspace.invalidation_channel())
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    cached = store.get_session(sid, "alice")  # in this store's cache
    changed = msgspec.structs.replace(
        restore, context=msgspec.structs.replace(restore.context, session_goal="restored")
    )
    store.restore_session(changed)
    message = None
    deadline = time.monotonic() + 2
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
    pubsub.close()
    assert message is not None
    assert message["data"].startswith(
        store.keyspace.expiry_member("alice", str(sid)).encode() + b"|"
    )
    assert cached is not None and cached.context.session_goal != "restored"
    assert store.get_session(sid, "alice").context.session_goal == "restored"  # not the cached one


def _bad(restore: SessionRestore, now: dt.datetime) -> list[Any]:
    ctx, msg = restore.context, restore.messages[0]

    def with_message(**change: Any) -> SessionRestore:
        return msgspec.structs.replace(restore, messages=[msgspec.structs.replace(msg, **change)])

    return [
        with_message(role="robot"),
        with_message(turn_no=0),
        with_message(turn_no="1"),
        with_message(text=3),
        with_message(whiteboard_snapshot_index=99),
        with_message(created_at=now.replace(tzinfo=None)),
        with_message(payload=msgspec.Raw(b'{"not json')),
        with_message(payload=msgspec.Raw(b"[" * 70 + b"]" * 70)),  # deeper than the store keeps
        with_message(payload={"x": float("nan")}),
        msgspec.structs.replace(restore, messages=[msg, msg]),  # one turn twice
        msgspec.structs.replace(restore, snapshots={99: [{"type": "X"}]}),  # past turns
        msgspec.structs.replace(restore, snapshots={1: msgspec.Raw(b'[{"a": 1}, 2]')}),
        msgspec.structs.replace(restore, snapshots={1: {"not": "a list"}}),
        msgspec.structs.replace(restore, turns=0),  # below the latest message
        msgspec.structs.replace(restore, extra={"version": "7"}),
        msgspec.structs.replace(restore, extra={"c:session_goal": "x"}),
        msgspec.structs.replace(restore, extra={"note": 3}),
        msgspec.structs.replace(restore, updated_at=now - dt.timedelta(days=400)),  # TTL ran out
        msgspec.structs.replace(restore, created_at="2026-01-01"),
        msgspec.structs.replace(
            restore, context=msgspec.structs.replace(ctx, session_goal="x" * 2_000_000)
        ),
        msgspec.structs.replace(restore, context={"user_id": "alice"}),
        {"context": ctx},
    ]


def test_bad_input_is_refused_and_nothing_is_written(
    store_factory: StoreFactory, clock: Clock
) -> None:
    source = store_factory(clock=clock)
    _, restore = built(source)
    store = store_factory(clock=clock)
    for bad in _bad(restore, clock()):
        with pytest.raises(InvalidInput):
            store.restore_session(bad)
        with pytest.raises(InvalidInput):
            store.restore_sessions([restore, bad])  # the good one is not written either
        assert data_keys(store.client, store.config.key_prefix) == set(), bad
    with pytest.raises(InvalidInput):
        store.restore_sessions(restore)  # type: ignore[arg-type]  # one, not a sequence
    assert store.restore_sessions([]) == []


def test_more_messages_than_the_store_keeps_are_refused(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock, max_messages=3)
    now = clock()
    messages = [Message(turn_no=t, role="user", text=str(t), created_at=now) for t in range(1, 5)]
    restore = SessionRestore(
        context=TutorContext(user_id="alice", session_id=uuid.uuid4()),
        created_at=now,
        updated_at=now,
        messages=messages,
    )
    with pytest.raises(InvalidInput, match="max_messages"):
        store.restore_session(restore)
    store.restore_session(msgspec.structs.replace(restore, messages=messages[1:]))
    assert [m.text for m in store.get_messages(restore.context.session_id, "alice")] == [
        "2",
        "3",
        "4",
    ]


def test_a_batch_spans_users_and_survives_a_script_flush(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock)
    now = clock()
    restores = [
        SessionRestore(
            context=TutorContext(user_id=f"user-{i}", session_id=uuid.uuid4()),
            created_at=now,
            updated_at=now - dt.timedelta(minutes=i),
        )
        for i in range(20)
    ]
    store.client.script_flush()  # the server forgot the script: loaded and sent again
    assert store.restore_sessions(restores) == [1] * 20
    for r in restores:
        listed = store.list_user_sessions(r.context.user_id)
        assert [s.session_id for s in listed] == [r.context.session_id]
        assert listed[0].updated_at == r.updated_at
    assert store.check().problems == {}


def test_restored_folders_are_what_put_folder_leaves_with_their_own_times(
    store_factory: StoreFactory, clock: Clock
) -> None:
    own, again = store_factory(clock=clock), store_factory(clock=clock)
    folder = Folder(
        id=uuid.uuid4(), name="Linear algebra", vector_store_id="vs_1", knowledge_base="Matrices"
    )
    stored = own.put_folder("alice", folder)
    again.restore_folders([FolderRestore(user_id="alice", folder=stored)])
    assert dump(again) == dump(own)
    assert again.get_folder_data(folder.id, "alice") == stored
    older = msgspec.structs.replace(
        stored,
        created_at=clock() - dt.timedelta(days=300),
        updated_at=clock() - dt.timedelta(days=3),
        knowledge_base="",
    )
    item = FolderRestore(user_id="alice", folder=older, extra={"pg_extra": '{"x": true}'})
    again.restore_folders([item, item])  # replaced whole, its own times kept; idempotent
    assert again.get_folder_data(folder.id, "alice") == older
    key = again.keyspace.folder("alice", str(folder.id))
    assert again.client.hget(key, "pg_extra") == b'{"x": true}'
    sid = again.create_session("alice", folder_id=folder.id)  # a session copies it as ever
    assert again.get_session_context(sid, "alice").vector_store_id == "vs_1"


def test_bad_folders_are_refused_and_nothing_is_written(
    store_factory: StoreFactory, clock: Clock
) -> None:
    store = store_factory(clock=clock)
    now = clock()
    good = Folder(id=uuid.uuid4(), name="n", created_at=now, updated_at=now)
    bad = [
        FolderRestore(user_id="alice", folder=msgspec.structs.replace(good, created_at=None)),
        FolderRestore(user_id="alice", folder=msgspec.structs.replace(good, updated_at=None)),
        FolderRestore(user_id="alice", folder=msgspec.structs.replace(good, name=3)),
        FolderRestore(user_id="alice", folder=msgspec.structs.replace(good, id="not-a-uuid")),
        FolderRestore(user_id="", folder=good),
        FolderRestore(user_id="alice", folder=good, extra={"name": "x"}),
        FolderRestore(user_id="alice", folder=good, extra={"note": 1}),
        FolderRestore(
            user_id="alice", folder=msgspec.structs.replace(good, knowledge_base="k" * 600_000)
        ),
        FolderRestore(user_id="alice", folder={"name": "n"}),  # type: ignore[arg-type]
        good,
    ]
    for item in bad:
        with pytest.raises(InvalidInput):
            store.restore_folders([FolderRestore(user_id="alice", folder=good), item])  # type: ignore[list-item]
        assert data_keys(store.client, store.config.key_prefix) == set(), item
    store.restore_folders([])
