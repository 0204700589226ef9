"""What tools see of the two stores: real methods at class level, true signatures and docstrings,
type hints that resolve, and autospec mocks that are awaitable on the async store and enforce
signatures on both (the API is written once and the sync flavour generated: scripts/unasync.py)."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import subprocess
import sys
import typing
import uuid
from pathlib import Path
from unittest import mock

import pytest

from redis_sessions import AsyncSessionStore, SessionStore

ROOT = Path(__file__).resolve().parent.parent
IO_FREE = {"validate_session_context", "stats"}


def operations(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in ("close", "aclose")
    )


def test_both_stores_have_the_same_operations() -> None:
    assert operations(SessionStore) == operations(AsyncSessionStore)
    assert {"get_session", "get_whiteboard_state", "modify"} <= set(operations(SessionStore))


@pytest.mark.parametrize("name", operations(AsyncSessionStore))
def test_async_methods_are_coroutine_functions_at_class_level(name: str) -> None:
    method = getattr(AsyncSessionStore, name)
    assert inspect.iscoroutinefunction(method) is (name not in IO_FREE)
    assert not inspect.iscoroutinefunction(getattr(SessionStore, name))


@pytest.mark.parametrize("name", operations(SessionStore))
def test_every_operation_documents_its_round_trips(name: str) -> None:
    for cls in (SessionStore, AsyncSessionStore):
        doc = inspect.getdoc(getattr(cls, name)) or ""
        assert "round trip" in doc.lower(), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("cls", [SessionStore, AsyncSessionStore])
def test_type_hints_resolve(cls: type) -> None:
    for name in operations(cls):
        hints = typing.get_type_hints(getattr(cls, name))
        assert "return" in hints, name
    assert typing.get_type_hints(cls.create_session)["return"] is uuid.UUID


def test_help_shows_async_and_the_signature() -> None:
    text = pydoc.render_doc(AsyncSessionStore, renderer=pydoc.plaintext)
    assert "async get_session(self, session_id: 'str | uuid.UUID', user_id: 'str')" in text
    assert "One round trip" in text
    sync_text = pydoc.render_doc(SessionStore, renderer=pydoc.plaintext)
    assert "async get_session" not in sync_text and "get_session(self, session_id" in sync_text


def test_autospec_mocks_are_awaitable_and_enforce_signatures() -> None:
    store = mock.create_autospec(AsyncSessionStore, instance=True)
    store.get_session.return_value = None
    assert asyncio.run(store.get_session(uuid.uuid4(), "alice")) is None  # awaitable
    with pytest.raises(TypeError):
        store.get_session(uuid.uuid4())  # user_id missing: the real signature is enforced
    with pytest.raises(TypeError):
        store.append_message(uuid.uuid4(), "alice", "user", "hi", colour="red")
    assert not inspect.isawaitable(store.stats())  # no I/O: a plain method
    sync = mock.create_autospec(SessionStore, instance=True)
    sync.get_messages.return_value = []
    assert sync.get_messages(uuid.uuid4(), "alice", 10, before_turn_no=5) == []
    with pytest.raises(TypeError):
        sync.get_messages(uuid.uuid4(), "alice", turns=3)


def test_the_sync_api_is_generated_from_the_async_one() -> None:
    """scripts/unasync.py --check: _sync_api.py is exactly what the generator writes today."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_an_editor_sees_the_true_signature_and_docstring() -> None:
    """jedi (the completion engine of many editors) reads the methods as they are written."""
    jedi = pytest.importorskip("jedi", reason="jedi is in the dev extra")
    source = "from redis_sessions import AsyncSessionStore\nstore: AsyncSessionStore\n"
    call = "store.get_messages("
    script = jedi.Script(source + call, path=str(ROOT / "editor_check.py"))
    (signature,) = script.get_signatures(3, len(call))
    assert signature.to_string() == (
        "get_messages(session_id: str | uuid.UUID, user_id: str, limit: int=50, "
        "before_turn_no: int | None=None) -> list[Message]"
    )
    (method,) = script.infer(3, len("store.get_messages"))
    assert "One round trip" in method.docstring(raw=True)


def test_ids_are_one_type_everywhere(store: SessionStore) -> None:
    sid = store.create_session("alice")
    ctx = store.get_session_context(sid, "alice")
    session = store.get_session(str(sid), "alice")  # the canonical text works as well
    (row,) = store.list_user_sessions("alice")
    assert ctx is not None and session is not None
    assert sid == ctx.session_id == session.session_id == row.session_id
    assert all(isinstance(i, uuid.UUID) for i in (sid, session.session_id, row.session_id))
