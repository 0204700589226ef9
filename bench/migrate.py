"""Import rate of ``migrate import`` beside its floor: reading the same rows out of PostgreSQL.

A throwaway PostgreSQL (``pgserver``) is filled by SQL (``generate_series``) with ``--sessions``
sessions of ``--messages`` messages each (a realistic lean context of 10 concepts, user and assistant
turns, a whiteboard snapshot on every assistant turn), 5 sessions a user, all active in the last day.
Then, each in its own process (so that its peak RSS is its own):

- floor: the import's own reader (three server-side cursors merged by session, jsonb decoded) run
  to the end, doing nothing with the rows, with the garbage collector paused as the import pauses it;
- import: ``run_import`` into a throwaway redis-server (or ``--url``), batch 500.

Peak memory is the process's peak RSS (``ru_maxrss``), measured at two sizes to show it is flat.

    python -m bench.migrate                          # 100,000 sessions x 20 messages, and 10,000
    python -m bench.migrate --sessions 20000 --small 2000

Writes bench/migrate-results.md. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("migrate-results.md")


def populate(dsn: str, sessions: int, messages: int) -> float:
    """Fill the original's tables by SQL; returns the seconds it took."""
    import psycopg

    from redis_sessions.migrate._pg import SCHEMA_SQL
    from redis_sessions.migrate._shape import full_dump
    from redis_sessions.samples import chat_turn, realistic_context

    context = full_dump(realistic_context("u", concepts=10))
    context["latest_turn_no"] = messages
    _, assistant_text, actions = chat_turn(2)
    user_text = chat_turn(1)[1]
    payload = {"name": "draw_and_explain", "args": {"topic": "Matrices", "step": 2}}
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute("TRUNCATE sessions, session_messages, whiteboard_snapshots, folders CASCADE")
        conn.execute(
            """
            INSERT INTO sessions (id, user_id, context_data, created_at, updated_at)
            SELECT s.id, s.uid,
              jsonb_set(jsonb_set(%(ctx)s::jsonb, '{session_id}', to_jsonb(s.id::text)),
                        '{user_id}', to_jsonb(s.uid::text)),
              now() - interval '2 days', now() - (s.g %% 1440) * interval '1 minute'
            FROM (SELECT g, gen_random_uuid() AS id,
                    ('00000000-0000-4000-8000-' || lpad(to_hex(g / 5), 12, '0'))::uuid AS uid
                  FROM generate_series(1, %(n)s) g) s
            """,
            {"ctx": json.dumps(context), "n": sessions},
        )
        conn.execute(
            """
            INSERT INTO session_messages (session_id, turn_no, role, text, payload_json,
              whiteboard_snapshot_index, created_at)
            SELECT s.id, t,
              (CASE WHEN t %% 2 = 1 THEN 'user' ELSE 'assistant' END)::session_role,
              CASE WHEN t %% 2 = 1 THEN %(user_text)s ELSE %(assistant_text)s END,
              CASE WHEN t %% 2 = 0 THEN %(payload)s::jsonb END,
              CASE WHEN t %% 2 = 0 THEN t END,
              s.updated_at - (%(m)s - t) * interval '1 second'
            FROM sessions s, generate_series(1, %(m)s) t
            """,
            {
                "user_text": user_text,
                "assistant_text": assistant_text,
                "payload": json.dumps(payload),
                "m": messages,
            },
        )
        conn.execute(
            """
            INSERT INTO whiteboard_snapshots (session_id, snapshot_index, actions_json, created_at)
            SELECT m.session_id, m.turn_no, %(actions)s::jsonb, m.created_at
            FROM session_messages m WHERE m.whiteboard_snapshot_index IS NOT NULL
            """,
            {"actions": json.dumps(actions)},
        )
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def phase(name: str, dsn: str, url: str) -> dict[str, Any]:
    """Run one phase in this process; its numbers."""
    import redis

    from redis_sessions import StoreConfig
    from redis_sessions.migrate import _pg
    from redis_sessions.migrate._import import run_import

    started = time.perf_counter()
    rows = 0
    if name == "floor":
        # the reader as the import runs it: with the cyclic garbage collector paused
        with _pg.connect(dsn) as conn, _pg.collector_paused():
            for item in _pg.bundles(conn, _pg.Filter(), 500):
                assert isinstance(item, _pg.Bundle)
                rows += 1 + len(item.messages) + len(item.snapshots)
        sessions = None
    else:
        client = redis.Redis.from_url(url)
        client.flushall()
        summary = run_import(dsn, client, StoreConfig(), batch_size=500, progress=False)
        assert summary.reported == 0 and summary.expired == 0, summary
        sessions = summary.copied["sessions"]
        rows = (
            sessions + summary.copied["session_messages"] + summary.copied["whiteboard_snapshots"]
        )
        client.close()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "phase": name,
        "seconds": seconds,
        "rows": rows,
        "sessions": sessions,
        "peak_mb": peak_mb,
    }


