"""Do writes scale with threads and tasks? Update throughput of the store against raw redis-py.

    python -m bench.scaling [--url URL] [--seconds S]

Each of N threads (one sync store shared by all, as in a threaded app server) updates a session
of its own, alternating two contexts that differ by one quiz outcome, with the cache on (the app
read the session first); the floor sends the very same requests with raw redis-py (one client
shared by the threads, a new request id each call). Beside "ours", a variant shows what part of
the gap the invalidation listener takes: the same store with invalidation off (no listener thread
taking the GIL for the announcements it hears). The same with N asyncio tasks on one
AsyncSessionStore against redis.asyncio. The floor and ours alternate
in ROUNDS rounds; reports the median updates per second of each and their ratio. Used by bench/run.py; runs alone too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import server
from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.requests import RunScript
from redis_sessions.samples import realistic_context
from redis_sessions.scripts import ScriptName, script_source


def _requests(store: SessionStore, user: str, sid: Any, contexts: tuple[Any, Any]) -> list[Any]:
    """The store's update requests for the two contexts (against no base: Redis does the same
    work each time), as (sha name, keys, args)."""
    from bench.run import _without_base, first_request

    out = []
    for context in contexts:
        request = first_request(store._core.update_session_context(sid, user, context))
        assert isinstance(request, RunScript)
        out.append(_without_base(request))
    return out


def _contexts(store: SessionStore, user: str, sid: Any) -> tuple[Any, Any]:
    from bench.run import outcome_recorded

    a = store.get_session_context(sid, user)
    return a, outcome_recorded(a)


#: each measurement alternates the floor and ours this many times (the machine drifts: a round
#: of each, back to back, sees the same drift), and reports the median rate of each
ROUNDS = 5


#: what "ours" is made of, measured beside it (threads): the same store without the invalidation
#: listener
WITHOUT_LISTENER = "ours, invalidation off"


def _alternate(
    measure: Callable[[str], float], seconds: float, names: tuple[str, ...] = ("floor", "ours")
) -> dict[str, float]:
    """{name: updates/s}: medians of ROUNDS alternating rounds."""
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(ROUNDS):
        for name, values in rates.items():
            values.append(measure(name))
    return {name: statistics.median(values) for name, values in rates.items()}


def _run_threads(calls: list[Callable[[], Any]], seconds: float) -> float:
    n = len(calls)
    counts = [0] * n
    stop = threading.Event()

    def loop(i: int) -> None:
        call = calls[i]
        while not stop.is_set():
            call()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def threads(url: str, n: int, seconds: float) -> dict[str, float]:
    """Updates per second from ``n`` threads: ours and raw redis-py."""
    from bench.run import applies

    prefix = f"scale{uuid.uuid4().hex[:6]}"
    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix))
    # each variant on a key prefix (and so an invalidation channel) of its own: no listener
    # hears the writes of a variant measured beside it
    stores = {
        "ours": store,
        WITHOUT_LISTENER: SessionStore.from_url(
            url, config=StoreConfig(key_prefix=f"{prefix}n", invalidation=False)
        ),
    }
    raw = redis.Redis.from_url(url, max_connections=n + 4)
    shas = {name: raw.script_load(script_source(name)) for name in ScriptName}
    counter = itertools.count()

    def session(i: int, owner: SessionStore = store) -> tuple[str, Any, tuple[Any, Any]]:
        user = f"scale-{i}"
        sid = owner.create_session(user, initial_context=realistic_context(user))
        return user, sid, _contexts(owner, user, sid)  # read: cached, as in an app

    def ours(i: int, variant: str) -> Callable[[], Any]:
        writer = stores[variant]
        user, sid, (a, b) = session(i, writer)
        turn = itertools.cycle((a, b))
        return lambda: writer.update_session_context(sid, user, next(turn))

    def floor(i: int) -> Callable[[], Any]:
        user, sid, contexts = session(i)
        requests = itertools.cycle(_requests(store, user, sid, contexts))

        def call() -> Any:
            request = next(requests)
            keys = [*request.keys[:-1], f"{request.keys[-1]}-{next(counter)}"]
            return raw.evalsha(shas[request.name], len(keys), *keys, *request.args)

        return applies(call)

    calls = {"floor": [floor(i) for i in range(n)]}
    calls.update({variant: [ours(i, variant) for i in range(n)] for variant in stores})
    out = _alternate(
        lambda name: _run_threads(calls[name], seconds / ROUNDS), seconds, tuple(calls)
    )
    for each in stores.values():
        each.close()
    raw.close()
    return out


def tasks(url: str, n: int, seconds: float) -> dict[str, float]:
    """Updates per second from ``n`` asyncio tasks: ours and raw redis.asyncio."""
    prefix = f"scale{uuid.uuid4().hex[:6]}"
    sync = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, invalidation=False))
    made = []
    for i in range(n):
        user = f"task-{i}"
        sid = sync.create_session(user, initial_context=realistic_context(user))
        contexts = _contexts(sync, user, sid)
        made.append((user, sid, contexts, _requests(sync, user, sid, contexts)))
    sync.close()

    async def drive(calls: list[Callable[[], Any]], seconds: float) -> float:
        counts = [0] * len(calls)
        stop = False

        async def loop(i: int) -> None:
            while not stop:
                await calls[i]()
                counts[i] += 1

        running = [asyncio.create_task(loop(i)) for i in range(len(calls))]
        await asyncio.sleep(seconds)
        stop = True
        await asyncio.gather(*running)
        return sum(counts) / seconds

    async def main() -> dict[str, float]:
        raw = aredis.Redis.from_url(url, max_connections=n + 4)
        shas = {name: await raw.script_load(script_source(name)) for name in ScriptName}
        counter = itertools.count()

        def floor_call(requests: list[Any]) -> Callable[[], Any]:
            cycle = itertools.cycle(requests)

            def call() -> Any:
                request = next(cycle)
                keys = [*request.keys[:-1], f"{request.keys[-1]}-{next(counter)}"]
                return raw.evalsha(shas[request.name], len(keys), *keys, *request.args)

            return call

        for _, _, _, requests in made:  # each floor writes each time (see bench.run.applies)
            probe = floor_call(requests)
            for _ in range(2):
                reply = await probe()
                assert reply[0] == 1, f"the floor's update was refused: {reply!r}"
        store = AsyncSessionStore.from_url(url, config=StoreConfig(key_prefix=prefix))
        for user, sid, _, _ in made:  # cached, as in an app
            await store.get_session_context(sid, user)

        def ours_call(user: str, sid: Any, contexts: tuple[Any, Any]) -> Callable[[], Any]:
            turn = itertools.cycle(contexts)
            return lambda: store.update_session_context(sid, user, next(turn))

        calls = {
            "floor": [floor_call(requests) for _, _, _, requests in made],
            "ours": [ours_call(u, s, c) for u, s, c, _ in made],
        }
        rates: dict[str, list[float]] = {"floor": [], "ours": []}
        for _ in range(ROUNDS):  # alternating, as _alternate does (here awaited)
            for name, values in rates.items():
                values.append(await drive(calls[name], seconds / ROUNDS))
        await raw.aclose()
        await store.aclose()
        return {name: statistics.median(values) for name, values in rates.items()}

    return asyncio.run(main())


def scaling(url: str, seconds: float) -> dict[str, dict[str, float]]:
    """{"1 thread": {...}, "8 threads": {...}, "64 tasks": {...}}: updates/s, ours and floor."""
    out = {
        "1 thread": threads(url, 1, seconds),
        "8 threads": threads(url, 8, seconds),
        "64 tasks": tasks(url, 64, seconds),
    }
    for name, row in out.items():
        print(name, {k: f"{v:,.0f}/s" for k, v in row.items()}, flush=True)
    return out


def table(rows: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| writers | raw redis-py updates/s | ours updates/s | ours / raw | "
        f"{WITHOUT_LISTENER} / raw |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        parts = [
            f"{row[variant] / row['floor']:.2f}" if variant in row else "-"
            for variant in (WITHOUT_LISTENER,)
        ]
        lines.append(
            f"| {name} | {row['floor']:,.0f} | {row['ours']:,.0f} | "
            f"{row['ours'] / row['floor']:.2f} | {' | '.join(parts)} |"
        )
    return lines


# ---------------------------------------------------------------- processes: a get/update mix


def _mix_worker(args: tuple[str, str, str, float, int]) -> int:
    """One client process: a 90% get / 10% update mix on its own sessions for ``seconds``."""
    url, kind, prefix, seconds, seed = args
    import random

    from bench.run import first_request as _first
    from bench.run import replay as _replay

    rng = random.Random(seed)
    user = f"mix-{seed}"
    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, cache_size=0))
    ids = [store.create_session(user, initial_context=realistic_context(user)) for _ in range(20)]
    contexts = {sid: realistic_context(user, sid) for sid in ids}
    calls: list[Callable[[str], Any]]
    if kind == "ours":
        calls = [
            lambda s: store.get_session_context(s, user),
            lambda s: store.update_session_context(s, user, contexts[s]),
        ]
    else:
        raw = redis.Redis.from_url(url)
        shas = {name: raw.script_load(script_source(name)) for name in ScriptName}
        gets = {s: _replay(raw, shas, _first(store._core.get_session(s, user))) for s in ids}
        puts = {
            s: _replay(raw, shas, _first(store._core.update_session_context(s, user, contexts[s])))
            for s in ids
        }
        calls = [lambda s: gets[s](), lambda s: puts[s]()]
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sid = ids[rng.randrange(len(ids))]
        calls[1 if rng.random() < 0.1 else 0](sid)
        done += 1
    store.close()
    return done


def concurrency(url: str, seconds: float) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {"ours": {}, "floor": {}}
    ctx = multiprocessing.get_context("spawn")
    for processes in (1, 2, 4):
        for kind in ("floor", "ours"):
            prefix = f"mix{uuid.uuid4().hex[:6]}"
            with ctx.Pool(processes) as pool:
                done = pool.map(
                    _mix_worker, [(url, kind, prefix, seconds, i) for i in range(processes)]
                )
            out[kind][processes] = sum(done) / seconds
            print("mix", kind, processes, f"{out[kind][processes]:,.0f}/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with server(args.url) as url:
        print("\n".join(table(scaling(url, args.seconds))))


if __name__ == "__main__":
    main()
