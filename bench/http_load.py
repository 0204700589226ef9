"""Load on the HTTP service: ``redis-sessions serve`` as its own process, driven by a bounded
asyncio client (raw HTTP/1.1 keep-alive, one connection and one token per user), beside the same
mix run in-process on AsyncSessionStore. Every acknowledged write is checked in Redis at the end.

    python -m bench.http_load                       # 100, 200, 500 users, 20 s each
    python -m bench.http_load --users 100 --seconds 10 --workers 2

The mix per request: read 60 % (GET /sessions/{id}), update 20 % (PATCH, a JSON merge patch of
one field), append a message 15 % (POST /sessions/{id}/messages), list 5 % (GET /sessions).
With ``--think 0`` users send their next request as soon as the last one is answered (the
saturation case); with ``--think 1`` a user waits 0-2 s between requests. Results go to
bench/http-results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis, free_port

from .http_client import Connection

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-" + "x" * 40
MIX = (("read", 60), ("update", 20), ("append", 15), ("list", 5))
OPS = [name for name, weight in MIX for _ in range(weight)]


class Knobs:
    think = 0.0  # mean seconds a user waits between requests (uniform 0..2x); 0: none
    warmup = 5.0  # seconds of load before the measured run (connections opened, caches filled)


POOL = 512  # Redis connections of the server's store, and of the in-process store


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class User:
    """One virtual user: its token, its session, and what the server acknowledged."""

    name: str
    token: str
    session_id: str = ""
    updates_acked: int = 0  # the last high_cost_calls value a 200 acknowledged
    updates_sent: int = 0
    appended: dict[int, str] = field(default_factory=dict)  # turn_no -> text, acknowledged


@dataclass
class Run:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n, _ in MIX})
    errors: dict[str, int] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)  # the client loop's lateness on 5 ms sleeps
    load: float = 0.0  # the machine's 1-minute load average at the end

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def http_user(
    user: User, conn: Connection, run: Run, deadline: float, rng: random.Random
) -> None:
    sid = user.session_id
    while time.perf_counter() < deadline:
        op = rng.choice(OPS)
        started = time.perf_counter()
        try:
            if op == "read":
                status, _ = await conn.request("GET", f"/sessions/{sid}")
                ok = status == 200
            elif op == "update":
                user.updates_sent += 1
                value = user.updates_sent
                status, _ = await conn.request(
                    "PATCH", f"/sessions/{sid}", {"high_cost_calls": value}
                )
                ok = status == 200
                if ok:
                    user.updates_acked = value
            elif op == "append":
                text = f"{user.name} message {rng.random()}"
                status, body = await conn.request(
                    "POST", f"/sessions/{sid}/messages", {"role": "user", "text": text}
                )
                ok = status == 201
                if ok:
                    user.appended[json.loads(body)["turn_no"]] = text
            else:
                status, _ = await conn.request("GET", "/sessions?limit=20")
                ok = status == 200
        except Exception as exc:
            run.error(f"{op}: {type(exc).__name__}")
            continue
        run.latencies[op].append(time.perf_counter() - started)
        if not ok:
            run.error(f"{op}: HTTP {status}")
        if Knobs.think:
            await asyncio.sleep(rng.uniform(0, 2 * Knobs.think))


async def store_user(
    user: User, store: AsyncSessionStore, run: Run, deadline: float, rng: random.Random
) -> None:
    sid = user.session_id
    from redis_sessions import VersionConflict

    while time.perf_counter() < deadline:
        op = rng.choice(OPS)
        started = time.perf_counter()
        try:
            if op == "read":
                ok = await store.get_session(sid, user.name) is not None
            elif op == "update":
                user.updates_sent += 1
                value = user.updates_sent
                session = await store.get_session(sid, user.name)  # what PATCH does: read,
                assert session is not None  # merge, write with the version read
                context = session.context
                context.high_cost_calls = value
                try:
                    ok = await store.update_session_context(
                        sid, user.name, context, expected_version=session.version
                    )
                except VersionConflict:
                    ok = False
                if ok:
                    user.updates_acked = value
            elif op == "append":
                text = f"{user.name} message {rng.random()}"
                turn = await store.append_message(sid, user.name, "user", text)
                user.appended[turn] = text
                ok = True
            else:
                ok = isinstance(await store.list_user_sessions(user.name, limit=20), list)
        except Exception as exc:
            run.error(f"{op}: {type(exc).__name__}: {str(exc)[:100]}")
            continue
        run.latencies[op].append(time.perf_counter() - started)
        if not ok:
            run.error(f"{op}: not ok")
        if Knobs.think:
            await asyncio.sleep(rng.uniform(0, 2 * Knobs.think))


def check_writes(url: str, prefix: str, users: list[User]) -> tuple[int, int]:
    """(acknowledged writes checked, lost): every acked update's value (each user writes its own
    session, in order, so the last acked value must be there) and every acked message."""
    checked = lost = 0
    config = StoreConfig(key_prefix=prefix, cache_size=0, invalidation=False)
    with SessionStore.from_url(url, config=config) as store:
        for user in users:
            session = store.get_session(user.session_id, user.name)
            if user.updates_acked:
                checked += 1
                if session is None or session.context.high_cost_calls != user.updates_acked:
                    lost += 1
            messages = {
                m.turn_no: m.text
                for m in store.get_messages(user.session_id, user.name, limit=1000)
            }
            for turn, text in user.appended.items():
                checked += 1
                if messages.get(turn) != text:
                    lost += 1
    return checked, lost


async def probe_lag(run: Run, deadline: float) -> None:
    """How late a 5 ms sleep wakes up in the client: the scheduling noise every latency here
    includes (the machine is shared)."""
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        run.lag.append(time.perf_counter() - started - 0.005)


def summarize(
    mode: str, users: int, seconds: float, run: Run, *, checked: int, lost: int
) -> dict[str, Any]:
    every = [x for values in run.latencies.values() for x in values]
    row = {
        "think": Knobs.think,
        "mode": mode,
        "users": users,
        "seconds": seconds,
        "requests": len(every),
        "throughput": len(every) / seconds,
        "p50": percentile(every, 0.50) * 1000,
        "p95": percentile(every, 0.95) * 1000,
        "p99": percentile(every, 0.99) * 1000,
        "errors": sum(run.errors.values()),
        "error_kinds": dict(run.errors),
        "checked": checked,
        "lost": lost,
        "per_op_p99": {op: percentile(v, 0.99) * 1000 for op, v in run.latencies.items()},
        "per_op_p50": {op: percentile(v, 0.50) * 1000 for op, v in run.latencies.items()},
        "lag_p99": percentile(run.lag, 0.99) * 1000,
        "load": os.getloadavg()[0],
    }
    print(
        f"think {Knobs.think:g} s {mode:>10} {users:>4} users: {row['throughput']:8.0f} req/s  p50 {row['p50']:6.1f} ms  "
        f"p95 {row['p95']:6.1f} ms  p99 {row['p99']:6.1f} ms  errors {row['errors']}  "
        f"acked writes {checked}, lost {lost}  (client loop lag p99 {row['lag_p99']:.1f} ms, "
        f"load {row['load']:.1f})",
        flush=True,
    )
    return row


def make_users(n: int, tag: str) -> list[User]:
    now = int(time.time())
    tag = f"{tag}t{Knobs.think:g}"
    return [
        User(
            name=f"{tag}-user-{i}",
            token=jwt.encode(
                {"sub": f"{tag}-user-{i}", "exp": now + 3600}, SECRET, algorithm="HS256"
            ),
        )
        for i in range(n)
    ]


async def run_http(
    port: int, url: str, prefix: str, users_n: int, seconds: float
) -> dict[str, Any]:
    users = make_users(users_n, f"h{users_n}")
    conns = [Connection("127.0.0.1", port, u.token) for u in users]
    sem = asyncio.Semaphore(50)

    async def setup(user: User, conn: Connection) -> None:
        async with sem:
            status, body = await conn.request(
                "POST", "/sessions", {"context": {"session_goal": "load"}}
            )
            assert status == 201, body
            user.session_id = json.loads(body)["session_id"]

    await asyncio.gather(*(setup(u, c) for u, c in zip(users, conns, strict=True)))
    rng = random.Random(users_n)
    for run, length in ((Run(), Knobs.warmup), (Run(), seconds)):  # warm up, then measure
        deadline = time.perf_counter() + length
        started = time.perf_counter()
        await asyncio.gather(
            probe_lag(run, deadline),
            *(
                http_user(u, c, run, deadline, random.Random(rng.random()))
                for u, c in zip(users, conns, strict=True)
            ),
        )
        elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    checked, lost = check_writes(url, prefix, users)
    return summarize("HTTP", users_n, elapsed, run, checked=checked, lost=lost)


async def run_store(url: str, prefix: str, users_n: int, seconds: float) -> dict[str, Any]:
    users = make_users(users_n, f"s{users_n}")
    store = AsyncSessionStore.from_url(
        url, config=StoreConfig(key_prefix=prefix), max_connections=POOL
    )
    try:
        for user in users:
            user.session_id = str(
                await store.create_session(user.name, initial_context={"session_goal": "load"})
            )
        rng = random.Random(users_n)
        for run, length in ((Run(), Knobs.warmup), (Run(), seconds)):  # warm up, then measure
            deadline = time.perf_counter() + length
            started = time.perf_counter()
            await asyncio.gather(
                probe_lag(run, deadline),
                *(store_user(u, store, run, deadline, random.Random(rng.random())) for u in users),
            )
            elapsed = time.perf_counter() - started
    finally:
        await store.aclose()
    checked, lost = check_writes(url, prefix, users)
    return summarize("in-process", users_n, elapsed, run, checked=checked, lost=lost)


def start_server(url: str, port: int, workers: int, prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_SESSIONS_JWT_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "redis_sessions.cli", "--prefix", prefix, "serve", "--url", url,
         "--port", str(port), "--workers", str(workers), "--no-access-log",
         "--max-connections", str(POOL)],
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


HEADER = """# HTTP service under load

