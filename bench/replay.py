"""What exactly-once writes cost (``python -m bench.replay``).

Every write script starts with ``replayed`` (one GET of the request key) and ends with ``remember``
(one SET ... PX of it), see lua/_lib.lua. This measures that bookkeeping against the same scripts
with it removed (``replayed`` returns nil, ``remember`` returns its reply: built from the registry's
sources by string substitution), both measured in the same run, rounds alternating:

1. server side: µs per EVALSHA from INFO commandstats (CONFIG RESETSTAT before each batch) for
   create, update (whole context / one field changed), append, end and delete, each call on a
   fresh session, with exactly the KEYS and ARGV the store sends (taken from its core);
2. client side: p50 and p99 of ``append_message`` and ``update_session_context`` through a
   ``SessionStore`` sending the real scripts vs. the no-replay ones;
3. memory: MEMORY USAGE of a request key, used_memory freed per request key, and what the keys
   alive at once weigh at 1,000 writes/s with the default 60 s window.

Own throwaway redis-server, or --url (a fresh key prefix, deleted at the end; but CONFIG RESETSTAT
resets that server's command statistics, and other clients' EVALSHAs would count in ours).
Writes bench/replay-results.md. Asserts nothing (it only checks each write was applied).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import redis

import redis_sessions._shell as shell
from redis_sessions import SessionStore, StoreConfig, TutorContext
from redis_sessions.requests import Request, RunScript
from redis_sessions.samples import chat_turn, realistic_context
from redis_sessions.scripts import ScriptName, script_source

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import server

OUT = Path(__file__).with_name("replay-results.md")
REAL, BARE = "real", "no replay"
WRITES = (
    ScriptName.CREATE,
    ScriptName.UPDATE,
    ScriptName.APPEND,
    ScriptName.END,
    ScriptName.DELETE,
    ScriptName.DELETE_FOLDER,
)
USERS = [f"learner-{i}" for i in range(64)]  # sessions spread over users (and expiry slots)
WINDOW_S = StoreConfig().replay_window.total_seconds()
RATE = 1000  # writes per second, for the memory estimate

# The bodies replaced in lua/_lib.lua: (the function's first line, the body it gets instead, a call
# the real body makes that the no-op must not).
NO_OPS = (
    ("local function replayed(request_key, owner)\n", "  return nil\n", "redis.call('GET'"),
    (
        "local function remember(request_key, window_ms, owner, reply)\n",
        "  return reply\n",
        "redis.call('SET'",
    ),
)


def without_replay(source: str) -> str:
    """``source`` with the bodies of ``replayed`` and ``remember`` replaced by no-ops; raises when
    the library no longer reads as expected (so a changed _lib.lua cannot go unmeasured)."""
    for header, body, call in NO_OPS:
        if source.count(header) != 1:
            raise RuntimeError(f"expected exactly one {header.strip()!r} in the script source")
        start = source.index(header) + len(header)
        stop = source.find("\nend\n", start)  # the function's own `end`, at column 0
        if stop < 0 or call not in source[start:stop]:
            raise RuntimeError(f"the body of {header.strip()!r} is not as expected")
        source = source[:start] + body + source[stop + 1 :]
    for _, _, call in NO_OPS:
        if f"{call}, request_key" in source:
            raise RuntimeError(f"{call} of the request key is still in the no-replay source")
    return source


def sources() -> dict[str, dict[ScriptName, str]]:
    real = {name: script_source(name) for name in ScriptName}
    bare = {name: without_replay(text) if name in WRITES else text for name, text in real.items()}
    return {REAL: real, BARE: bare}


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def first_request(op: Any) -> RunScript:
    """The script a core operation sends (built, not sent: the generator is closed at its yield)."""
    request = next(op)
    op.close()
    if not isinstance(request, RunScript):
        raise RuntimeError(f"expected a script, got {request!r}")
    return request


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def middle_half(ratios: list[float]) -> str:
    """The 25th-75th percentile of per-round ratios: how far this machine's noise moves one."""
    return f"{pct(ratios, 0.25):.2f}-{pct(ratios, 0.75):.2f}x"


