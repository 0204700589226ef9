"""Migration into and out of a real three-node Redis Cluster (issue #16): each session's import
script touches one hash slot (Redis Cluster refuses anything else with CROSSSLOT)."""

from __future__ import annotations

import uuid

import pytest
from redis.cluster import RedisCluster

from redis_sessions import SessionStore, StoreConfig

from .migrate_support import PgServer, insert_session, realistic_row, table_rows
from .test_cluster import cluster, cluster_params  # noqa: F401  (the module's own cluster)

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")

from redis_sessions.migrate._export import run_export  # noqa: E402
from redis_sessions.migrate._import import run_import  # noqa: E402
from redis_sessions.migrate._verify import run_verify  # noqa: E402


@pytest.mark.parametrize("cluster", cluster_params()[:1], indirect=True)
def test_import_verify_export_on_redis_cluster(
    pg_server: PgServer,
    cluster: RedisCluster,  # noqa: F811  (the fixture imported above)
) -> None:
    config = StoreConfig(key_prefix=f"mig{uuid.uuid4().hex[:6]}")
    users: list[uuid.UUID] = []
    owners: set[int] = set()
    with SessionStore(cluster, config=config) as store:
        while len(users) < 12 or len(owners) < 3:  # random users may miss a node (2 % of draws)
            users.append(uuid.uuid4())
            owners.add(cluster.get_node_from_key(store._core.keys.index(str(users[-1]))).port)
    rows = [realistic_row(user, turns=4) for user in users]
    with pg_server.database() as source, pg_server.database(schema=False) as target:
        with psycopg.connect(source) as conn:
            for row in rows:
                insert_session(conn, row)
        summary = run_import(source, cluster, config, batch_size=5, progress=False)
        assert summary.reported == 0 and summary.copied["sessions"] == len(users)
        with SessionStore(cluster, config=config) as store:
            assert store.check().problems == {}
            for user, row in zip(users, rows, strict=True):
                assert [s.session_id for s in store.list_user_sessions(str(user))] == [row["id"]]
                assert len(store.get_messages(row["id"], str(user))) == 4
        assert run_verify(source, cluster, config, progress=False).differences == 0
        run_export(target, cluster, config, create_schema=True, progress=False)
        assert table_rows(target) == table_rows(source)
