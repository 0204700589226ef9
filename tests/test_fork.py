"""A store made before a fork (an app server that builds its app, then forks its workers) works in
each child as a store of its own: the request ids a child draws never repeat its parent's or a
sibling's (a repeated id is answered with the other write's kept reply: a write silently not made),
a child's writes evict the parent's cache, the child listens with a cache of its own, and a lock
held by another thread at the fork does not hang the child. On real servers, with real forks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.requests import Command
from redis_sessions.samples import realistic_context

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform"),
    # the parent's invalidation listener is a thread: Python 3.12+ warns about forking then
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

USER = "forker"


def in_child(work: Callable[[], Any]) -> Any:
    """``work()`` run in a forked child, its (JSON) result brought back; its error raised here."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            signal.alarm(30)  # a deadlock kills the child rather than the suite
            out = {"ok": work()}
        except BaseException as exc:  # reported to the parent
            out = {"error": repr(exc)}
        try:
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the child died: {status}"
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result["ok"]


def rewrite(store: SessionStore, sid: Any, **changes: Any) -> Callable[[], bool]:
    """Work for a child: read the session's context, change it, write it back."""

    def work() -> bool:
        mine = store.get_session_context(sid, USER)
        assert mine is not None
        for name, value in changes.items():
            setattr(mine, name, value)
        return store.update_session_context(sid, USER, mine)

    return work


def test_children_draw_request_ids_of_their_own(real_backend_url: str, real_prefix: str) -> None:
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    context = store.get_session_context(sid, USER)
    assert context is not None
    context.high_cost_calls = 1
    assert store.update_session_context(sid, USER, context)  # the parent drew ids already

    assert in_child(rewrite(store, sid, high_cost_calls=10)) is True
    assert in_child(rewrite(store, sid, high_cost_calls=11)) is True
    assert store.update_session_context(sid, USER, context)  # and the parent's next one

    with SessionStore.from_url(
        real_backend_url, config=StoreConfig(key_prefix=real_prefix, cache_size=0)
    ) as fresh:
        session = fresh.get_session(sid, USER)
    assert session is not None
    assert session.version == 5  # created, then four updates: every one made
    assert session.context.high_cost_calls == 1
    store.close()


def test_a_childs_write_evicts_the_parents_cache(real_backend_url: str, real_prefix: str) -> None:
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    assert store.get_session_context(sid, USER) is not None
    assert store.get_session_context(sid, USER) is not None
    assert store.stats().cache_hits >= 1  # the parent serves it from its cache

    assert in_child(rewrite(store, sid, session_goal="written by the child")) is True
    deadline = time.monotonic() + 5
    while True:  # the child's announcement names another origin: the parent evicts
        seen = store.get_session_context(sid, USER)
        assert seen is not None
        if seen.session_goal == "written by the child":
            break
        assert time.monotonic() < deadline, "the parent kept serving what the child replaced"
        time.sleep(0.01)
    store.close()


def test_a_child_listens_and_caches_on_its_own(real_backend_url: str, real_prefix: str) -> None:
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    assert store.stats().cache_serving

    def work() -> dict[str, Any]:
        before = store.stats()
        deadline = time.monotonic() + 5
        while not store.stats().cache_serving:  # subscribed anew, before its first operation
            store.get_session_context(sid, USER)
            assert time.monotonic() < deadline, "the child never listened"
            time.sleep(0.01)
        store.get_session_context(sid, USER)
        hits = store.stats().cache_hits
        store.get_session_context(sid, USER)
        return {
            "serving_at_start": before.cache_serving,
            "size_at_start": before.cache_size,
            "hit": store.stats().cache_hits == hits + 1,
        }

    # the parent's cache is not the child's: it starts empty and unused until the child listens
    assert in_child(work) == {"serving_at_start": False, "size_at_start": 0, "hit": True}
    store.close()


def test_a_child_never_sends_on_its_parents_connection(
    real_backend_url: str, real_prefix: str
) -> None:
    # the store keeps its connection between calls (parked, see _transport): a child sending on
    # the parent's socket would read the parent's replies and the parent the child's
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    whose = Command(("CLIENT", "ID"))  # the server's id of the connection a request went on
    parents = store._execute(whose)

    def work() -> list[int]:
        assert store.session_exists(sid, USER)
        return [store._execute(whose), store._execute(whose)]

    theirs = in_child(work)
    assert theirs[0] == theirs[1] != parents  # a connection of its own, kept between its calls
    assert store._execute(whose) == parents  # the parent's went on undisturbed
    assert store.session_exists(sid, USER)
    store.close()


@pytest.mark.parametrize("lock", ["store", "cache"])
def test_a_lock_held_at_the_fork_does_not_hang_the_child(
    real_backend_url: str, real_prefix: str, lock: str
) -> None:
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    held = store._core._lock if lock == "store" else store._core.cache._lock
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:  # another thread of the app, inside the store at the fork
        with held:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(5)
    try:
        assert in_child(rewrite(store, sid, session_goal="no deadlock")) is True
    finally:
        release.set()
        thread.join()
    store.close()


def test_an_async_store_made_before_the_fork(real_backend_url: str, real_prefix: str) -> None:
    config = StoreConfig(key_prefix=real_prefix)
    with SessionStore.from_url(real_backend_url, config=config) as setup:
        sid = setup.create_session(USER, initial_context=realistic_context(USER))
    store = AsyncSessionStore.from_url(real_backend_url, config=config)

    async def update(calls: int) -> bool:
        mine = await store.get_session_context(sid, USER)
        assert mine is not None
        mine.high_cost_calls = calls
        done = await store.update_session_context(sid, USER, mine)
        await store.aclose()
        return done

    assert in_child(lambda: asyncio.run(update(10))) is True
    assert in_child(lambda: asyncio.run(update(11))) is True
    with SessionStore.from_url(real_backend_url, config=config) as fresh:
        session = fresh.get_session(sid, USER)
    assert session is not None
    assert (session.version, session.context.high_cost_calls) == (3, 11)
