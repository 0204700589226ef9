"""modify's contract: fn changes the context in place and returns None, or returns a TutorContext;
anything else raises TypeError before a write; on the async store fn may be a coroutine function;
fn runs again (on the context re-read) after a conflict."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig, TutorContext
from redis_sessions.embedded import EmbeddedRedis


@pytest.mark.parametrize("returned", [1, "done", {"session_goal": "x"}, [], True])
def test_fn_returning_anything_else_raises_before_writing(
    store: SessionStore, returned: object
) -> None:
    sid = store.create_session("alice")

    def fn(ctx: TutorContext) -> Any:
        ctx.session_goal = "changed in place"
        return returned

    with pytest.raises(TypeError, match="return None, or return a TutorContext"):
        store.modify(sid, "alice", fn)
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1 and session.context.session_goal is None


def test_fn_may_return_a_new_context_or_none(store: SessionStore) -> None:
    sid = store.create_session("alice")

    def in_place(ctx: TutorContext) -> None:
        ctx.high_cost_calls += 1

    def replaced(ctx: TutorContext) -> TutorContext:
        return TutorContext(user_id="alice", session_id=ctx.session_id, session_goal="new")

    assert store.modify(sid, "alice", in_place).high_cost_calls == 1
    assert store.modify(sid, "alice", replaced).session_goal == "new"
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.session_goal == "new" and ctx.high_cost_calls == 0


def test_a_coroutine_function_needs_the_async_store(store: SessionStore) -> None:
    sid = store.create_session("alice")

    async def fn(ctx: TutorContext) -> None:
        ctx.session_goal = "async"

    if isinstance(store, SessionStore):
        with pytest.raises(TypeError, match="needs AsyncSessionStore"):
            store.modify(sid, "alice", fn)  # type: ignore[arg-type]
        session = store.get_session(sid, "alice")
        assert session is not None and session.version == 1
    else:  # the async store (through the test facade) awaits it
        assert store.modify(sid, "alice", fn).session_goal == "async"


def test_async_fn_runs_again_on_the_reread_context_after_a_conflict(
    real_server: EmbeddedRedis,
) -> None:
    prefix = f"mod{uuid.uuid4().hex[:6]}"

    async def main() -> list[int]:
        store = AsyncSessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
        sid = await store.create_session("alice")
        seen: list[int] = []
        other = redis.Redis.from_url(real_server.url)
        other_store = SessionStore(other, config=StoreConfig(key_prefix=prefix))

        async def fn(ctx: TutorContext) -> None:
            seen.append(ctx.high_cost_calls)
            if len(seen) == 1:  # another writer gets in between: a conflict, then a rerun
                other_store.modify(sid, "alice", lambda c: setattr(c, "high_cost_calls", 10))
            await asyncio.sleep(0)
            ctx.high_cost_calls += 1

        result = await store.modify(sid, "alice", fn)
        assert result.high_cost_calls == 11
        other_store.close()
        other.close()
        await store.aclose()
        return seen

    assert asyncio.run(main()) == [0, 10]
