"""Network faults injected by a proxy (tests/faultproxy.py) between the store and a real Redis.

- A write whose reply is lost is resent by redis-py with the same request id and applied once:
  every write operation, on the sync and the async store.
- A caller that retries itself (after StoreUnavailable) with its own ``request_id`` gets the first
  attempt's result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import (
    AsyncSessionStore,
    Folder,
    InvalidInput,
    SessionStore,
    StoreConfig,
    StoreUnavailable,
    TutorContext,
)
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.scripts import ScriptName, script_sha, script_source

from .backends import Backend, backend_params
from .conftest import delete_prefix, server_for
from .facade import SyncFacade
from .faultproxy import FaultProxy, fault_proxy

USER = "alice"


class Faulty:
    """Stores of one flavor that reach a real Redis through a fault proxy, and a direct client."""

    def __init__(self, flavor: str, proxy: FaultProxy, direct: redis.Redis) -> None:
        self.flavor, self.proxy, self.direct = flavor, proxy, direct
        self.prefix = f"f{uuid.uuid4().hex[:8]}"
        self.stores: list[Any] = []
        self.loop = asyncio.new_event_loop() if flavor == "async" else None

    def store(self, **client_options: Any) -> SessionStore:
        """A store on a client of its own through the proxy (redis-py retries: from_url's 3)."""
        config = StoreConfig(key_prefix=self.prefix)
        made: Any
        if self.loop is None:
            made = SessionStore.from_url(self.proxy.url, config=config, **client_options)
        else:
            store = AsyncSessionStore.from_url(self.proxy.url, config=config, **client_options)
            made = SyncFacade(store, self.loop, self.direct)
        self.stores.append(made)
        return made  # type: ignore[no-any-return]

    def drop_reply(self, script: ScriptName) -> None:
        """Redis runs the next call of ``script``; its reply never reaches the store."""
        self.proxy.drop_reply(script_sha(script).encode())

    def key(self, *parts: object) -> str:
        return f"{self.prefix}:{{u:{USER}}}:" + ":".join(str(part) for part in parts)

    def close(self) -> None:
        for store in self.stores:
            store.close()
        if self.loop is not None:
            self.loop.close()
        delete_prefix(self.direct, self.prefix)


@pytest.fixture(params=backend_params(real_only=True))
def faulty(
    request: pytest.FixtureRequest, real_servers: dict[str, EmbeddedRedis]
) -> Iterator[Faulty]:
    backend: Backend = request.param
    server = server_for(backend, real_servers)
    direct = redis.Redis.from_url(server.url)
    for name in ScriptName:  # loaded beforehand: the dropped reply is the script's, not NOSCRIPT
        direct.script_load(script_source(name))
    with fault_proxy(server.url) as proxy:
        made = Faulty(backend.flavor, proxy, direct)
        yield made
        made.close()
    direct.close()


def test_append_whose_reply_is_lost_stores_the_message_once(faulty: Faulty) -> None:
    store = faulty.store()
    sid = store.create_session(USER)
    faulty.drop_reply(ScriptName.APPEND)
    assert store.append_message(sid, USER, "user", "hi", whiteboard_actions=[{"a": 1}]) == 1
    assert faulty.proxy.dropped == 1  # the reply was lost, redis-py resent the request
    assert faulty.direct.hkeys(faulty.key("s", sid, "msgs")) == [b"1"]
    assert faulty.direct.hget(faulty.key("s", sid), "turns") == b"1"
    assert store.append_message(sid, USER, "assistant", "hello") == 2  # and the next one is 2


def test_create_whose_reply_is_lost_makes_one_session(faulty: Faulty) -> None:
    store = faulty.store()
    faulty.drop_reply(ScriptName.CREATE)
    sid = store.create_session(USER, initial_context={"session_goal": "one"})
    assert faulty.proxy.dropped == 1
    assert faulty.direct.zrange(faulty.key("idx"), 0, -1) == [str(sid).encode()]
    records = [
        k
        for k in faulty.direct.scan_iter(match=faulty.key("s", "*"))
        if not k.endswith((b":msgs", b":wb"))
    ]
    assert records == [faulty.key("s", sid).encode()]  # no orphan under another id
    session = store.get_session(sid, USER)
    assert session is not None and session.context.session_goal == "one"


def test_versioned_update_whose_reply_is_lost_does_not_conflict_with_itself(
    faulty: Faulty,
) -> None:
    store = faulty.store()
    sid = store.create_session(USER)
    ctx = TutorContext(user_id=USER, session_id=uuid.UUID(str(sid)), session_goal="two")
    faulty.drop_reply(ScriptName.UPDATE)
    assert store.update_session_context(sid, USER, ctx, expected_version=1) is True
    assert faulty.proxy.dropped == 1
    assert faulty.direct.hget(faulty.key("s", sid), "version") == b"2"


def test_modify_whose_write_reply_is_lost_applies_its_function_once(faulty: Faulty) -> None:
    store = faulty.store()
    sid = store.create_session(USER)
    calls = []

    def bump(ctx: TutorContext) -> None:
        calls.append(ctx.high_cost_calls)
        ctx.high_cost_calls += 1

    faulty.drop_reply(ScriptName.UPDATE)
    assert store.modify(sid, USER, bump).high_cost_calls == 1
    assert faulty.proxy.dropped == 1 and calls == [0]
    assert faulty.direct.hget(faulty.key("s", sid), "c:high_cost_calls") == b"1"
    assert faulty.direct.hget(faulty.key("s", sid), "version") == b"2"


def test_delete_whose_reply_is_lost_reports_true(faulty: Faulty) -> None:
    store = faulty.store()
    sid = store.create_session(USER)
    faulty.drop_reply(ScriptName.DELETE)
    assert store.delete_session(sid, USER) is True
    assert faulty.proxy.dropped == 1
    assert not faulty.direct.exists(faulty.key("s", sid))
    assert store.delete_session(sid, USER) is False  # a new request: nothing left to delete


def test_end_whose_reply_is_lost_ends_once(faulty: Faulty) -> None:
    store = faulty.store()
    sid = store.create_session(USER)
    faulty.drop_reply(ScriptName.END)
    assert store.end_session(sid, USER) is True
    assert faulty.proxy.dropped == 1
    assert faulty.direct.hexists(faulty.key("s", sid), "ended_at")


def test_folder_writes_whose_replies_are_lost(faulty: Faulty) -> None:
    store = faulty.store()
    fid = str(uuid.uuid4())
    faulty.drop_reply(ScriptName.PUT_FOLDER)  # create-or-replace: applying it twice is the same
    stored = store.put_folder(USER, Folder(id=fid, name="Linear algebra"))
    assert faulty.proxy.dropped == 1 and stored.name == "Linear algebra"
    faulty.drop_reply(ScriptName.DELETE_FOLDER)
    assert store.delete_folder(fid, USER) is True
    assert faulty.proxy.dropped == 2
    assert not faulty.direct.exists(faulty.key("f", fid))


def test_a_caller_retrying_with_its_request_id_gets_the_first_result(faulty: Faulty) -> None:
    """With no redis-py retries the lost reply surfaces as StoreUnavailable; the caller cannot
    know whether the write happened, and retries with the same request_id: applied once."""
    store = faulty.store(retry=Retry(NoBackoff(), 0))
    sid = store.create_session(USER)
    faulty.drop_reply(ScriptName.APPEND)
    with pytest.raises(StoreUnavailable):
        store.append_message(sid, USER, "user", "hi", request_id="turn-7")
    assert faulty.direct.hget(faulty.key("s", sid), "turns") == b"1"  # it was applied
    assert store.append_message(sid, USER, "user", "hi", request_id="turn-7") == 1
    assert faulty.direct.hkeys(faulty.key("s", sid, "msgs")) == [b"1"]
    ttl = faulty.direct.pttl(faulty.key("req", "a.turn-7"))
    assert 0 < ttl <= 60_000  # kept for the replay window, then gone by itself


# ---------------------------------------------------------------- request ids without faults


def test_a_request_id_replays_its_own_write(
    store_factory: Callable[..., SessionStore],
) -> None:
    store = store_factory()
    sid = store.create_session(USER, request_id="create-1")
    assert store.create_session(USER, request_id="create-1") == sid  # the same session again
    assert [s.session_id for s in store.list_user_sessions(USER)] == [sid]
    assert store.append_message(sid, USER, "user", "a", request_id="m1") == 1
    assert store.append_message(sid, USER, "user", "a", request_id="m1") == 1
    assert len(store.get_messages(sid, USER)) == 1
    ctx = TutorContext(user_id=USER, session_id=uuid.UUID(str(sid)), session_goal="g")
    assert store.update_session_context(sid, USER, ctx, expected_version=1, request_id="u1")
    assert store.update_session_context(sid, USER, ctx, expected_version=1, request_id="u1")
    session = store.get_session(sid, USER)
    assert session is not None and session.version == 2
    assert store.end_session(sid, USER, request_id="e1") is True
    assert store.end_session(sid, USER, request_id="e1") is True
    assert store.delete_session(sid, USER, request_id="d1") is True
    assert store.delete_session(sid, USER, request_id="d1") is True  # replayed: it did delete
    assert store.delete_session(sid, USER, request_id="d2") is False  # a new request


def test_a_request_id_used_for_another_write_is_refused(
    store_factory: Callable[..., SessionStore],
) -> None:
    store = store_factory()
    first, second = store.create_session(USER), store.create_session(USER)
    assert store.append_message(first, USER, "user", "a", request_id="same") == 1
    with pytest.raises(InvalidInput, match="request_id") as info:
        store.append_message(second, USER, "user", "a", request_id="same")
    # it says which write holds the id, and never the key (which names the user)
    assert str(info.value).endswith(f"(append {first})")
    assert USER not in str(info.value) and store.keyspace.prefix not in str(info.value)
    with pytest.raises(InvalidInput, match="request_id"):
        store.end_session(first, USER, request_id="same")
    assert store.get_messages(second, USER) == []  # nothing written
    for bad in ("", "has space", "x" * 65, "a:b", 7):
        with pytest.raises(InvalidInput, match="request_id"):
            store.append_message(first, USER, "user", "a", request_id=bad)  # type: ignore[arg-type]


def test_replay_keys_expire_with_the_window(
    store_factory: Callable[..., SessionStore],
) -> None:
    store = store_factory(replay_window=dt.timedelta(milliseconds=1500))
    sid = store.create_session(USER)
    store.append_message(sid, USER, "user", "a")
    keys = list(store.client.scan_iter(match=f"{store.config.key_prefix}:{{u:{USER}}}:req:*"))
    assert len(keys) == 2  # the create's and the append's
    for key in keys:
        assert 0 < store.client.pttl(key) <= 1500


def test_a_timed_out_write_that_lands_late_is_applied_once(faulty: Faulty) -> None:
    """The other way a reply is lost: the client times out and resends while the first request is
    still on its way. Redis runs both; the second finds the first's reply."""
    import threading

    store = faulty.store(socket_timeout=0.15)
    sid = store.create_session(USER)
    faulty.proxy.delay(0.1)  # each way: a reply takes 0.2 s, past the client's 0.15 s timeout
    heal = threading.Timer(0.16, faulty.proxy.delay, (0,))  # the resent request goes at once
    heal.start()
    try:
        assert store.append_message(sid, USER, "user", "slow") == 1
    finally:
        heal.join()
    assert faulty.direct.hkeys(faulty.key("s", sid, "msgs")) == [b"1"]
    assert faulty.direct.hget(faulty.key("s", sid), "turns") == b"1"
    # the premise, with no resend: the caller is told of a timeout, yet the write landed
    once = faulty.store(socket_timeout=0.15, retry=Retry(NoBackoff(), 0))
    assert once.session_exists(sid, USER)  # connected (and listening) before the delay
    faulty.proxy.delay(0.1)
    try:
        with pytest.raises(StoreUnavailable):
            once.append_message(sid, USER, "user", "slow again")
    finally:
        faulty.proxy.delay(0)
    deadline = time.monotonic() + 2
    while faulty.direct.hget(faulty.key("s", sid), "turns") != b"2":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_connections_cut_under_load_lose_and_double_nothing(faulty: Faulty) -> None:
    """A caller appends 150 messages, each with its own request id, retrying on StoreUnavailable,
    while every connection is cut every 15 ms: exactly 150 messages, turns 1 to 150 in order."""
    import threading

    store = faulty.store(retry=Retry(NoBackoff(), 1))
    sid = store.create_session(USER)
    stop = threading.Event()

    def cutter() -> None:
        while not stop.wait(0.015):
            faulty.proxy.cut_all()

    thread = threading.Thread(target=cutter)
    thread.start()
    turns, failures = [], 0
    try:
        for n in range(150):
            while True:
                try:
                    turns.append(
                        store.append_message(sid, USER, "user", f"m{n}", request_id=f"m{n}")
                    )
                    break
                except StoreUnavailable:
                    failures += 1
    finally:
        stop.set()
        thread.join()
    assert turns == list(range(1, 151))
    stored = faulty.direct.hgetall(faulty.key("s", sid, "msgs"))
    assert sorted(int(k) for k in stored) == list(range(1, 151))
    assert faulty.direct.hget(faulty.key("s", sid), "turns") == b"150"
    print(f"\n{failures} StoreUnavailable retried by the caller")
