"""`check` finds every kind of inconsistency (made here with raw commands), `repair` fixes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid

from redis_sessions import SessionStore, StoreConfig, TutorContext
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.samples import chat_turn

from .conftest import Clock, data_keys


def make(store: SessionStore, user: str) -> str:
    sid = store.create_session(user)
    role, text, actions = chat_turn(2)
    store.append_message(sid, user, role, text, whiteboard_actions=actions)
    return sid


def test_a_consistent_store_checks_clean(store: SessionStore) -> None:
    for user in ("alice", "bob", "a{b}:c"):
        make(store, user)
    report = store.check(count=2)  # small SCAN batches: many rounds
    assert report.problems == {} and report.unknown_keys == 0
    assert report.scanned_keys >= 3 * 4


def test_every_kind_of_problem_is_found_and_repaired(store: SessionStore) -> None:
    keys = store.keyspace
    unindexed, no_expiry, gone, healthy = (make(store, "alice") for _ in range(4))
    store.client.zrem(keys.index("alice"), unindexed)
    live, _ = keys.expiry("alice")
    store.client.zrem(live, keys.expiry_member("alice", no_expiry))
    store.client.delete(keys.session("alice", gone))  # leaves index, expiry, msgs and wb behind
    store.client.set(f"{store.config.key_prefix}:stray", b"?")
    report = store.check()
    assert report.problems == {
        "unindexed": 1,
        "no-expiry": 1,
        "dangling-index": 1,
        "orphan-parts": 2,
        "dangling-expiry": 1,
    }
    assert report.unknown_keys == 1 and report.unrepaired == 6 and report.repaired == {}
    fixed = store.check(repair=True)
    assert sum(fixed.repaired.values()) == sum(fixed.problems.values()) and fixed.unrepaired == 0
    again = store.check()
    assert (
        again.problems == {} and again.unknown_keys == 1
    )  # unknown keys are reported, not touched
    assert {r.session_id for r in store.list_user_sessions("alice")} == {
        unindexed,
        no_expiry,
        healthy,
    }
    assert not [
        k
        for k in store.client.scan_iter(match=f"{store.config.key_prefix}:*")
        if gone.encode() in k
    ]
    assert store.client.zscore(live, keys.expiry_member("alice", no_expiry)) is not None


def test_a_problem_fixed_by_a_racing_write_is_not_reported(store: SessionStore) -> None:
    sid = make(store, "alice")
    store.client.delete(store.keyspace.session("alice", sid))
    op = store._core.check()
    request = next(op)
    reply = store._execute(request)
    request = op.send(reply)
    # before the check confirms anything, a delete cleans the remains up
    store.delete_session(sid, "alice")
    try:
        while True:
            request = op.send(store._execute(request))
    except StopIteration as stop:
        report = stop.value
    assert report.problems == {}


def test_sweep_racing_writers_never_deletes_a_touched_session(real_server: EmbeddedRedis) -> None:
    """Writer threads touch half of the expired sessions, one by one, while a sweep runs.

    Whatever the interleaving, a touch that succeeded must keep its session (the sweep checks again
    inside its deleting script) and a touch that came too late must not bring one back.
    """
    clock = Clock()
    prefix = f"race{uuid.uuid4().hex[:6]}"
    config = StoreConfig(key_prefix=prefix)
    store = SessionStore.from_url(real_server.url, config=config, clock=clock)
    users = [f"user-{i}" for i in range(600)]
    sessions = {user: store.create_session(user) for user in users}
    clock.advance(days=31)  # every session is now expired ...
    hot = users[::2]
    touched: dict[str, bool] = {}
    start = threading.Barrier(5)

    def writer(chunk: list[str]) -> None:
        own = SessionStore.from_url(real_server.url, config=config, clock=clock)
        start.wait()
        for user in chunk:  # ... but these are touched at "now", spread over the sweep
            ctx = TutorContext(user_id=user, session_id=uuid.UUID(sessions[user]))
            touched[user] = own.update_session_context(sessions[user], user, ctx)
            time.sleep(0.002)
        own.close()

    threads = [threading.Thread(target=writer, args=(hot[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    start.wait()
    report = store.cleanup_expired_sessions(now=clock.now)
    for t in threads:
        t.join()
    survivors = {u for u in users if store.session_exists(sessions[u], u)}
    assert survivors == {u for u, ok in touched.items() if ok}
    assert report.deleted == len(users) - len(survivors)
    assert store.check().problems == {}
    store.close()
    print(f"touched in time: {len(survivors)}, too late: {len(hot) - len(survivors)}")


def test_a_sweep_killed_mid_way_leaves_nothing_half_deleted(real_server: EmbeddedRedis) -> None:
    prefix = f"kill{uuid.uuid4().hex[:6]}"
    clock = Clock()
    store = SessionStore.from_url(
        real_server.url, config=StoreConfig(key_prefix=prefix), clock=clock
    )
    users = [f"user-{i}" for i in range(3000)]
    for user in users:
        store.create_session(user)
    clock.advance(days=31)
    code = textwrap.dedent(f"""
        import datetime as dt, sys
        from redis_sessions import SessionStore, StoreConfig
        store = SessionStore.from_url({real_server.url!r}, config=StoreConfig(key_prefix={prefix!r}))
        def progress(done, total):
            print(done, flush=True)
        store.cleanup_expired_sessions(now=dt.datetime.fromisoformat({clock.now.isoformat()!r}),
                                       batch_size=1, progress=progress)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()  # it is sweeping
    child.kill()
    child.wait()
    remaining = sum(len(store.list_user_sessions(u)) for u in users)
    assert 0 < remaining < len(users)  # killed part way
    assert store.check().problems == {}  # nothing half-deleted
    report = store.cleanup_expired_sessions(now=clock.now)
    assert report.deleted == remaining
    assert store.check().problems == {}
    assert not data_keys(store.client, prefix, match="{u:*")
    store.close()
