"""redis_sessions.integrations.adk: the store as a Google ADK session service, checked against
what ADK's own session-service contract checks, and through ADK's Runner with a scripted model."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from typing import Any

import pydantic
import pytest

pytest.importorskip("google.adk", reason="the adk extra is not installed")

from google.adk.agents import LlmAgent
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
)
from google.genai import types

from redis_sessions import InvalidInput
from redis_sessions.integrations.adk import RedisSessionService, store_session_id

from .agent_stores import AgentStores

APP = "tutor"


def text_event(
    author: str, text: str, *, delta: dict[str, Any] | None = None, ts: float | None = None
) -> Event:
    extra: dict[str, Any] = {} if ts is None else {"timestamp": ts}
    return Event(
        invocation_id="inv",
        author=author,
        content=types.Content(
            role="user" if author == "user" else "model", parts=[types.Part(text=text)]
        ),
        actions=EventActions(state_delta=delta or {}),
        **extra,
    )


def texts(events: list[Event]) -> list[str]:
    return [e.content.parts[0].text for e in events if e.content and e.content.parts]


class ScriptedLlm(BaseLlm):
    """A model that answers from a script and records what it was asked."""

    replies: list[str]
    requests: list[LlmRequest] = pydantic.Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        text = self.replies.pop(0)
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def test_it_is_a_session_service(agent_stores: AgentStores) -> None:
    assert isinstance(RedisSessionService(agent_stores.store()), BaseSessionService)
    with pytest.raises(InvalidInput):
        RedisSessionService("redis://localhost")  # type: ignore[arg-type]


def test_create_get_round_trip_with_state_prefixes(agent_stores: AgentStores) -> None:
    service = RedisSessionService(agent_stores.store())

    async def scenario() -> None:
        created = await service.create_session(
            app_name=APP,
            user_id="alice",
            session_id="chat 1/é",  # any string: kept and given back as given
            state={"topic": "matrices", "app:motd": "hi", "user:level": 3, "temp:scratch": 1},
        )
        assert created.id == "chat 1/é" and created.user_id == "alice" and created.app_name == APP
        assert created.state == {"topic": "matrices", "app:motd": "hi", "user:level": 3}
        assert created.events == []
        session = await service.get_session(app_name=APP, user_id="alice", session_id="chat 1/é")
        assert session is not None and session.state == created.state
        # the user's and the app's state are shared by their other sessions
        other = await service.create_session(app_name=APP, user_id="alice")
        assert other.state == {"app:motd": "hi", "user:level": 3}
        bob = await service.create_session(app_name=APP, user_id="bob", session_id="chat 1/é")
        assert bob.state == {"app:motd": "hi"}
        assert await service.get_user_state(app_name=APP, user_id="alice") == {"level": 3}
        assert await service.get_user_state(app_name="other", user_id="alice") == {}

    agent_stores.run(scenario())


def test_events_and_state_deltas_round_trip(agent_stores: AgentStores) -> None:
    service = RedisSessionService(agent_stores.store())

    async def scenario() -> None:
        session = await service.create_session(app_name=APP, user_id="alice", session_id="s")
        await service.append_event(session, text_event("user", "hello", delta={"temp:x": 1}))
        assert session.state == {"temp:x": 1}  # temp: state lives in the invocation only
        event = text_event(
            "tutor", "hi", delta={"mood": "good", "user:streak": 2, "app:count": 7, "temp:y": 0}
        )
        await service.append_event(session, event)
        assert event.actions.state_delta == {"mood": "good", "user:streak": 2, "app:count": 7}
        stored = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        assert stored is not None
        assert texts(stored.events) == ["hello", "hi"]
        assert [e.id for e in stored.events] == [e.id for e in session.events]
        assert stored.events[1] == session.events[1]
        assert stored.state == {"mood": "good", "user:streak": 2, "app:count": 7}
        assert stored.last_update_time >= session.events[0].timestamp - 5
        assert (await service.append_event(stored, Event(author="x", partial=True))).partial

    agent_stores.run(scenario())


def test_recent_count_and_timestamp_filters(agent_stores: AgentStores) -> None:
    service = RedisSessionService(agent_stores.store())

    async def scenario() -> None:
        session = await service.create_session(app_name=APP, user_id="alice", session_id="s")
        for i in range(1, 6):
            await service.append_event(session, text_event("user", f"e{i}", ts=1000.0 + i))

        async def get(**config: Any) -> list[str]:
            got = await service.get_session(
                app_name=APP, user_id="alice", session_id="s", config=GetSessionConfig(**config)
            )
            assert got is not None
            return texts(got.events)

        assert await get() == ["e1", "e2", "e3", "e4", "e5"]
        assert await get(num_recent_events=2) == ["e4", "e5"]
        assert await get(num_recent_events=0) == []
        assert await get(after_timestamp=1003.0) == ["e3", "e4", "e5"]
        assert await get(after_timestamp=1003.5) == ["e4", "e5"]
        assert await get(num_recent_events=4, after_timestamp=1004.0) == ["e4", "e5"]
        assert await get(after_timestamp=2000.0) == []

    agent_stores.run(scenario())


def test_listing_per_user_and_deletion(agent_stores: AgentStores) -> None:
    store = agent_stores.store()
    service = RedisSessionService(store)

    async def scenario() -> None:
        for sid in ("a", "b", "c"):
            await service.create_session(
                app_name=APP, user_id="alice", session_id=sid, state={"n": sid}
            )
        await service.create_session(app_name=APP, user_id="bob", session_id="a")
        await service.create_session(app_name="other", user_id="alice", session_id="z")
        a = await service.get_session(app_name=APP, user_id="alice", session_id="a")
        assert a is not None
        await service.append_event(a, text_event("user", "latest"))  # "a" is now the newest
        listed = (await service.list_sessions(app_name=APP, user_id="alice")).sessions
        assert [s.id for s in listed] == ["b", "c", "a"]  # least recently updated first
        assert all(s.events == [] for s in listed)
        assert [s.state["n"] for s in listed] == ["b", "c", "a"]
        assert [
            s.id for s in (await service.list_sessions(app_name=APP, user_id="bob")).sessions
        ] == ["a"]
        everyone = (await service.list_sessions(app_name=APP)).sessions  # a SCAN of the store
        assert sorted((s.user_id, s.id) for s in everyone) == [
            ("alice", "a"),
            ("alice", "b"),
            ("alice", "c"),
            ("bob", "a"),
        ]
        times = [s.last_update_time for s in everyone]
        assert times == sorted(times)
        assert (everyone[-1].user_id, everyone[-1].id) == ("alice", "a")
        assert (await service.list_sessions(app_name="nobody")).sessions == []
        await service.delete_session(app_name=APP, user_id="alice", session_id="b")
        await service.delete_session(app_name=APP, user_id="alice", session_id="never")
        assert await service.get_session(app_name=APP, user_id="alice", session_id="b") is None
        listed = (await service.list_sessions(app_name=APP, user_id="alice")).sessions
        assert [s.id for s in listed] == ["c", "a"]
        # a session the store deletes itself (a sweep, delete_session) leaves the listing too
        await store.delete_session(store_session_id(APP, "c"), "alice")
        listed = (await service.list_sessions(app_name=APP, user_id="alice")).sessions
        assert [s.id for s in listed] == ["a"]
        report = await store.check()  # the ADK keys are the store's own kinds, all consistent
        assert report.problems == {} and report.unknown_keys == 0
        assert report.scanned_keys > 10
        # after a delete the id is free again
        again = await service.create_session(app_name=APP, user_id="alice", session_id="b")
        assert again.state == {}

    agent_stores.run(scenario())


def test_a_taken_id_a_stale_append_and_a_gone_session(agent_stores: AgentStores) -> None:
    service = RedisSessionService(agent_stores.store())

    async def scenario() -> None:
        await service.create_session(app_name=APP, user_id="alice", session_id="s", state={"k": 1})
        with pytest.raises(AlreadyExistsError):
            await service.create_session(
                app_name=APP, user_id="alice", session_id="s", state={"k": 2}
            )
        first = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        second = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        assert first is not None and second is not None and first.state == {"k": 1}
        await service.append_event(first, text_event("user", "one", delta={"k": 3}))
        with pytest.raises(StaleSessionError):
            await service.append_event(second, text_event("user", "two", delta={"k": 4}))
        assert second.events == []  # the session object is left as it was
        stored = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        assert stored is not None and texts(stored.events) == ["one"] and stored.state == {"k": 3}
        await service.append_event(stored, text_event("user", "two"))  # a fresh read goes on
        # the app's own context and state writes do not make an ADK session object stale
        store, sid = service.store, store_session_id(APP, "s")
        ctx = await store.get_session_context(sid, "alice")
        assert ctx is not None
        ctx.session_goal = "Matrices"
        assert await store.update_session_context(sid, "alice", ctx)
        assert await store.update_session_state(sid, "alice", {"k": 5})
        await service.append_event(stored, text_event("user", "three"))
        again = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        assert again is not None and texts(again.events) == ["one", "two", "three"]
        assert again.state == {"k": 5}
        await service.delete_session(app_name=APP, user_id="alice", session_id="s")
        with pytest.raises(SessionNotFoundError):
            await service.append_event(stored, text_event("user", "four"))

    agent_stores.run(scenario())


def test_bad_input_and_foreign_sessions_write_nothing(agent_stores: AgentStores) -> None:
    store = agent_stores.store()
    service = RedisSessionService(store)

    async def scenario() -> None:
        session = await service.create_session(app_name=APP, user_id="alice", session_id="s")
        with pytest.raises(InvalidInput):
            await service.create_session(
                app_name=APP, user_id="alice", session_id="t", state={"x": math.nan}
            )
        assert await service.get_session(app_name=APP, user_id="alice", session_id="t") is None
        with pytest.raises(InvalidInput):
            await service.create_session(app_name="", user_id="alice")
        with pytest.raises(InvalidInput):
            await service.create_session(app_name=APP, user_id="")
        with pytest.raises(InvalidInput):
            await service.append_event(session, text_event("user", "x", delta={"k": math.inf}))
        with pytest.raises(InvalidInput):
            await service.append_event(session, "not an event")  # type: ignore[arg-type]
        assert await service.get_session(app_name=APP, user_id="mallory", session_id="s") is None
        forged = session.model_copy(update={"user_id": "mallory"})
        with pytest.raises(SessionNotFoundError):
            await service.append_event(forged, text_event("user", "intrusion"))
        stored = await service.get_session(app_name=APP, user_id="alice", session_id="s")
        assert stored is not None and stored.events == [] and stored.state == {}
        assert (await service.list_sessions(app_name=APP, user_id="mallory")).sessions == []

    agent_stores.run(scenario())


def test_one_session_serves_the_tutor_and_an_adk_runner(agent_stores: AgentStores) -> None:
    store = agent_stores.store()
    service = RedisSessionService(store)
    model = ScriptedLlm(model="scripted", replies=["Row times column.", "Yes: 3 by 2."])
    agent = LlmAgent(name="tutor", model=model, instruction="Teach matrices.")
    runner = Runner(agent=agent, app_name=APP, session_service=service)

    async def ask(text: str) -> list[Event]:
        return [
            event
            async for event in runner.run_async(
                user_id="alice",
                session_id="lesson",
                new_message=types.Content(role="user", parts=[types.Part(text=text)]),
            )
        ]

    async def scenario() -> None:
        await service.create_session(app_name=APP, user_id="alice", session_id="lesson")
        sid = store_session_id(APP, "lesson")
        ctx = await store.get_session_context(sid, "alice")
        assert ctx is not None
        ctx.session_goal = "Matrices"
        assert await store.update_session_context(sid, "alice", ctx)
        first = await ask("How do I multiply matrices?")
        await store.append_message(sid, "alice", "system", "the tutor's own note")
        second = await ask("Is a 3x2 times 2x2 a 3x2?")
        assert texts(first)[-1] == "Row times column." and texts(second)[-1] == "Yes: 3 by 2."
        stored = await service.get_session(app_name=APP, user_id="alice", session_id="lesson")
        assert stored is not None
        assert texts(stored.events) == [
            "How do I multiply matrices?",
            "Row times column.",
            "the tutor's own note",
            "Is a 3x2 times 2x2 a 3x2?",
            "Yes: 3 by 2.",
        ]
        messages = await store.get_messages(sid, "alice")
        assert [m.role for m in messages] == ["user", "assistant", "system", "user", "assistant"]
        # the second model call was given the history read back from Redis
        contents = model.requests[-1].contents
        assert [p.text for c in contents for p in (c.parts or []) if p.text][:2] == [
            "How do I multiply matrices?",
            "Row times column.",
        ]
        assert (await store.get_session_context(sid, "alice")).session_goal == "Matrices"

    agent_stores.run(scenario())
