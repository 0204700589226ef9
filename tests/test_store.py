"""Behaviour of the store, run over every backend in the table (fakeredis and real redis-servers)."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest

from redis_sessions import (
    Folder,
    InvalidInput,
    SessionNotFound,
    SessionStore,
    TutorContext,
    VersionConflict,
)
from redis_sessions.samples import KNOWLEDGE_BASE, chat_turn, realistic_context

from .backends import Backend
from .conftest import Clock, StoreFactory, data_keys


def raw_keys(store: SessionStore) -> set[bytes]:
    return data_keys(store.client, store.config.key_prefix)


# ---------------------------------------------------------------- create / get


def test_create_gives_a_uuid4_and_the_reference_defaults(store: SessionStore, clock: Clock) -> None:
    sid = store.create_session("alice")
    assert isinstance(sid, uuid.UUID) and sid.version == 4
    session = store.get_session(sid, "alice")
    assert session is not None
    expected = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
    assert session.context == expected
    assert session.version == 1
    assert session.created_at == session.updated_at == clock.now
    assert session.ended_at is None and session.folder_id is None


def test_initial_context_merges_over_defaults(store: SessionStore) -> None:
    sid = store.create_session(
        "alice", initial_context={"session_goal": "fractions", "interaction_mode": "chat_only"}
    )
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None
    assert ctx.session_goal == "fractions" and ctx.interaction_mode == "chat_only"
    assert ctx.max_high_cost_calls == 3 and ctx.user_model_state.learning_pace_factor == 1.0


def test_initial_context_as_struct_keeps_every_field(store: SessionStore) -> None:
    original = realistic_context("alice")
    sid = store.create_session("alice", initial_context=original)
    ctx = store.get_session_context(sid, "alice")
    assert ctx == msgspec.structs.replace(original, session_id=uuid.UUID(str(sid)))


def test_initial_context_of_another_user_is_refused(store: SessionStore) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        store.create_session("alice", initial_context={"user_id": "mallory"})
    assert store.list_user_sessions("alice") == []


def test_initial_context_reports_every_problem(store: SessionStore) -> None:
    with pytest.raises(InvalidInput) as info:
        store.create_session(
            "alice", initial_context={"high_cost_calls": "many", "interaction_mode": "video"}
        )
    assert "$.high_cost_calls" in str(info.value) and "$.interaction_mode" in str(info.value)
    assert raw_keys(store) == set()


def test_fields_missing_in_the_record_take_defaults(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "x", "high_cost_calls": 2})
    key = store._core.keys.session("alice", sid)
    store.client.hdel(key, "c:high_cost_calls")
    store._core.cache.clear()
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.high_cost_calls == 0 and ctx.session_goal == "x"


# ---------------------------------------------------------------- scoping by user


def test_another_users_session_is_missing_for_every_call(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "secret"})
    store.append_message(sid, "alice", "user", "hello")
    mallory_ctx = TutorContext(user_id="mallory", session_id=uuid.UUID(str(sid)))
    assert store.get_session(sid, "mallory") is None
    assert store.get_session_context(sid, "mallory", history=5) is None
    assert store.session_exists(sid, "mallory") is False
    assert store.update_session_context(sid, "mallory", mallory_ctx) is False
    assert store.end_session(sid, "mallory") is False
    assert store.delete_session(sid, "mallory") is False
    assert store.get_messages(sid, "mallory") == []
    with pytest.raises(SessionNotFound):
        store.append_message(sid, "mallory", "user", "sneaky")
    assert store.list_user_sessions("mallory") == []
    # and alice's session is untouched
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1 and session.ended_at is None
    assert [m.text for m in store.get_messages(sid, "alice")] == ["hello"]


@pytest.mark.parametrize("user_id", ["a{b}c", "x:y", "ünï cødé 🎓", "}", "{", "%41", "a b"])
def test_hostile_user_ids_round_trip_and_stay_apart(store: SessionStore, user_id: str) -> None:
    sid = store.create_session(user_id)
    assert store.get_session_context(sid, user_id) is not None
    assert [s.session_id for s in store.list_user_sessions(user_id)] == [sid]
    for other in ("a", "b", "A", user_id + " "):
        assert store.get_session(sid, other) is None
        assert store.list_user_sessions(other) == []


# ---------------------------------------------------------------- update / versions


def test_update_stores_lean_context_and_bumps_version(store: SessionStore, clock: Clock) -> None:
    sid = store.create_session("alice")
    ctx = realistic_context("alice", sid)
    ctx.history = [{"role": "user", "content": "not stored"}]
    ctx.whiteboard_history = [[{"type": "CLEAR_BOARD"}]]
    clock.advance(seconds=5)
    assert store.update_session_context(sid, "alice", ctx) is True
    fields = store.client.hgetall(store._core.keys.session("alice", sid))
    assert b"c:history" not in fields and b"c:whiteboard_history" not in fields
    assert b"not stored" not in b"".join(fields.values())
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 2 and session.updated_at == clock.now
    assert session.context == msgspec.structs.replace(ctx, history=[], whiteboard_history=[])


def test_update_back_to_defaults_removes_fields(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "g", "state": "s"})
    assert store.update_session_context(
        sid, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
    )
    fields = store.client.hgetall(store._core.keys.session("alice", sid))
    assert not [k for k in fields if k.startswith(b"c:")]
    store._core.cache.clear()
    assert store.get_session_context(sid, "alice") == TutorContext(
        user_id="alice", session_id=uuid.UUID(str(sid))
    )


def test_update_of_missing_or_deleted_session_never_recreates(store: SessionStore) -> None:
    sid = str(uuid.uuid4())
    assert (
        store.update_session_context(
            sid, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)))
        )
        is False
    )
    sid = store.create_session("alice")
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None
    assert store.delete_session(sid, "alice")
    assert store.update_session_context(sid, "alice", ctx) is False
    assert raw_keys(store) == set()


def test_expected_version_detects_the_lost_update(store: SessionStore) -> None:
    sid = store.create_session("alice")
    first = store.get_session(sid, "alice")
    assert first is not None
    ctx_a, ctx_b = first.context, msgspec.structs.replace(first.context)
    ctx_a.session_goal, ctx_b.session_goal = "A", "B"
    assert store.update_session_context(sid, "alice", ctx_a, expected_version=first.version)
    with pytest.raises(VersionConflict) as info:
        store.update_session_context(sid, "alice", ctx_b, expected_version=first.version)
    assert (info.value.expected, info.value.actual) == (1, 2)
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.session_goal == "A"


def test_update_rejects_a_context_of_another_session(store: SessionStore) -> None:
    sid, other = store.create_session("alice"), store.create_session("alice")
    ctx = store.get_session_context(other, "alice")
    assert ctx is not None
    with pytest.raises(InvalidInput, match="session_id"):
        store.update_session_context(sid, "alice", ctx)


def test_update_with_wrong_field_type_is_refused_and_changes_nothing(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"high_cost_calls": 1})
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None
    ctx.high_cost_calls = "lots"  # type: ignore[assignment]  # Structs do not check on assignment
    with pytest.raises(InvalidInput, match=r"\$\.high_cost_calls"):
        store.update_session_context(sid, "alice", ctx)
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1 and session.context.high_cost_calls == 1


def test_oversized_context_is_refused_before_writing(store_factory: StoreFactory) -> None:
    store = store_factory(max_context_bytes=4096)
    sid = store.create_session("alice")
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None
    ctx.session_goal = "x" * 5000
    with pytest.raises(InvalidInput, match="max_context_bytes"):
        store.update_session_context(sid, "alice", ctx)
    with pytest.raises(InvalidInput, match="max_context_bytes"):
        store.create_session("alice", initial_context={"session_goal": "y" * 5000})
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1 and session.context.session_goal is None
    assert len(store.list_user_sessions("alice")) == 1


# ---------------------------------------------------------------- end / exists / delete


def test_end_session_records_the_first_end_time(store: SessionStore, clock: Clock) -> None:
    sid = store.create_session("alice")
    ended = clock.advance(minutes=1)
    assert store.end_session(sid, "alice") is True
    clock.advance(minutes=1)
    assert store.end_session(sid, "alice") is True
    session = store.get_session(sid, "alice")
    assert session is not None and session.ended_at == ended
    assert store.end_session(str(uuid.uuid4()), "alice") is False


def test_exists(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert store.session_exists(sid, "alice") is True
    assert store.session_exists(str(uuid.uuid4()), "alice") is False
    store.delete_session(sid, "alice")
    assert store.session_exists(sid, "alice") is False


def test_delete_cascades_and_leaves_nothing(store: SessionStore) -> None:
    keep = store.create_session("alice", initial_context={"session_goal": "keep me"})
    store.append_message(keep, "alice", "user", "kept")
    sid = store.create_session("alice")
    for turn in range(1, 8):
        role, text, actions = chat_turn(turn)
        store.append_message(sid, "alice", role, text, whiteboard_actions=actions)
    before = raw_keys(store)
    assert store.delete_session(sid, "alice") is True
    after = raw_keys(store)
    assert not [k for k in after if str(sid).encode() in k]
    assert before - after == {k for k in before if str(sid).encode() in k}
    index = store.client.zrange(store._core.keys.index("alice"), 0, -1)
    assert index == [str(keep).encode()]
    assert store.get_session(sid, "alice") is None
    assert store.delete_session(sid, "alice") is False
    assert [m.text for m in store.get_messages(keep, "alice")] == ["kept"]


# ---------------------------------------------------------------- listing


def test_listing_is_newest_activity_first_with_pagination(
    store: SessionStore, clock: Clock
) -> None:
    ids = []
    for i in range(7):
        clock.advance(seconds=1)
        ids.append(store.create_session("alice", initial_context={"session_goal": f"goal {i}"}))
    clock.advance(seconds=1)
    store.append_message(ids[2], "alice", "user", "bump")  # activity moves it to the front
    expected = [ids[2], *reversed([i for i in ids if i != ids[2]])]
    rows = store.list_user_sessions("alice")
    assert [r.session_id for r in rows] == expected
    assert rows[0].session_goal == "goal 2" and rows[0].updated_at == clock.now
    assert [r.session_id for r in store.list_user_sessions("alice", limit=3)] == expected[:3]
    assert [r.session_id for r in store.list_user_sessions("alice", limit=3, offset=3)] == expected[
        3:6
    ]
    assert [r.session_id for r in store.list_user_sessions("alice", limit=3, offset=6)] == expected[
        6:
    ]
    assert store.list_user_sessions("alice", offset=7) == []


def test_listing_caps_limit_at_100(store: SessionStore) -> None:
    for _ in range(103):
        store.create_session("bulk")
    assert len(store.list_user_sessions("bulk", limit=1000)) == 100
    assert len(store.list_user_sessions("bulk", limit=100, offset=100)) == 3


def test_listing_skips_and_reports_index_entries_without_record_and_changes_nothing(
    store: SessionStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ids = []
    for _ in range(6):
        clock.advance(seconds=1)
        ids.append(store.create_session("alice"))
    for sid in ids[2:5]:  # newest first: ids[5], (4, 3, 2 gone), 1, 0
        store.client.delete(store._core.keys.session("alice", sid))
    index_before = store.client.zrange(store._core.keys.index("alice"), 0, -1)
    rows = store.list_user_sessions("alice", limit=2)
    assert [r.session_id for r in rows] == [ids[5], ids[1]]
    # the offset counts sessions, not entries: the next page starts right after the first
    assert [r.session_id for r in store.list_user_sessions("alice", limit=2, offset=2)] == [ids[0]]
    assert [r.session_id for r in store.list_user_sessions("alice", offset=1)] == ids[1::-1]
    assert store.client.zrange(store._core.keys.index("alice"), 0, -1) == index_before  # a read
    for sid in ids[2:5]:
        assert f"{sid}: index entry without a record" in caplog.text


@pytest.mark.parametrize(
    "limit, offset", [(0, 0), (-1, 0), (10, -1), ("10", 0), (True, 0), (10, 10_001), (1, 10**18)]
)
def test_listing_rejects_bad_paging(store: SessionStore, limit: object, offset: object) -> None:
    with pytest.raises(InvalidInput):
        store.list_user_sessions("alice", limit=limit, offset=offset)  # type: ignore[arg-type]


# ---------------------------------------------------------------- messages


def test_append_allocates_turns_and_snapshots(store: SessionStore) -> None:
    sid = store.create_session("alice")
    turns = []
    for turn in range(1, 7):
        role, text, actions = chat_turn(turn)
        turns.append(
            store.append_message(
                sid, "alice", role, text, payload={"turn": turn}, whiteboard_actions=actions
            )
        )
    assert turns == [1, 2, 3, 4, 5, 6]
    messages = store.get_messages(sid, "alice", limit=4)
    assert [m.turn_no for m in messages] == [3, 4, 5, 6]
    assert [m.whiteboard_snapshot_index for m in messages] == [None, 4, None, 6]
    assert messages[0].payload == {"turn": 3} and messages[1].role == "assistant"
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.latest_turn_no == 6 and ctx.latest_snapshot_index == 6
    assert ctx.history == [] and ctx.whiteboard_history == []


def test_history_read_fills_history_and_snapshots(store: SessionStore) -> None:
    sid = store.create_session("alice")
    for turn in range(1, 9):
        role, text, actions = chat_turn(turn)
        store.append_message(sid, "alice", role, text, whiteboard_actions=actions)
    ctx = store.get_session_context(sid, "alice", history=3)
    assert ctx is not None
    assert [h["role"] for h in ctx.history] == ["assistant", "user", "assistant"]
    assert ctx.history[0]["content"] == chat_turn(6)[1]
    assert ctx.whiteboard_history == [chat_turn(6)[2], chat_turn(8)[2]]
    # the returned history never leaks back into the record on update
    assert store.update_session_context(sid, "alice", ctx)
    assert store.get_session_context(sid, "alice", history=0).history == []  # type: ignore[union-attr]


def test_messages_are_trimmed_with_their_snapshots(store_factory: StoreFactory) -> None:
    store = store_factory(max_messages=5)
    sid = store.create_session("alice")
    for turn in range(1, 13):
        role, text, actions = chat_turn(turn)
        store.append_message(sid, "alice", role, text, whiteboard_actions=actions)
    keys = store._core.keys.session_keys("alice", sid)
    assert sorted(int(t) for t in store.client.hkeys(keys[1])) == [8, 9, 10, 11, 12]
    assert sorted(int(t) for t in store.client.hkeys(keys[2])) == [8, 10, 12]
    assert [m.turn_no for m in store.get_messages(sid, "alice", limit=50)] == [8, 9, 10, 11, 12]


def test_append_to_missing_session_raises(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.append_message(str(uuid.uuid4()), "alice", "user", "hello?")
    assert raw_keys(store) == set()


@pytest.mark.parametrize(
    "role, text, kwargs",
    [
        ("robot", "x", {}),
        ("user", 42, {}),
        ("user", "x", {"whiteboard_actions": {"type": "CLEAR_BOARD"}}),
        ("user", "x", {"payload": object()}),
    ],
)
def test_bad_messages_are_refused(
    store: SessionStore, role: str, text: object, kwargs: dict
) -> None:
    sid = store.create_session("alice")
    with pytest.raises(InvalidInput):
        store.append_message(sid, "alice", role, text, **kwargs)  # type: ignore[arg-type]
    assert store.get_messages(sid, "alice") == []


def test_update_never_lowers_the_turn_counters(store: SessionStore) -> None:
    sid = store.create_session("alice")
    stale = store.get_session_context(sid, "alice")
    assert stale is not None
    store.append_message(
        sid, "alice", "assistant", "drawn", whiteboard_actions=[{"type": "CLEAR_BOARD"}]
    )
    assert store.update_session_context(sid, "alice", stale)
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and (ctx.latest_turn_no, ctx.latest_snapshot_index) == (1, 1)
    assert store.append_message(sid, "alice", "user", "next") == 2


# ---------------------------------------------------------------- folders


def test_session_from_folder_copies_vector_store_and_analysis(store: SessionStore) -> None:
    folder_id = str(uuid.uuid4())
    stored = store.put_folder(
        "alice",
        Folder(
            id=folder_id,
            name="Linear algebra",
            vector_store_id="vs_123",
            knowledge_base=KNOWLEDGE_BASE,
        ),
    )
    assert stored.created_at is not None
    assert store.get_folder_data(folder_id, "alice") == stored
    sid = store.create_session("alice", folder_id=folder_id)
    session = store.get_session(sid, "alice")
    assert session is not None and session.folder_id == uuid.UUID(str(folder_id))
    ctx = session.context
    assert str(ctx.folder_id) == folder_id and ctx.vector_store_id == "vs_123"
    assert ctx.analysis_result is not None
    assert ctx.analysis_result.key_concepts == [
        "Vectors",
        "Matrices",
        "Linear transformations",
        "Eigenvalues",
    ]
    assert ctx.analysis_result.key_terms["Span"] == "all linear combinations of a set of vectors"
    assert ctx.analysis_result.file_names == ["chapter1.pdf", "chapter2.pdf"]
    assert ctx.analysis_result.analysis_text == KNOWLEDGE_BASE


def test_foreign_or_missing_folder_leaves_session_without_folder(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    folder_id = str(uuid.uuid4())
    store.put_folder(
        "bob",
        Folder(id=folder_id, name="Bob's", vector_store_id="vs_bob", knowledge_base=KNOWLEDGE_BASE),
    )
    assert store.get_folder_data(folder_id, "alice") is None
    for fid in (folder_id, str(uuid.uuid4())):
        sid = store.create_session("alice", folder_id=fid)
        session = store.get_session(sid, "alice")
        assert session is not None and session.folder_id is None
        assert session.context.vector_store_id is None and session.context.analysis_result is None
    assert "created without folder data" in caplog.text


def test_corrupt_folder_does_not_fail_the_create(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    folder_id = str(uuid.uuid4())
    store.put_folder("alice", Folder(id=folder_id, name="f", knowledge_base=KNOWLEDGE_BASE))
    store.client.hset(store._core.keys.folder("alice", folder_id), "analysis", b"{not json")
    sid = store.create_session("alice", folder_id=folder_id)
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.folder_id is None and ctx.analysis_result is None
    assert "not loadable" in caplog.text


def test_put_folder_keeps_creation_time(store: SessionStore, clock: Clock) -> None:
    folder_id = str(uuid.uuid4())
    first = store.put_folder("alice", Folder(id=folder_id, name="v1"))
    clock.advance(hours=1)
    second = store.put_folder(
        "alice", Folder(id=folder_id, name="v2", knowledge_base="KEY CONCEPTS:\nA\n")
    )
    assert second.created_at == first.created_at and second.updated_at == clock.now
    assert store.get_folder_data(folder_id, "alice") == second


def test_folder_source_replaces_redis_folders(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    good = str(uuid.uuid4())
    calls: list[tuple[str, str]] = []

    def source(folder_id: str, user_id: str) -> Folder | None:
        calls.append((folder_id, user_id))
        if folder_id == good:
            return Folder(
                id=good, name="ext", vector_store_id="vs_ext", knowledge_base=KNOWLEDGE_BASE
            )
        if user_id == "boom":
            raise RuntimeError("folder service down")
        return None

    store = store_factory(folder_source=source)
    ctx = store.get_session_context(store.create_session("alice", folder_id=good), "alice")
    assert ctx is not None and ctx.vector_store_id == "vs_ext" and str(ctx.folder_id) == good
    for user in ("alice", "boom"):
        sid = store.create_session(user, folder_id=str(uuid.uuid4()))
        other = store.get_session_context(sid, user)
        assert other is not None and other.folder_id is None and other.analysis_result is None
    assert "folder service down" in caplog.text
    assert store.get_folder_data(good, "alice") is not None and len(calls) == 4


def test_a_client_that_decodes_responses_is_refused() -> None:
    import fakeredis

    with pytest.raises(InvalidInput, match="decode_responses"):
        SessionStore(fakeredis.FakeRedis(decode_responses=True))


def test_store_as_context_manager_closes_its_own_client(real_backend_url: str) -> None:
    import redis

    name = f"probe-{uuid.uuid4().hex[:8]}"

    def mine(observer: redis.Redis) -> int:
        return sum(1 for c in observer.client_list() if c.get("name") == name)

    with redis.Redis.from_url(real_backend_url) as observer:
        with SessionStore.from_url(real_backend_url, client_name=name) as store:
            sid = store.create_session("alice")
            store.delete_session(sid, "alice")
            assert mine(observer) >= 1  # the pool's, and the invalidation listener's
        # the sockets are closed; Redis notices on its next event-loop turn (give it 2 s)
        deadline = time.monotonic() + 2
        while mine(observer) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mine(observer) == 0


def test_each_row_of_the_table_runs_the_store_it_names(
    store: SessionStore, backend: Backend
) -> None:
    from redis_sessions import AsyncSessionStore

    inner = getattr(store, "wrapped", store)
    assert type(inner) is (AsyncSessionStore if backend.flavor == "async" else SessionStore)


def test_scripts_are_loaded_again_after_a_flush(store: SessionStore) -> None:
    """A restarted or flushed server has no scripts: the store loads them again, once, itself."""
    sid = store.create_session("alice")
    store.client.script_flush()
    assert store.append_message(sid, "alice", "user", "after the flush") == 1
    assert store.delete_session(sid, "alice") is True