# ---------------------------------------------------------------- 1. server side


@dataclass
class Fixture:
    store: SessionStore
    contexts: dict[str, TutorContext] = field(default_factory=dict)
    serial: int = 0

    def user(self) -> str:
        self.serial += 1
        return USERS[self.serial % len(USERS)]

    def context(self, user: str, sid: str | None = None) -> TutorContext:
        if user not in self.contexts:
            self.contexts[user] = realistic_context(user)
        ctx = self.contexts[user]
        return ctx if sid is None else msgspec.structs.replace(ctx, session_id=uuid.UUID(str(sid)))

    def sessions(self, n: int) -> list[tuple[str, str]]:
        """n fresh sessions (user, session id), created through the store (so it caches them)."""
        out = []
        for _ in range(n):
            user = self.user()
            sid = self.store.create_session(user, initial_context=self.context(user))
            out.append((user, str(sid)))  # the cache's keys hold its text
        return out


def build(fx: Fixture, op: str, n: int) -> list[RunScript]:
    """What the store sends for ``op``, once on each of n fresh sessions (same for both variants)."""
    core = fx.store._core
    if op == "create":
        users = [fx.user() for _ in range(n)]
        return [first_request(core.create_session(u, initial_context=fx.context(u))) for u in users]
    requests = []
    for turn, (user, sid) in enumerate(fx.sessions(n), 1):
        if op.startswith("update"):
            ctx = fx.context(user, sid)
            ctx.last_interaction_summary = f"Learner answered question {turn}."
            whole = "whole" in op
            if whole:
                core.cache.evict((user, sid))  # nothing cached: the whole context is sent
            request = first_request(core.update_session_context(sid, user, ctx))
            # ARGV[10], the base version: "" or "*" (cache what it makes) for a whole context
            if (request.args[9] in ("", b"", "*", b"*")) != whole:
                raise RuntimeError(f"{op}: the store did not send what this row claims")
        elif op == "append":
            role, text, actions = chat_turn(turn)  # every other one with a whiteboard snapshot
            request = first_request(
                core.append_message(sid, user, role, text, whiteboard_actions=actions)
            )
        elif op == "end":
            request = first_request(core.end_session(sid, user))
        else:
            request = first_request(core.delete_session(sid, user))
        requests.append(request)
    return requests


def drain(store: SessionStore, client: redis.Redis) -> None:
    """Wait until the store's listener has handled every announcement published so far (the
    bench's own writes, thousands a second): announce a write of another process after them and
    wait for the listener to count it. Else its backlog would compete with what is measured next.
    """
    core = store._core
    seen = core.invalidations_received
    member = core.keys.expiry_member("drain", str(uuid.uuid4()))
    message = f"{member}|{int(time.time() * 1000)}|bench-drain"
    client.publish(core.keys.invalidation_channel(), message)
    deadline = time.monotonic() + 30
    while core.invalidations_received == seen:
        if time.monotonic() > deadline:
            raise RuntimeError("the store's listener did not catch up within 30 s")
        time.sleep(0.001)


def applied(op: str, reply: Any) -> bool:
    if op == "end":
        return bool(reply)
    return int(reply[0]) >= 1


def server_us(client: redis.Redis, op: str, script: str, requests: list[RunScript]) -> float:
    """µs per EVALSHA of ``script`` on the server (INFO commandstats) over ``requests``."""
    digest = sha(script)
    client.config_resetstat()
    for batch in chunks(requests, 100):  # pipelined: the server's time per call is unaffected
        pipe = client.pipeline(transaction=False)
        for request in batch:
            pipe.evalsha(digest, len(request.keys), *request.keys, *request.args)
        for reply in pipe.execute():
            if not applied(op, reply):
                raise RuntimeError(f"{op}: a write was not applied: {reply!r}")
    stats = client.info("commandstats")["cmdstat_evalsha"]
    if stats["calls"] != len(requests):
        raise RuntimeError(f"cmdstat_evalsha counted {stats['calls']} calls, not {len(requests)}")
    return float(stats["usec"]) / stats["calls"]  # usec_per_call, unrounded


