"""Each operation costs the round trips its docstring says, and every script's keys share one slot."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.crc import key_slot

from redis_sessions import Folder, SessionStore
from redis_sessions.requests import Command, Request, RunScript
from redis_sessions.samples import realistic_context


class Recorder:
    """Counts the requests the driver performs: each one is one round trip."""

    def __init__(self, store: SessionStore) -> None:
        inner = getattr(store, "wrapped", store)  # the AsyncSessionStore inside a SyncFacade
        self.requests: list[Request] = []
        self._perform = inner._perform
        inner._perform = self

    async def __call__(self, request: Request) -> Any:
        self.requests.append(request)
        return await self._perform(request)

    def take(self) -> list[Request]:
        out, self.requests = self.requests, []
        return out


USER = "a{b}:c ü"
OPS: list[tuple[str, int, Callable[[SessionStore, str, str], Any]]] = [
    (
        "create",
        1,
        lambda s, sid, fid: s.create_session(USER, initial_context=realistic_context(USER)),
    ),
    ("create_with_folder", 1, lambda s, sid, fid: s.create_session(USER, folder_id=fid)),
    ("get_miss", 1, lambda s, sid, fid: (s._core.cache.clear(), s.get_session(sid, USER))),
    ("get_hit", 0, lambda s, sid, fid: s.get_session(sid, USER)),
    ("context_hit", 0, lambda s, sid, fid: s.get_session_context(sid, USER)),
    ("context_history", 1, lambda s, sid, fid: s.get_session_context(sid, USER, history=50)),
    (
        "update",
        1,
        lambda s, sid, fid: s.update_session_context(sid, USER, realistic_context(USER, sid)),
    ),
    ("exists_miss", 1, lambda s, sid, fid: (s._core.cache.clear(), s.session_exists(sid, USER))),
    (
        "append",
        1,
        lambda s, sid, fid: s.append_message(
            sid, USER, "assistant", "x", whiteboard_actions=[{"type": "CLEAR_BOARD"}]
        ),
    ),
    ("messages", 1, lambda s, sid, fid: s.get_messages(sid, USER)),
    ("list", 1, lambda s, sid, fid: s.list_user_sessions(USER)),
    ("end", 1, lambda s, sid, fid: s.end_session(sid, USER)),
    ("put_folder", 1, lambda s, sid, fid: s.put_folder(USER, Folder(id=fid, name="f2"))),
    ("get_folder", 1, lambda s, sid, fid: s.get_folder_data(fid, USER)),
    ("delete", 1, lambda s, sid, fid: s.delete_session(sid, USER)),
    ("validate", 0, lambda s, sid, fid: s.validate_session_context(b'{"user_id":"u"}')),
]


@pytest.mark.parametrize("name, trips, op", OPS, ids=[o[0] for o in OPS])
def test_round_trips(store: SessionStore, name: str, trips: int, op: Callable[..., Any]) -> None:
    fid = str(uuid.uuid4())
    store.put_folder(USER, Folder(id=fid, name="f", knowledge_base="KEY CONCEPTS:\nA\n"))
    sid = store.create_session(USER)
    store.append_message(sid, USER, "user", "hello")
    assert store.get_session(sid, USER) is not None
    recorder = Recorder(store)
    op(store, sid, fid)
    requests = recorder.take()
    assert len(requests) == trips, requests
    for request in requests:
        keys = (
            request.keys
            if isinstance(request, RunScript)
            else [a for a in request.args[1:2] if isinstance(a, str)]
        )
        assert len({key_slot(k.encode()) for k in keys}) <= 1, request
        if isinstance(request, RunScript):
            own = (store._core.keys.user_tag(USER), *store._core.keys.expiry(USER))
            assert all(k.startswith(own) for k in request.keys)
        else:
            assert isinstance(request, Command)
