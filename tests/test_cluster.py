"""The store on a real three-node Redis Cluster that the test starts itself.

Every script must touch one hash slot; here Redis Cluster itself enforces it (CROSSSLOT errors) and
redis-py routes each call by its keys, for users whose keys land on all three nodes.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import msgspec
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from redis_sessions import SessionStore, StoreConfig, TutorContext
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.samples import chat_turn, realistic_context

from .backends import Backend
from .conftest import data_keys

SLOTS = 16384


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    backend: Backend = request.param
    assert backend.binary is not None
    nodes = []
    try:
        for _ in range(3):
            nodes.append(
                EmbeddedRedis(
                    backend.binary,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-config-file",
                        "nodes.conf",
                    ],
                ).start()
            )
        clients = [redis.Redis(port=n.port) for n in nodes]
        share = SLOTS // 3
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == 2 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTS", *range(i * share, last + 1))
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            infos = [c.cluster("info") for c in clients]
            if all(i["cluster_state"] == "ok" and i["cluster_known_nodes"] == "3" for i in infos):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the test cluster did not become ready")
        for c in clients:
            c.close()
        rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes])
        yield rc
        rc.close()
    finally:
        for node in nodes:
            node.stop()


def cluster_params() -> list[object]:
    from .backends import all_backends

    return [pytest.param(b, id=b.name) for b in all_backends() if b.real]


@pytest.mark.parametrize("cluster", cluster_params(), indirect=True)
def test_store_runs_on_redis_cluster(cluster: RedisCluster) -> None:
    store = SessionStore(cluster, config=StoreConfig(key_prefix=f"cl{uuid.uuid4().hex[:6]}"))
    users = [f"user-{i}" for i in range(12)] + ["a{b}:c", "ü 🎓"]
    slots = {key_slot(store._core.keys.index(u).encode()) for u in users}
    owners = {cluster.get_node_from_key(store._core.keys.index(u)).port for u in users}
    assert len(owners) == 3, "the users should spread over all three nodes"
    assert len(slots) > 3
    for user in users:
        sid = store.create_session(user, initial_context=realistic_context(user))
        for turn in range(1, 5):
            role, text, actions = chat_turn(turn)
            store.append_message(sid, user, role, text, whiteboard_actions=actions)
        store._core.cache.clear()
        ctx = store.get_session_context(sid, user, history=3)
        assert ctx is not None and len(ctx.history) == 3 and len(ctx.whiteboard_history) == 2
        ctx.session_goal = "cluster"
        assert store.update_session_context(sid, user, ctx)
        assert [r.session_id for r in store.list_user_sessions(user)] == [sid]
        assert store.end_session(sid, user)
        assert store.get_session(sid, "someone-else") is None
        assert store.delete_session(sid, user)
        assert store.get_session(sid, user) is None
        missing = TutorContext(user_id=user, session_id=uuid.UUID(str(sid)))
        assert store.update_session_context(sid, user, missing) is False
    assert data_keys(cluster, store.config.key_prefix) == set()
    store.close()


@pytest.mark.parametrize("cluster", cluster_params(), indirect=True)
def test_agent_framework_ops_on_redis_cluster(cluster: RedisCluster) -> None:
    """Batches, pop, clear and the state hashes (a key the scripts name from the record key, and
    an app's state in a slot of its own) on a cluster, and the cascade takes the state away."""
    store = SessionStore(cluster, config=StoreConfig(key_prefix=f"cl{uuid.uuid4().hex[:6]}"))
    core = store._core
    for user in [f"user-{i}" for i in range(6)] + ["a{b}:c"]:
        sid = store.create_session(user)
        assert (
            store.append_messages(sid, user, [("user", "q", {"n": 1}), ("assistant", "a", None)])
            == 2
        )
        assert store.update_session_state(sid, user, {"k": user})
        assert store.pop_message(sid, user).text == "a"  # type: ignore[union-attr]
        assert store.clear_messages(sid, user) == 1
        assert store.get_session_state(sid, user) == {"k": user}
        store._run(
            core.write_turns(
                user, str(sid), [], scope="app", user_state={"u": b"1"}, scoped_entry=f"{sid} x"
            )
        )
        assert store._run(core.get_user_state(user, "app")) == {"u": 1}
        assert user in store._run(core.scoped_users("app"))  # a SCAN of every primary
        assert [row.external_id for row in store._run(core.list_scoped(user, "app"))[1]] == ["x"]
        store._run(core.put_app_state("app", {"a": b"2"}))
        assert store._run(core.get_app_state("app")) == {"a": 2}
        assert store.check().problems == {}
        assert store.delete_session(sid, user)
        assert cluster.exists(core.keys.session_state(user, str(sid))) == 0
        assert store._run(core.list_scoped(user, "app"))[1] == []  # its entry is removed
        cluster.delete(core.keys.user_state(user, "app"))
    cluster.delete(core.keys.app_state("app"))
    assert data_keys(cluster, store.config.key_prefix) == set()
    store.close()


@pytest.mark.parametrize("cluster", cluster_params(), indirect=True)
def test_sweep_and_check_on_redis_cluster(cluster: RedisCluster) -> None:
    from .conftest import Clock

    clock = Clock()
    store = SessionStore(
        cluster, config=StoreConfig(key_prefix=f"cs{uuid.uuid4().hex[:6]}"), clock=clock
    )
    users = [f"user-{i}" for i in range(30)]
    old = {u: store.create_session(u) for u in users}
    clock.advance(days=31)
    fresh = {u: store.create_session(u) for u in users[:10]}
    report = store.cleanup_expired_sessions(now=clock.now, batch_size=3)
    assert (report.deleted, report.kept) == (30, 0)
    for user in users:
        assert [r.session_id for r in store.list_user_sessions(user)] == (
            [fresh[user]] if user in fresh else []
        )
    assert store.check().problems == {}
    store.client.delete(store.keyspace.session("user-0", fresh["user-0"]))
    found = store.check(count=5)
    assert found.problems == {"dangling-index": 1, "dangling-expiry": 1}
    assert store.check(repair=True).unrepaired == 0
    assert store.check().problems == {}
    assert old  # the old sessions' keys are gone on every node:
    leftover = [
        k
        for k in cluster.scan_iter(match=f"{store.config.key_prefix}:*")
        if any(str(sid).encode() in k for sid in old.values())
    ]
    assert leftover == []
    store.close()


@pytest.mark.parametrize("cluster", cluster_params(), indirect=True)
def test_check_contains_and_drops_damage_on_redis_cluster(cluster: RedisCluster) -> None:
    store = SessionStore(cluster, config=StoreConfig(key_prefix=f"cd{uuid.uuid4().hex[:6]}"))
    keys = store.keyspace
    sessions = {u: store.create_session(u) for u in (f"user-{i}" for i in range(6))}
    cluster.delete(keys.index("user-1"))
    cluster.set(keys.index("user-1"), b"x")
    cluster.hset(keys.session("user-2", sessions["user-2"]), "version", b"abc")
    live, _ = keys.expiry("user-3")
    cluster.delete(live)
    cluster.hset(live, "f", b"x")
    found = store.check(count=2)
    assert found.problems == {"wrong-type": 2, "undecodable": 1}
    dropped = store.check(repair=True, drop_corrupt=True, count=2)
    assert dropped.problems == {"wrong-type": 2, "undecodable": 1, "unindexed": 1, "no-expiry": 1}
    assert dropped.unrepaired == 0 and store.check().problems == {}
    assert not cluster.exists(keys.session("user-2", sessions["user-2"]))
    assert [r.session_id for r in store.list_user_sessions("user-1")] == [sessions["user-1"]]
    cluster.delete(*cluster.scan_iter(match=f"{store.config.key_prefix}:*"))
    store.close()


@pytest.mark.parametrize("cluster", cluster_params()[:1], indirect=True)
def test_restore_sessions_on_redis_cluster(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """One batch of restores whose users live on all three nodes: redis-py's cluster pipeline
    sends each node its scripts (sync and asyncio clients); a flushed script is loaded again."""
    import asyncio

    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    from redis_sessions import AsyncSessionStore, SessionRestore

    config = StoreConfig(key_prefix=f"cl{uuid.uuid4().hex[:6]}")
    now = dt.datetime.now(dt.timezone.utc)
    restores = [
        SessionRestore(
            context=realistic_context(f"user-{i}", session_id=uuid.uuid4()),
            created_at=now,
            updated_at=now - dt.timedelta(seconds=i),
        )
        for i in range(12)
    ]
    store = SessionStore(cluster, config=config)
    request.addfinalizer(store.close)
    users = [r.context.user_id for r in restores]
    assert len({cluster.get_node_from_key(store.keyspace.index(u)).port for u in users}) == 3
    cluster.script_flush()
    assert store.restore_sessions(restores) == [1] * 12
    for r in restores:
        assert [s.session_id for s in store.list_user_sessions(r.context.user_id)] == [
            r.context.session_id
        ]

    async def again() -> list[int]:
        node = cluster.get_primaries()[0]
        client = AsyncRedisCluster(host=node.host, port=node.port)
        await client.initialize()
        try:
            async with AsyncSessionStore(client, config=config) as async_store:
                changed = [
                    msgspec.structs.replace(
                        r, context=msgspec.structs.replace(r.context, session_goal="again")
                    )
                    for r in restores
                ]
                return await async_store.restore_sessions(changed)
        finally:
            await client.aclose()

    assert asyncio.run(again()) == [2] * 12
    assert store.check().problems == {}
    for r in restores:
        assert store.delete_session(r.context.session_id, r.context.user_id)
    assert data_keys(cluster, config.key_prefix) == set()