SERVER_OPS = (
    ("create", ScriptName.CREATE),
    ("update (whole context)", ScriptName.UPDATE),
    ("update (one field changed)", ScriptName.UPDATE),
    ("append", ScriptName.APPEND),
    ("end", ScriptName.END),
    ("delete", ScriptName.DELETE),
)


def server_side(
    fx: Fixture,
    client: redis.Redis,
    scripts: dict[str, dict[ScriptName, str]],
    *,
    n: int,
    rounds: int,
) -> dict[str, dict[str, list[float]]]:
    """Per op and variant, the µs per call of each round (variants alternate, order swapped)."""
    samples: dict[str, dict[str, list[float]]] = {op: {REAL: [], BARE: []} for op, _ in SERVER_OPS}
    for r in range(rounds):
        for op, name in SERVER_OPS:
            for variant in (REAL, BARE) if r % 2 == 0 else (BARE, REAL):
                requests = build(fx, op, n)
                drain(fx.store, client)
                samples[op][variant].append(server_us(client, op, scripts[variant][name], requests))
    return samples


# ---------------------------------------------------------------- 2. client side


def sending(scripts: dict[ScriptName, str]) -> None:
    """Make every store in this process send ``scripts``.

    The store's driver (``StoreBase._perform`` in redis_sessions/_shell.py) looks up the SHA of
    each script with ``script_sha(name)`` (and on NOSCRIPT loads ``script_source(name)``), names it
    imported from redis_sessions.scripts: rebinding them in redis_sessions.scripts would not reach
    it, so they are rebound in redis_sessions._shell, where ``_perform`` finds them on every call.
    Both variants are installed the same way (a dict lookup), so only the script differs.
    """
    shas = {name: sha(text) for name, text in scripts.items()}
    shell.script_sha = shas.__getitem__  # type: ignore[assignment]
    shell.script_source = scripts.__getitem__  # type: ignore[assignment]


CLIENT_OPS = (
    "append_message",
    "update_session_context (one field changed)",
    "update_session_context (whole context, cache off)",
)


def client_round(stores: dict[str, SessionStore], fx: Fixture, op: str, n: int) -> list[float]:
    """n calls of ``op`` on one fresh session, each call's seconds."""
    store = stores["cache off" if "cache off" in op else "default"]
    user = fx.user()
    sid = str(store.create_session(user, initial_context=fx.context(user)))  # the cache's key
    calls: list[Callable[[], Any]] = []
    if op == "append_message":
        for turn in range(1, n + 1):
            role, text, actions = chat_turn(turn)
            calls.append(
                lambda r=role, t=text, a=actions: store.append_message(
                    sid, user, r, t, whiteboard_actions=a
                )
            )
    else:
        for turn in range(1, n + 1):
            ctx = fx.context(user, sid)
            ctx.last_interaction_summary = f"Learner answered question {turn}."
            calls.append(lambda c=ctx: store.update_session_context(sid, user, c))
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    # a write that sent the whole context would not put the record back in the cache: still there,
    # every call of the round sent only the change
    if "one field" in op and store._core.cache.peek((user, sid)) is None:
        raise RuntimeError(f"{op}: the cache lost the session, so not every call sent a change")
    return out


