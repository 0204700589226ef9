"""Overhead per operation: AsyncSessionStore vs SessionStore vs raw redis-py doing the same round trips.

For each operation the raw variants send exactly the commands the store sends (the same script with
the same pre-encoded arguments, or the same HGETALL), with no encoding, decoding or validation: the
floor. Cache off (every read goes to Redis). Rounds of each variant alternate, on one throwaway
redis-server; medians of the rounds. Writes bench/async-results.md. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.requests import Command, RunScript
from redis_sessions.samples import chat_turn, realistic_context
from redis_sessions.scripts import ScriptName, script_source

OUT = Path(__file__).with_name("async-results.md")
USER = "bench-user"


def first_request(store: SessionStore, op: Any) -> Any:
    """The request a core operation sends first (to replay it raw)."""
    request = next(op)
    op.close()
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url")
    parser.add_argument("--ops", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.url:
        report = asyncio.run(run(args.url, args.ops, args.rounds))
    else:
        with EmbeddedRedis() as server:
            report = asyncio.run(run(server.url, args.ops, args.rounds))
    OUT.write_text(report)
    print(report)


async def run(url: str, ops: int, rounds: int) -> str:
    config = StoreConfig(key_prefix=f"ab{uuid.uuid4().hex[:6]}", cache_size=0, ttl_backstop=None)
    sync_store = SessionStore.from_url(url, config=config)
    async_store = AsyncSessionStore.from_url(url, config=config)
    raw = redis.Redis.from_url(url)
    araw = redis.asyncio.Redis.from_url(url)
    sid = sync_store.create_session(USER, initial_context=realistic_context(USER))
    for turn in range(1, 21):
        role, text, actions = chat_turn(turn)
        sync_store.append_message(sid, USER, role, text, whiteboard_actions=actions)
    ctx = realistic_context(USER, sid)
    core = sync_store._core

    # The raw variants replay what the store sends.
    get_cmd = first_request(sync_store, core.get_session(sid, USER))
    update_req = first_request(sync_store, core.update_session_context(sid, USER, ctx))
    append_req = first_request(sync_store, core.append_message(sid, USER, "user", "hello"))
    history_req = first_request(sync_store, core.get_session_context(sid, USER, history=10))
    assert isinstance(get_cmd, Command)
    shas = {name: raw.script_load(script_source(name)) for name in ScriptName}

    counter = itertools.count()

    def fresh_keys(req: RunScript) -> list[Any]:
        """The request's keys with a request key of its own: a write's reply is kept for a resent
        request, and a replay answered from it would write nothing."""
        return [f"{k}-{next(counter)}" if ":req:" in str(k) else k for k in req.keys]

    def raw_script(req: RunScript) -> Callable[[], Any]:
        sha, argv = shas[req.name], list(req.args)
        return lambda: raw.evalsha(sha, len(req.keys), *fresh_keys(req), *argv)

    def araw_script(req: RunScript) -> Callable[[], Awaitable[Any]]:
        sha, argv = shas[req.name], list(req.args)
        return lambda: araw.evalsha(sha, len(req.keys), *fresh_keys(req), *argv)

    scenarios: dict[str, dict[str, Callable[[], Any]]] = {
        "get (cache miss)": {
            "raw sync": lambda: raw.execute_command(*get_cmd.args),
            "sync store": lambda: sync_store.get_session(sid, USER),
            "raw asyncio": lambda: araw.execute_command(*get_cmd.args),
            "async store": lambda: async_store.get_session(sid, USER),
        },
        "update": {
            "raw sync": raw_script(update_req),
            "sync store": lambda: sync_store.update_session_context(sid, USER, ctx),
            "raw asyncio": araw_script(update_req),
            "async store": lambda: async_store.update_session_context(sid, USER, ctx),
        },
        "append": {
            "raw sync": raw_script(append_req),
            "sync store": lambda: sync_store.append_message(sid, USER, "user", "hello"),
            "raw asyncio": araw_script(append_req),
            "async store": lambda: async_store.append_message(sid, USER, "user", "hello"),
        },
        "get with history=10": {
            "raw sync": raw_script(history_req),
            "sync store": lambda: sync_store.get_session_context(sid, USER, history=10),
            "raw asyncio": araw_script(history_req),
            "async store": lambda: async_store.get_session_context(sid, USER, history=10),
        },
    }

    results: dict[str, dict[str, float]] = {}
    for scenario, variants in scenarios.items():
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, call in variants.items():
                samples[name].append(
                    await timed(call, ops, asynchronous="asyncio" in name or "async store" in name)
                )
        results[scenario] = {name: statistics.median(values) for name, values in samples.items()}
        print(scenario, {k: round(v, 1) for k, v in results[scenario].items()}, flush=True)

    info = raw.info("server")
    for client in (raw,):
        client.close()
    await araw.aclose()
    sync_store.close()
    await async_store.aclose()
    lines = [
        "# Async store overhead",
        "",
        f"Redis {info['redis_version']} on loopback, this 2-core machine; `python -m bench.async_overhead`.",
        f"Microseconds per operation, sequential, median of {rounds} alternating rounds of {ops}.",
        "Raw = redis-py sending the very same commands with pre-encoded arguments (no encoding, no",
        "decoding, no validation): the floor. Cache off, so every read is a round trip.",
        "",
        "| operation | raw sync | sync store | raw asyncio | async store | async store / raw asyncio "
        "| async store / sync store | sync store / raw sync |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario, r in results.items():
        lines.append(
            f"| {scenario} | {r['raw sync']:.1f} | {r['sync store']:.1f} | {r['raw asyncio']:.1f} "
            f"| {r['async store']:.1f} | {r['async store'] / r['raw asyncio']:.2f}x "
            f"| {r['async store'] / r['sync store']:.2f}x | {r['sync store'] / r['raw sync']:.2f}x |"
        )
    lines.append("")
    return "\n".join(lines)


async def timed(call: Callable[[], Any], ops: int, *, asynchronous: bool) -> float:
    start = time.perf_counter()
    if asynchronous:
        for _ in range(ops):
            await call()
    else:
        for _ in range(ops):
            call()
    return (time.perf_counter() - start) / ops * 1e6


if __name__ == "__main__":
    main()