def run_phase(name: str, dsn: str, url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.migrate", "--phase", name, "--dsn", dsn, "--url", url],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(dsn: str, url: str, sessions: int, messages: int, repeat: int) -> dict[str, Any]:
    """Fill, then floor and import alternately ``repeat`` times; the best of each (the machine is
    shared: the best run is the one least disturbed), and every run's seconds."""
    fill = populate(dsn, sessions, messages)
    floors, imports = [], []
    for _ in range(repeat):
        floors.append(run_phase("floor", dsn, url))
        imports.append(run_phase("import", dsn, url))
    return {
        "sessions": sessions,
        "fill": fill,
        "floor": min(floors, key=lambda r: r["seconds"]),
        "import": min(imports, key=lambda r: r["seconds"]),
        "floor_runs": [r["seconds"] for r in floors],
        "import_runs": [r["seconds"] for r in imports],
        "peak": (max(r["peak_mb"] for r in floors), max(r["peak_mb"] for r in imports)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="the second size (memory)")
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each phase (best kept)")
    parser.add_argument(
        "--url", default=None, help="a Redis to fill and empty (default: throwaway)"
    )
    parser.add_argument("--phase", choices=["floor", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.dsn, args.url)))
        return

    import pgserver
    import redis

    from bench.common import server

    folder = tempfile.mkdtemp(prefix="bench-pg-")
    os.chmod(folder, 0o777)
    pg = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        with server(args.url) as url:
            results = [
                measure(pg.get_uri(), url, n, args.messages, args.repeat)
                for n in (args.small, args.sessions)
            ]
            info = redis.Redis.from_url(url).info("server")
            version = info["redis_version"]
            pg_version = pg.psql("SHOW server_version;").split("\n")[2].strip()
    finally:
        pg.cleanup()
    write(results, args.messages, version, pg_version)


def write(results: list[dict[str, Any]], messages: int, version: str, pg_version: str) -> None:
    lines = [
        "# Migration import rate",
        "",
        f"PostgreSQL {pg_version} (pgserver) and Redis {version} on this machine (2 cores, both"
        " servers on it too); generated by `python -m bench.migrate` (bench/migrate.py).",
        f"Each session: a lean context of 10 concepts, {messages} messages (user and assistant"
        f" turns), a whiteboard snapshot on each assistant turn ({messages // 2}).",
        "Floor: the import's own PostgreSQL reader (three server-side cursors merged by session,"
        " jsonb decoded) run to the end, doing nothing with the rows, with Python's garbage"
        " collector paused as the import pauses it. Import: `run_import` into an empty Redis,"
        " batch 500, writing through the store's `restore_sessions`. Each in its own process;"
        " peak memory is its peak RSS.",
        "",
        "| sessions | rows | floor (s) | floor sessions/s | import (s) | import sessions/s |"
        " import / floor | floor peak RSS (MB) | import peak RSS (MB) | all runs: floor; import (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        f, i = r["floor"], r["import"]
        runs = (
            ", ".join(f"{x:.1f}" for x in r["floor_runs"])
            + "; "
            + ", ".join(f"{x:.1f}" for x in r["import_runs"])
        )
        lines.append(
            f"| {r['sessions']:,} | {i['rows']:,} | {f['seconds']:.1f} |"
            f" {r['sessions'] / f['seconds']:,.0f} | {i['seconds']:.1f} |"
            f" {r['sessions'] / i['seconds']:,.0f} | {i['seconds'] / f['seconds']:.2f}x |"
            f" {r['peak'][0]:.0f} | {r['peak'][1]:.0f} | {runs} |"
        )
    lines += [
        "",
        "Best of the runs of each phase (the machine is shared with other work); peak RSS is the"
        " highest of the runs. Filling PostgreSQL took "
        + ", ".join(f"{r['fill']:.0f} s ({r['sessions']:,} sessions)" for r in results)
        + ".",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