def client_side(
    stores: dict[str, SessionStore],
    client: redis.Redis,
    fx: Fixture,
    scripts: dict[str, dict[ScriptName, str]],
    *,
    n: int,
    rounds: int,
) -> dict[str, dict[str, list[list[float]]]]:
    """Per call and variant, each round's latencies (variants alternate, order swapped)."""
    samples: dict[str, dict[str, list[list[float]]]] = {
        op: {REAL: [], BARE: []} for op in CLIENT_OPS
    }
    real_sha, real_source = shell.script_sha, shell.script_source
    try:
        for variant in (REAL, BARE):  # warm up: scripts loaded, code paths hot
            sending(scripts[variant])
            for op in CLIENT_OPS:
                client_round(stores, fx, op, 100)
        for r in range(rounds):
            for op in CLIENT_OPS:
                for variant in (REAL, BARE) if r % 2 == 0 else (BARE, REAL):
                    sending(scripts[variant])
                    drain(stores["default"], client)
                    samples[op][variant].append(client_round(stores, fx, op, n))
    finally:
        shell.script_sha, shell.script_source = real_sha, real_source  # type: ignore[assignment]
    return samples


# ---------------------------------------------------------------- 3. memory


class Recorder:
    """Keeps the requests the store performs (as tests/test_round_trips.py does)."""

    def __init__(self, store: SessionStore) -> None:
        self.requests: list[Request] = []
        self._perform = store._perform
        store._perform = self  # type: ignore[method-assign]

    async def __call__(self, request: Request) -> Any:
        self.requests.append(request)
        return await self._perform(request)

    def request_key(self) -> str:
        last = self.requests[-1]
        assert isinstance(last, RunScript)
        return last.keys[6]  # KEYS[7]: the request key


def memory(store: SessionStore, client: redis.Redis, fx: Fixture) -> dict[str, Any]:
    recorder = Recorder(store)
    user = fx.user()
    usage: dict[str, int] = {}
    sid = store.create_session(user, initial_context=fx.context(user))
    usage["create"] = client.memory_usage(recorder.request_key(), samples=0)
    ctx = fx.context(user, sid)
    ctx.last_interaction_summary = "Learner asked for a hint."
    store.update_session_context(sid, user, ctx)
    usage["update"] = client.memory_usage(recorder.request_key(), samples=0)
    role, text, actions = chat_turn(2)
    store.append_message(sid, user, role, text, whiteboard_actions=actions)
    usage["append"] = client.memory_usage(recorder.request_key(), samples=0)
    store.end_session(sid, user)
    usage["end"] = client.memory_usage(recorder.request_key(), samples=0)
    store.delete_session(sid, user)
    usage["delete"] = client.memory_usage(recorder.request_key(), samples=0)
    del store._perform  # the class's again

    # What deleting every request key of this run frees (includes its entry in the expires table).
    pattern = f"{store._core.config.key_prefix}:*:req:*"
    keys = list(client.scan_iter(match=pattern, count=1000))
    before = int(client.info("memory")["used_memory"])
    for batch in chunks(keys, 500):
        client.delete(*batch)
    freed = before - int(client.info("memory")["used_memory"])
    return {"usage": usage, "keys": len(keys), "freed_per_key": freed / max(1, len(keys))}


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Sizes:
    calls: int  # server side: calls per variant and write in a round
    rounds: int
    client_calls: int  # client side: calls per variant and call in a round
    client_rounds: int


@dataclass(frozen=True)
class Results:
    version: str
    on_server: dict[str, dict[str, list[float]]]  # write -> variant -> µs per call of each round
    client: dict[str, dict[str, list[list[float]]]]  # call -> variant -> each round's seconds
    memory: dict[str, Any]
    seconds: float


