"""A cached record keeps its context as MessagePack after the first read decoded it (faster to
decode on the next hits): every hit still gives exactly what Redis holds, whatever the free-form
values, and a context handed out is the caller's to change."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from redis_sessions import codec
from redis_sessions.samples import realistic_context

from .conftest import StoreFactory

USER = "packer"


def free_form(big: bool) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "quiz",
        "score": 0.1 + 0.2,
        "tiny": 5e-324,
        "nested": [{"é": [1, -2, 3.5, None, True]}, [], {}],
        "text": "line\nbreak \u2028 \U0001f600",
        "negative": -(2**63),
    }
    if big:
        event["huge"] = 2**70  # JSON holds it, MessagePack cannot: the JSON way stays
    return event


def test_every_hit_gives_what_redis_holds(store_factory: StoreFactory) -> None:
    prefix = f"pk{uuid.uuid4().hex[:8]}"
    cached = store_factory(key_prefix=prefix)
    reference = store_factory(key_prefix=prefix, cache_size=0)
    for big in (False, True):
        context = msgspec.structs.replace(realistic_context(USER), last_event=free_form(big))
        sid = cached.create_session(USER, initial_context=context)
        want = reference.get_session(sid, USER)
        assert want is not None
        assert want.context.last_event == free_form(big)
        hits = cached.stats().cache_hits
        for _ in range(3):  # the first hit decodes the JSON and packs; the next unpack
            got = cached.get_session_context(sid, USER)
            assert got is not None
            assert msgspec.json.encode(got) == msgspec.json.encode(want.context)
            session = cached.get_session(sid, USER)
            assert session is not None
            assert msgspec.json.encode(session) == msgspec.json.encode(want)
        assert cached.stats().cache_hits >= hits + 5  # the reads were hits


def test_a_context_handed_out_is_the_callers(store_factory: StoreFactory) -> None:
    store = store_factory()
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    assert store.get_session_context(sid, USER) is not None
    first = store.get_session_context(sid, USER)  # a hit: the one that packs
    assert first is not None
    first.session_goal = "changed by the caller"
    first.user_model_state.concepts.clear()
    second = store.get_session_context(sid, USER)
    assert second is not None
    assert second.session_goal != "changed by the caller"
    assert second.user_model_state.concepts


def test_pack_refuses_what_messagepack_cannot_hold() -> None:
    context = msgspec.structs.replace(realistic_context(USER), last_event=free_form(True))
    assert codec.pack_context(context) == b""
    plain = msgspec.structs.replace(context, last_event=free_form(False))
    assert codec.unpack_context(codec.pack_context(plain)) == plain