Each run below is one `python -m bench.http_load` (newest last with `--append`). The machine is
shared: compare runs by their load average and client lag, not only their latencies.
"""


def report(rows: list[dict[str, Any]], args: argparse.Namespace, redis_version: str) -> str:
    lines = [
        f"## Run of {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC",
        "",
        f"`python -m bench.http_load --seconds {args.seconds:g} --workers {args.workers} "
        f"--think {' '.join(f'{t:g}' for t in args.think)} --warmup {args.warmup:g}` on this "
        f"{os.cpu_count()}-core machine ({platform.python_implementation()} {platform.python_version()}, "
        f"Redis {redis_version} embedded on loopback; the load client, the server and Redis share the cores).",
        "",
        "The server is `redis-sessions serve` (uvicorn, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''}, HS256 tokens, no access log) as its own "
        "process; the client is one asyncio process with a raw HTTP/1.1 keep-alive connection and "
        "its own token per user. Mix: read 60 %, update 20 % (PATCH of one field), append 15 %, "
        "list 5 %. Think 0: each user sends its next request when the last is answered (the "
        "saturation case: latency grows with users once the server is saturated); think 1 s: a "
        "user waits 0-2 s (1 s on average) between requests, as people do. Each run is measured "
        "after an unmeasured warm-up of the same load (the pools open their connections: a burst "
        "of hundreds of new connections meets TCP's 1 s SYN retransmit). Both the server's and "
        f"the in-process store have a pool of {POOL} Redis connections. In-process: the same mix, the "
        "same number of concurrent tasks, on one AsyncSessionStore (the update reads and writes with "
        "`expected_version`, as PATCH does). Lost writes: every update and message the server "
        "acknowledged, read back from Redis at the end. Client lag: how late a 5 ms sleep woke up "
        "in the load client during the run (p99), and the machine's 1-minute load average at its "
        "end: the machine is shared with other jobs, and every latency includes that noise.",
        "",
        "| think | mode | users | requests | req/s | p50 ms | p95 ms | p99 ms | errors | acked writes checked | lost | client lag p99 ms | load avg |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['think']:g} s | {r['mode']} | {r['users']} | {r['requests']} | {r['throughput']:.0f} | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} | {r['checked']} | {r['lost']} | "
            f"{r['lag_p99']:.1f} | {r['load']:.1f} |"
        )
    lines += [
        "",
        "p50 / p99 per operation (ms):",
        "",
        "| think | mode | users | read | update | append | list |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = " | ".join(
            f"{r['per_op_p50'][op]:.1f} / {r['per_op_p99'][op]:.1f}" for op, _ in MIX
        )
        lines.append(f"| {r['think']:g} s | {r['mode']} | {r['users']} | {cells} |")
    errors = [
        f"- think {r['think']:g} s, {r['mode']} {r['users']}: {r['error_kinds']}"
        for r in rows
        if r["error_kinds"]
    ]
    if errors:
        lines += ["", "Errors by kind:", "", *errors]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, nargs="+", default=[100, 200, 500])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--think", type=float, nargs="+", default=[0.0, 1.0], help="mean think times, seconds"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument(
        "--append", action="store_true", help="add this run to --out instead of replacing it"
    )
    parser.add_argument("--store-only", action="store_true", help="only the in-process runs")
    parser.add_argument("--out", default=str(ROOT / "bench" / "http-results.md"))
    args = parser.parse_args()
    Knobs.warmup = args.warmup
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    rows: list[dict[str, Any]] = []
    with EmbeddedRedis(extra_args=["--maxclients", "10000"]) as redis_server:
        prefix = "bench"
        port = free_port()
        for think in args.think:
            Knobs.think = think
            if not args.store_only:
                server = start_server(redis_server.url, port, args.workers, prefix)
                try:
                    for users in args.users:
                        run = run_http(port, redis_server.url, prefix, users, args.seconds)
                        rows.append(asyncio.run(run))
                finally:
                    server.send_signal(signal.SIGTERM)
                    server.wait(timeout=30)
            for users in args.users:
                run = run_store(redis_server.url, prefix, users, args.seconds)
                rows.append(asyncio.run(run))
        version = redis_server.version()
    out = Path(args.out)
    previous = out.read_text() if out.exists() and args.append else HEADER
    out.write_text(previous.rstrip() + "\n\n" + report(rows, args, version))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