def report(sizes: Sizes, results: Results) -> str:
    version, on_server, client, mem = (
        results.version,
        results.on_server,
        results.client,
        results.memory,
    )
    n_server, rounds_server = sizes.calls, sizes.rounds
    n_client, rounds_client = sizes.client_calls, sizes.client_rounds
    seconds = results.seconds
    lines = [
        "# What exactly-once writes cost (replay bookkeeping)",
        "",
        f"Redis {version}, {dt.date.today().isoformat()}, generated by `python -m bench.replay` "
        f"(make bench) on this 2-core machine in {seconds:.0f} s. **real**: the scripts as shipped "
        "(`replayed`: one GET of the request key; `remember`: one SET ... PX); **no replay**: the "
        "same scripts with both bodies replaced by no-ops (built from "
        "`redis_sessions.scripts.script_source`). Both are measured in the same run, rounds "
        "alternating (order swapped every round); ratios are real / no replay. Default "
        "StoreConfig (invalidation on, TTL backstop on), realistic context.",
        "",
        "## 1. Server side: µs per EVALSHA (INFO commandstats)",
        "",
        f"{rounds_server} rounds x {n_server} calls per variant and write "
        f"({n_server * rounds_server:,} each), every call on a fresh session with the KEYS/ARGV "
        "the store sends, pipelined, CONFIG RESETSTAT before each round. Medians of the rounds' "
        "usec_per_call (short rounds: a round the machine preempted Redis in is an outlier the "
        "median ignores); the spread is the middle half of the per-round ratios.",
        "",
        "| write | real (µs) | no replay (µs) | extra (µs) | real / no replay | spread |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    extras: dict[str, float] = {}
    ratios: dict[str, float] = {}
    for op, variants in on_server.items():
        real, bare = statistics.median(variants[REAL]), statistics.median(variants[BARE])
        per_round = [a / b for a, b in zip(variants[REAL], variants[BARE], strict=True)]
        extras[op], ratios[op] = real - bare, real / bare
        lines.append(
            f"| {op} | {real:.1f} | {bare:.1f} | {real - bare:+.1f} | {real / bare:.2f}x | "
            f"{middle_half(per_round)} |"
        )
    lines += [
        "",
        "## 2. Client side: latency through SessionStore",
        "",
        f"{rounds_client} rounds x {n_client} calls per variant ({n_client * rounds_client:,} "
        "each), each round on a fresh session; the store sends the no-replay scripts because the "
        "script lookup its driver uses is rebound (see `sending`). Append: chat turns, every other "
        "one with a whiteboard snapshot. Update: the realistic context with one field changed per "
        "call (the default store caches the record and sends only the change), or whole (a store "
        "with cache_size=0). p50/p99 over all calls; the spread is the middle half of the "
        "per-round p50 ratios.",
        "",
        "| call | p50 real (µs) | p50 no replay (µs) | p50 ratio | spread "
        "| p99 real (µs) | p99 no replay (µs) | p99 ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    client_ratios, client_extras, client_bare, round_ratios = [], [], [], []
    p99_ratios: list[float] = []
    for op, variants in client.items():
        real_all = [s * 1e6 for chunk in variants[REAL] for s in chunk]
        bare_all = [s * 1e6 for chunk in variants[BARE] for s in chunk]
        p50 = (pct(real_all, 0.5), pct(bare_all, 0.5))
        p99 = (pct(real_all, 0.99), pct(bare_all, 0.99))
        per_round = [
            pct(a, 0.5) / pct(b, 0.5) for a, b in zip(variants[REAL], variants[BARE], strict=True)
        ]
        client_ratios.append(p50[0] / p50[1])
        client_extras.append(p50[0] - p50[1])
        client_bare.append(p50[1])
        round_ratios += per_round
        p99_ratios.append(p99[0] / p99[1])
        lines.append(
            f"| {op} | {p50[0]:.0f} | {p50[1]:.0f} | {p50[0] / p50[1]:.2f}x | "
            f"{middle_half(per_round)} | {p99[0]:.0f} | {p99[1]:.0f} | "
            f"{p99[0] / p99[1]:.2f}x |"
        )
    usage = mem["usage"]
    alive = int(RATE * WINDOW_S)
    per_key = mem["freed_per_key"]
    lines += [
        "",
        "## 3. Memory: one request key per write, alive for the replay window",
        "",
        "| measure | bytes |",
        "| --- | ---: |",
        *[f"| MEMORY USAGE of the request key of `{op}` | {b} |" for op, b in usage.items()],
        f"| used_memory freed per request key ({mem['keys']:,} of this run deleted at once; "
        f"counts its entry in the expires table, which MEMORY USAGE leaves out) | {per_key:.0f} |",
        "",
        f"At {RATE:,} writes/s with the default {WINDOW_S:.0f} s window, {alive:,} request keys are "
        f"alive at once: {alive * usage['append'] / 2**20:.1f} MiB by MEMORY USAGE of an append's "
        f"key, {alive * per_key / 2**20:.1f} MiB by used_memory freed per key; and Redis expires "
        f"{RATE:,} keys a second.",
        "",
        "## Reading",
        "",
    ]
    cheap, dear = min(ratios, key=ratios.__getitem__), max(ratios, key=ratios.__getitem__)
    weight = max(per_key, usage["append"])
    lines.append(
        "On the server the bookkeeping (a GET of the request key that finds nothing, a SET PX of "
        "the reply, and turning the reply into that string) adds a median "
        f"{statistics.median(extras.values()):.1f} µs per write, {min(extras.values()):+.1f} to "
        f"{max(extras.values()):+.1f} µs across the six rows: {ratios[cheap]:.2f}x ({cheap}) to "
        f"{ratios[dear]:.2f}x ({dear}) the time of the script without it. Through the client, "
        "where the round trip and the store's own work come on top, the extra at p50 is "
        f"{min(client_extras):+.0f} to {max(client_extras):+.0f} µs on calls of "
        f"{min(client_bare):.0f} µs or more: ratios {min(client_ratios):.2f}x-"
        f"{max(client_ratios):.2f}x (the middle half of the per-round ratios: "
        f"{middle_half(round_ratios)}), and {min(p99_ratios):.2f}x-{max(p99_ratios):.2f}x at p99. "
        f"The lasting cost is memory: about {weight:.0f} bytes per write, kept for the window, so "
        f"{alive * weight / 2**20:.0f} MiB at a sustained {RATE:,} writes/s. It grows with the "
        "write rate times `StoreConfig.replay_window`: a shorter window (it must still outlast "
        "the client's whole retry budget) shrinks it in proportion."
    )
    lines.append("")
    return "\n".join(lines)


def cleanup(client: redis.Redis, prefix: str) -> None:
    for batch in chunks(list(client.scan_iter(match=f"{prefix}:*", count=1000)), 500):
        client.delete(*batch)


def run(url: str, sizes: Sizes) -> str:
    started = time.perf_counter()
    prefix = f"brep{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix))
    cache_off = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, cache_size=0))
    try:
        scripts = sources()
        for variant in scripts.values():
            for text in variant.values():
                client.script_load(text)
        fx = Fixture(store)
        fx.sessions(1)  # the store subscribes to invalidations: from now on it caches
        on_server = server_side(fx, client, scripts, n=sizes.calls, rounds=sizes.rounds)
        stores = {"default": store, "cache off": cache_off}
        latency = client_side(
            stores, client, fx, scripts, n=sizes.client_calls, rounds=sizes.client_rounds
        )
        mem = memory(store, client, fx)
        version = client.info("server")["redis_version"]
    finally:
        store.close()
        cache_off.close()
        cleanup(client, prefix)
        client.close()
    results = Results(version, on_server, latency, mem, time.perf_counter() - started)
    return report(sizes, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="Redis URL (default: a throwaway embedded redis-server)")
    parser.add_argument("--calls", type=int, default=50, help="server side: calls per round")
    parser.add_argument("--rounds", type=int, default=40, help="server side: rounds")
    parser.add_argument("--client-calls", type=int, default=50, help="client side: per round")
    parser.add_argument("--client-rounds", type=int, default=60, help="client side: rounds")
    args = parser.parse_args()
    sizes = Sizes(args.calls, args.rounds, args.client_calls, args.client_rounds)
    with server(args.url) as url:
        text = run(url, sizes)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
