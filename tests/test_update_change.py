"""An update of a cached session sends only what changed, against the cached version; without a
usable cached version it sends the whole context. Either way Redis ends up holding exactly the
context given, fields of a newer schema are left alone, and every changed field is validated."""

from __future__ import annotations

import re
import uuid

import msgspec
import pytest

from redis_sessions import InvalidInput, SessionStore, TutorContext, codec, write_codec
from redis_sessions.models import UserConceptMastery
from redis_sessions.requests import RunScript
from redis_sessions.samples import realistic_context

from .conftest import StoreFactory, shown
from .test_round_trips import Recorder

USER = "alice"


def update_args(request: object) -> dict[str, object]:
    """The parts of an update request: base version, removals and the fields it sets."""
    assert isinstance(request, RunScript)
    args = request.args
    removals = int(args[12])
    pairs = args[13 + removals :]
    return {
        "base": args[9],
        "removals": set(args[13 : 13 + removals]),
        "sets": dict(zip(pairs[::2], pairs[1::2], strict=True)),
    }


def stored_context(store: SessionStore, sid: str) -> TutorContext:
    """The context as Redis holds it, decoded past every cache."""
    record = store.client.hgetall(store.keyspace.session(USER, sid))
    return codec.session_from_fields(record, USER, str(sid)).context


def test_a_cached_session_is_updated_with_only_what_changed(store: SessionStore) -> None:
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    ctx = store.get_session_context(sid, USER)
    assert ctx is not None
    ctx.state = "a state of its own"
    ctx.session_goal = None  # back to its default: the field goes
    ctx.user_model_state.record_outcome("Scalar product", "correct")
    recorder = Recorder(store)
    assert store.update_session_context(sid, USER, ctx)
    (request,) = recorder.take()
    sent = update_args(request)
    assert sent["base"] == b"1"
    assert sent["removals"] == {b"c:session_goal"}
    assert set(sent["sets"]) == {b"c:state", b"c:user_model_state"}  # type: ignore[arg-type]
    assert stored_context(store, sid) == msgspec.structs.replace(ctx, history=[])
    assert store.get_session_context(sid, USER) == ctx  # the cache holds what Redis holds
    session = store.get_session(sid, USER)
    assert session is not None and session.version == 2


def test_an_unchanged_context_sends_no_field(store: SessionStore) -> None:
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    ctx = store.get_session_context(sid, USER)
    assert ctx is not None
    recorder = Recorder(store)
    assert store.update_session_context(sid, USER, ctx)
    sent = update_args(recorder.take()[0])
    assert sent["removals"] == set() and sent["sets"] == {}
    session = store.get_session(sid, USER)
    assert session is not None and session.version == 2 and session.context == ctx


def test_without_a_cached_version_the_whole_context_is_sent(store_factory: StoreFactory) -> None:
    store = store_factory(cache_size=0)
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    ctx = realistic_context(USER, sid)
    ctx.lesson_plan = None
    recorder = Recorder(store)
    assert store.update_session_context(sid, USER, ctx)
    sent = update_args(recorder.take()[0])
    assert sent["base"] == b""
    assert b"c:lesson_plan" in sent["removals"]  # type: ignore[operator]
    assert b"c:user_model_state" in sent["sets"]  # type: ignore[operator]
    assert stored_context(store, sid) == ctx


