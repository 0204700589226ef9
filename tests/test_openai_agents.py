"""redis_sessions.integrations.openai_agents: the store as an OpenAI Agents SDK ``Session``, through
the SDK's own Runner with its scripted test model (no network, tracing off), on every backend."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

agents = pytest.importorskip("agents", reason="the openai-agents extra is not installed")

from agents import Agent, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.memory import Session, SessionSettings  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

from redis_sessions import InvalidInput, SessionNotFound  # noqa: E402
from redis_sessions.integrations.openai_agents import AgentSession  # noqa: E402

from .agent_stores import AgentStores  # noqa: E402

set_tracing_disabled(True)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_it_is_a_session_of_the_sdk(agent_stores: AgentStores) -> None:
    store = agent_stores.store()
    session = agent_stores.run(AgentSession.create(store, "alice"))
    assert isinstance(session, Session)
    assert session.session_settings is None
    assert session.session_id == str(
        agent_stores.run(store.list_user_sessions("alice"))[0].session_id
    )


def test_a_scripted_run_keeps_its_history_in_the_store(agent_stores: AgentStores) -> None:
    store = agent_stores.store()

    @function_tool
    def concept_mastery(concept: str) -> str:
        """How well the learner knows a concept."""
        return f"{concept}: 0.8"

    model = ScriptedModel(
        [
            [function_call("concept_mastery", {"concept": "Matrices"}, call_id="c1")],
            [assistant_message("You know matrices well.")],
            [assistant_message("Row times column.")],
        ]
    )
    agent = Agent(name="tutor", instructions="Teach.", model=model, tools=[concept_mastery])

    async def scenario() -> tuple[Any, ...]:
        sid = await store.create_session("alice", initial_context={"session_goal": "Matrices"})
        session = AgentSession(store, session_id=sid, user_id="alice")
        first = await Runner.run(agent, "How am I doing?", session=session)
        second = await Runner.run(agent, "How do I multiply?", session=session)
        items = await session.get_items()
        messages = await store.get_messages(sid, "alice")
        context = await store.get_session_context(sid, "alice")
        return first, second, items, messages, context

    first, second, items, messages, context = agent_stores.run(scenario())
    assert first.final_output == "You know matrices well."
    assert second.final_output == "Row times column."
    # the second model call saw the first run's whole history, read back from Redis
    second_input = model.calls[-1].input
    assert isinstance(second_input, list)
    assert [i.get("type", "message") for i in second_input] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert second_input[0]["content"] == "How am I doing?"
    assert len(items) == len(messages) == 6
    assert [m.role for m in messages] == [
        "user",
        "assistant",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    assert [m.text for m in messages] == [
        "How am I doing?",
        'concept_mastery({"concept":"Matrices"})',
        "Matrices: 0.8",
        "You know matrices well.",
        "How do I multiply?",
        "Row times column.",
    ]
    assert [m.payload for m in messages] == items  # the item itself is the payload
    assert context.session_goal == "Matrices"  # one session: the context is still there


def test_get_items_gives_the_latest_oldest_first(agent_stores: AgentStores) -> None:
    store = agent_stores.store(max_messages=5)

    async def scenario() -> None:
        session = await AgentSession.create(store, "alice")
        await session.add_items([user(f"m{i}") for i in range(1, 8)])
        assert [i["content"] for i in await session.get_items()] == ["m3", "m4", "m5", "m6", "m7"]
        assert [i["content"] for i in await session.get_items(2)] == ["m6", "m7"]
        assert [i["content"] for i in await session.get_items(50)] == ["m3", "m4", "m5", "m6", "m7"]
        assert await session.get_items(0) == []
        session.session_settings = SessionSettings(limit=3)
        assert [i["content"] for i in await session.get_items()] == ["m5", "m6", "m7"]
        assert [i["content"] for i in await session.get_items(1)] == ["m7"]

    agent_stores.run(scenario())


def test_pop_clear_and_the_apps_own_messages(agent_stores: AgentStores) -> None:
    store = agent_stores.store()

    async def scenario() -> None:
        session = await AgentSession.create(store, "alice")
        assert await session.pop_item() is None
        await session.add_items([user("q"), {"role": "assistant", "content": "a"}])
        await store.append_message(session.session_id, "alice", "system", "the app's note")
        assert await session.pop_item() == {"role": "system", "content": "the app's note"}
        assert await session.pop_item() == {"role": "assistant", "content": "a"}
        await session.add_items([{"role": "developer", "content": "be brief"}])
        stored = await store.get_messages(session.session_id, "alice")
        assert [(m.turn_no, m.role) for m in stored] == [(1, "user"), (2, "system")]
        await session.clear_session()
        assert await session.get_items() == []
        assert await store.session_exists(session.session_id, "alice")  # the session stays
        await session.add_items([user("after")])
        assert await session.get_items() == [user("after")]

    agent_stores.run(scenario())


def test_concurrent_add_items_lose_nothing(agent_stores: AgentStores) -> None:
    stores = [agent_stores.store() for _ in range(3)]  # three app servers

    async def scenario() -> None:
        sid = await stores[0].create_session("alice")
        sessions = [AgentSession(s, session_id=sid, user_id="alice") for s in stores]

        async def writer(n: int) -> None:
            for i in range(10):
                await sessions[n].add_items([user(f"{n}.{i}.a"), user(f"{n}.{i}.b")])

        await asyncio.gather(*(writer(n) for n in range(3)))
        items = [i["content"] for i in await sessions[0].get_items()]
        assert sorted(items) == sorted(
            f"{n}.{i}.{p}" for n in range(3) for i in range(10) for p in "ab"
        )
        for k in range(0, 60, 2):  # each call's items stay together, in order
            assert items[k][:-1] == items[k + 1][:-1]
        popped = await asyncio.gather(*(s.pop_item() for s in sessions for _ in range(4)))
        assert len({p["content"] for p in popped if p}) == 12  # atomic: no item popped twice
        assert len(await sessions[0].get_items()) == 48

    agent_stores.run(scenario())


def test_bad_input_and_foreign_sessions_write_nothing(agent_stores: AgentStores) -> None:
    store = agent_stores.store()

    async def scenario() -> None:
        session = await AgentSession.create(store, "alice")
        await session.add_items([user("kept")])
        for bad in (
            [user("x"), "not an item"],
            [user("x"), {"role": "robot", "content": "x"}],
            [user("x"), {"role": "user", "content": "x", "score": math.nan}],
            user("x"),
        ):
            with pytest.raises(InvalidInput):
                await session.add_items(bad)  # type: ignore[arg-type]
        assert await session.get_items() == [user("kept")]
        with pytest.raises(InvalidInput):
            AgentSession(store, session_id="not-a-uuid", user_id="alice")
        mallory = AgentSession(store, session_id=session.session_id, user_id="mallory")
        assert await mallory.get_items() == []
        assert await mallory.pop_item() is None
        await mallory.clear_session()
        with pytest.raises(SessionNotFound):
            await mallory.add_items([user("intrusion")])
        assert await session.get_items() == [user("kept")]

    agent_stores.run(scenario())


def test_items_expire_and_go_with_the_session(agent_stores: AgentStores) -> None:
    store = agent_stores.store()

    async def scenario() -> None:
        session = await AgentSession.create(store, "alice")
        await session.add_items([user("q")])
        _, messages_key, _ = store.keyspace.session_keys("alice", session.session_id)
        assert agent_stores.client.pttl(messages_key) > 0
        assert await store.delete_session(session.session_id, "alice")
        assert agent_stores.client.exists(messages_key) == 0
        assert await session.get_items() == []

    agent_stores.run(scenario())
