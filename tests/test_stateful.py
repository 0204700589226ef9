"""A hypothesis state machine drives the store against an in-memory model, on every backend.

After every step it checks, from the raw keys: every indexed session has its record, every record is
indexed, a deleted session leaves no key behind, and no user ever sees another user's session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from redis_sessions import SessionNotFound, SessionStore, StoreConfig, TutorContext

from .backends import Backend
from .conftest import Clock, StoreMaker, delete_prefix

USERS = ["alice", "bob", "a{b}:c", "ü 🎓", "}"]
MAX_MESSAGES = 3


@dataclasses.dataclass
class ModelSession:
    user: str
    goal: str | None
    version: int = 1
    turns: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)
    activity: dt.datetime = dt.datetime.min
    ended: bool = False


class StoreMachine(RuleBasedStateMachine):
    maker: StoreMaker

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.prefix = f"sm{uuid.uuid4().hex[:10]}"
        self.client = self.maker.client
        self.store: SessionStore = self.maker(
            StoreConfig(key_prefix=self.prefix, max_messages=MAX_MESSAGES), clock=self.clock
        )
        self.model: dict[str, ModelSession] = {}
        self.deleted: set[str] = set()

    sessions = Bundle("sessions")

    def tick(self) -> dt.datetime:
        return self.clock.advance(seconds=1)

    @rule(target=sessions, user=st.sampled_from(USERS), goal=st.none() | st.text(max_size=20))
    def create(self, user: str, goal: str | None) -> str:
        now = self.tick()
        sid = str(self.store.create_session(user, initial_context={"session_goal": goal}))
        self.model[sid] = ModelSession(user=user, goal=goal, activity=now)
        return sid

    @rule(sid=sessions, goal=st.text(max_size=20), use_version=st.booleans())
    def update(self, sid: str, goal: str, use_version: bool) -> None:
        now = self.tick()
        session = self.model.get(sid)
        user = session.user if session else "alice"
        ctx = TutorContext(user_id=user, session_id=uuid.UUID(str(sid)), session_goal=goal)
        expected = session.version if (session and use_version) else None
        ok = self.store.update_session_context(sid, user, ctx, expected_version=expected)
        assert ok == (session is not None)
        if session is not None:
            session.goal, session.activity = goal, now
            session.version += 1

    @rule(sid=sessions, other=st.sampled_from(USERS))
    def meddle_as_another_user(self, sid: str, other: str) -> None:
        session = self.model.get(sid)
        if session is not None and session.user == other:
            return
        ctx = TutorContext(user_id=other, session_id=uuid.UUID(str(sid)), session_goal="stolen")
        assert self.store.update_session_context(sid, other, ctx) is False
        assert self.store.end_session(sid, other) is False
        assert self.store.delete_session(sid, other) is False
        with pytest.raises(SessionNotFound):
            self.store.append_message(sid, other, "user", "stolen")

    @rule(sid=sessions, text=st.text(max_size=30), drawn=st.booleans())
    def append(self, sid: str, text: str, drawn: bool) -> None:
        now = self.tick()
        session = self.model.get(sid)
        user = session.user if session else "alice"
        actions = [{"type": "CLEAR_BOARD"}] if drawn else None
        if session is None:
            with pytest.raises(SessionNotFound):
                self.store.append_message(sid, user, "user", text, whiteboard_actions=actions)
            return
        turn = self.store.append_message(sid, user, "user", text, whiteboard_actions=actions)
        session.turns += 1
        session.activity = now
        session.messages = [*session.messages, text][-MAX_MESSAGES:]
        assert turn == session.turns

    @rule(sid=sessions)
    def end(self, sid: str) -> None:
        now = self.tick()
        session = self.model.get(sid)
        user = session.user if session else "alice"
        assert self.store.end_session(sid, user) == (session is not None)
        if session is not None:
            session.ended, session.activity = True, now

    @rule(sid=consumes(sessions))
    def delete(self, sid: str) -> None:
        session = self.model.pop(sid, None)
        user = session.user if session else "alice"
        assert self.store.delete_session(sid, user) == (session is not None)
        self.deleted.add(sid)

    @rule(sid=sessions)
    def read(self, sid: str) -> None:
        session = self.model.get(sid)
        if session is None:
            return
        got = self.store.get_session(sid, session.user)
        assert got is not None
        assert (got.context.session_goal, got.version) == (session.goal, session.version)
        history = self.store.get_session_context(sid, session.user, history=MAX_MESSAGES)
        assert history is not None
        assert [h["content"] for h in history.history] == session.messages

    @rule(user=st.sampled_from(USERS), limit=st.integers(1, 4), offset=st.integers(0, 3))
    def list_sessions(self, user: str, limit: int, offset: int) -> None:
        mine = sorted(
            ((s.activity, sid) for sid, s in self.model.items() if s.user == user), reverse=True
        )
        expected = [sid for _, sid in mine][offset : offset + limit]
        assert [
            str(r.session_id) for r in self.store.list_user_sessions(user, limit, offset)
        ] == expected

    @invariant()
    def keys_are_consistent(self) -> None:
        keys = {k.decode() for k in self.client.scan_iter(match=f"{self.prefix}:*", count=1000)}
        keyspace = self.store._core.keys
        for user in USERS:
            indexed = {m.decode() for m in self.client.zrange(keyspace.index(user), 0, -1)}
            mine = {sid for sid, s in self.model.items() if s.user == user}
            assert indexed == mine  # every record indexed, every index entry has its record
            for sid in mine:
                assert keyspace.session(user, sid) in keys
        for sid in self.deleted:
            assert not [k for k in keys if sid in k], sid
            for user in USERS:  # nor any expiry entry
                for index in keyspace.expiry(user):
                    assert self.client.zscore(index, keyspace.expiry_member(user, sid)) is None
        for sid, session in self.model.items():  # exactly one expiry entry, scored by activity
            live, ended = keyspace.expiry(session.user)
            member = keyspace.expiry_member(session.user, sid)
            scores = (self.client.zscore(live, member), self.client.zscore(ended, member))
            expected_ms = session.activity.timestamp() * 1000
            assert scores == ((None, expected_ms) if session.ended else (expected_ms, None)), sid
        for key in keys:  # nothing but what the model explains
            if ":s:" in key:
                sid = key.split(":s:")[1].split(":")[0]
                assert sid in self.model, key
        for sid, session in self.model.items():
            for other in USERS:
                if other != session.user:
                    assert self.store.get_session(sid, other) is None

    def teardown(self) -> None:
        self.store.close()
        delete_prefix(self.client, self.prefix)


def test_store_matches_model(backend: Backend, real_servers: dict) -> None:
    maker = StoreMaker(backend, real_servers)
    StoreMachine.maker = maker
    try:
        run_state_machine_as_test(
            StoreMachine,
            settings=settings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        maker.close()