def test_a_change_against_a_version_another_writer_replaced_is_sent_again_whole(
    store_factory: StoreFactory,
) -> None:
    """Store A's cache lags behind store B's write (no invalidation): A's change is refused by the
    script and sent again whole, in a second round trip; Redis then holds A's context exactly."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    a = store_factory(key_prefix=prefix, invalidation=False)
    b = store_factory(key_prefix=prefix, invalidation=False)
    sid = a.create_session(USER, initial_context=realistic_context(USER))
    ctx = a.get_session_context(sid, USER)  # cached in A at version 1
    other = b.get_session_context(sid, USER)
    assert ctx is not None and other is not None
    other.state = "from B"
    other.lesson_plan = None
    assert b.update_session_context(sid, USER, other)  # version 2; A does not know
    ctx.session_goal = "from A"
    recorder = Recorder(a)
    assert a.update_session_context(sid, USER, ctx)
    first, second = recorder.take()
    # sent again whole ("*": and the store caches the record it makes)
    assert update_args(first)["base"] == b"1" and update_args(second)["base"] == b"*"
    assert stored_context(a, sid) == ctx  # B's state and lesson plan replaced: last writer wins
    assert a.client.hget(a.keyspace.session(USER, sid), "version") == b"3"


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "uncached"])
def test_fields_of_a_newer_schema_survive_an_update(
    store_factory: StoreFactory, cached: bool
) -> None:
    store = store_factory(cache_size=100 if cached else 0)
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    key = store.keyspace.session(USER, sid)
    store.client.hset(key, "c:brand_new_field", b'{"x":1}')
    ctx = store.get_session_context(sid, USER)
    assert ctx is not None
    ctx.state = "changed"
    assert store.update_session_context(sid, USER, ctx)
    assert store.client.hget(key, "c:brand_new_field") == b'{"x":1}'
    assert stored_context(store, sid) == ctx


def test_a_changed_field_of_the_wrong_type_is_refused_with_its_path(store: SessionStore) -> None:
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    ctx = store.get_session_context(sid, USER)
    assert ctx is not None
    ctx.user_model_state.concepts["Vectors"] = UserConceptMastery(alpha="many")  # type: ignore[arg-type]
    # the path names the concept, and the message is the one validate_session_context gives
    message = '$.user_model_state.concepts["Vectors"].alpha: expected int, got str'
    with pytest.raises(InvalidInput, match=re.escape(message)):
        store.update_session_context(sid, USER, ctx)
    assert message in store.validate_session_context(ctx).errors
    session = store.get_session(sid, USER)
    assert session is not None and session.version == 1
    assert "Vectors" not in session.context.user_model_state.concepts


# ---------------------------------------------------------------- the pure parts


def contexts() -> list[TutorContext]:
    sid = uuid.uuid4()
    rich = realistic_context(USER, str(sid))
    return [
        TutorContext(user_id=USER, session_id=sid),
        rich,
        msgspec.structs.replace(rich, folder_id=uuid.uuid4(), interaction_mode="chat_only"),
        msgspec.structs.replace(
            rich, high_cost_calls=3, max_high_cost_calls=0, latest_turn_no=7, state=""
        ),
    ]


@pytest.mark.parametrize("context", contexts(), ids=["defaults", "rich", "folder", "scalars"])
def test_encoded_fields_are_the_context_less_its_defaults(context: TutorContext) -> None:
    sid = str(context.session_id)
    fields = write_codec.encode_context(context, user_id=USER, session_id=sid, max_bytes=1 << 20)
    lean = msgspec.structs.replace(context, history=[], whiteboard_history=[])
    whole = msgspec.json.decode(msgspec.json.encode(lean))  # omit_defaults: only what differs
    expected = {
        f"c:{k}".encode(): msgspec.json.encode(v)
        for k, v in whole.items()
        if k not in ("user_id", "session_id", "folder_id")
        # omit_defaults keeps a Struct made by a default_factory; the store leaves it out too
        and not (k == "user_model_state" and v == {})
    }
    if context.folder_id is not None:
        expected[b"folder_id"] = str(context.folder_id).encode()
    assert fields == expected
    record = write_codec.record_fields(
        user_id=USER, session_id=sid, now=codec.utc_now(), context_fields=fields
    )
    assert codec.session_from_fields(record, USER, sid).context == lean


@pytest.mark.parametrize("context", contexts(), ids=["defaults", "rich", "folder", "scalars"])
def test_max_context_bytes_bounds_exactly_the_lean_json(context: TutorContext) -> None:
    sid = str(context.session_id)
    fields = write_codec.encode_context(context, user_id=USER, session_id=sid, max_bytes=1 << 20)
    record = write_codec.record_fields(
        user_id=USER, session_id=sid, now=codec.utc_now(), context_fields=fields
    )
    size = len(codec.lean_json(record))  # the lean JSON the stored fields make
    write_codec.encode_context(context, user_id=USER, session_id=sid, max_bytes=size)
    with pytest.raises(InvalidInput, match=f"lean context is {size} bytes"):
        write_codec.encode_context(context, user_id=USER, session_id=sid, max_bytes=size - 1)


def test_fields_equal_to_the_stored_ones_are_not_validated_again() -> None:
    """Only what changed is decoded to check its type: what Redis holds was read back already."""
    ctx = realistic_context(USER, str(uuid.uuid4()))
    sid = str(ctx.session_id)
    stored = write_codec.encode_context(ctx, user_id=USER, session_id=sid, max_bytes=1 << 20)
    ctx.state = 5  # type: ignore[assignment]  # a wrong type, in a changed field
    with pytest.raises(InvalidInput, match=r"\$\.state"):
        write_codec.encode_context(
            ctx, user_id=USER, session_id=sid, max_bytes=1 << 20, stored=stored
        )
    ctx.state = "fine"
    fields = write_codec.encode_context(
        ctx, user_id=USER, session_id=sid, max_bytes=1 << 20, stored=stored
    )
    change = write_codec.context_change(fields, stored)
    assert change.sets == {b"c:state": b'"fine"'} and change.removals == []


def test_a_whole_update_caches_what_it_wrote_so_the_next_sends_only_a_change(
    store: SessionStore,
) -> None:
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    store.append_message(sid, USER, "user", "hi")
    store.end_session(sid, USER)
    store._core.cache.clear()  # nothing cached: the next update is whole
    ctx = store_context = realistic_context(USER)
    ctx.session_id = uuid.UUID(str(sid))
    ctx.session_goal = "whole"
    recorder = Recorder(store)
    assert store.update_session_context(sid, USER, ctx)
    (whole,) = recorder.take()
    assert update_args(whole)["base"] == b"*"
    key = store.keyspace.session(USER, str(sid))
    assert store._core.cache.peek((USER, str(sid))) == shown(store.client.hgetall(key))  # exactly
    store_context.state = "then a small change"
    assert store.update_session_context(sid, USER, store_context)
    (small,) = recorder.take()
    assert update_args(small)["base"] == b"2" and set(update_args(small)["sets"]) == {b"c:state"}  # type: ignore[arg-type]
    # the turn counter only ever goes up: the message appended above keeps it at 1
    expected = msgspec.structs.replace(store_context, history=[], latest_turn_no=1)
    assert stored_context(store, sid) == expected
    assert store.get_session_context(sid, USER) == expected  # and the cache holds the same


def test_a_record_with_fields_of_a_newer_version_is_not_cached_from_a_whole_update(
    store: SessionStore,
) -> None:
    sid = store.create_session(USER)
    key = store.keyspace.session(USER, str(sid))
    store.client.hset(key, "c:from_the_future", b"1")
    store._core.cache.clear()
    ctx = TutorContext(user_id=USER, session_id=uuid.UUID(str(sid)), session_goal="g")
    assert store.update_session_context(sid, USER, ctx)
    assert store._core.cache.peek((USER, str(sid))) is None  # it could not know that field
    assert store.client.hget(key, "c:from_the_future") == b"1"
