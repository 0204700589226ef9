"""Where the time of the store's operations goes: pyinstrument, on a real redis-server.

    python -m bench.profile [--url URL] [--ops N]

For each operation bench/results.md compares with the floor, profiles N calls of the store with
pyinstrument and splits the time into: the round trip (redis-py sending, Redis answering,
redis-py parsing: the floor's own work), the store's core (encoding, validating, decoding,
bookkeeping), and the driver. Then lists the core's costliest functions. Sampling profilers slow
Python code more than C code, so the shares are indicative; the second table measures the core's
cost without a profiler, hot (alone in a loop) and in situ (interleaved with round trips, as in a
real app). Writes bench/profile-results.md. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from pyinstrument import Profiler
from pyinstrument.frame import Frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import server
from bench.run import (
    _without_base,
    alternate,
    applies,
    first_request,
    outcome_recorded,
    replay,
)
from redis_sessions import SessionStore, StoreConfig
from redis_sessions._transport import Sender
from redis_sessions.requests import RunScript
from redis_sessions.samples import chat_turn, realistic_context
from redis_sessions.scripts import ScriptName, script_source

HERE = Path(__file__).resolve().parent
USER = "profile-user"
#: functions of the core whose time is reported (outermost call only)
WATCH = (
    "encode_context",
    "context_change",
    "decode_context",
    "session_parts",
    "encode_message",
    "decode_messages",
    "decode_snapshots",
    "record_fields",
    "new_session_id",
    "__enter__",
    "__exit__",
    "now",
    "_write_args",
)


def walk(frame: Frame, out: dict[str, float], inside: str | None = None) -> None:
    """Add each frame's time to ``out`` under the part it belongs to."""
    name = frame.function or ""
    part = inside
    if inside is None:
        if name == "_perform":
            out["round trip (redis-py + Redis)"] = out.get("round trip (redis-py + Redis)", 0.0)
            out["round trip (redis-py + Redis)"] += frame.time
            return
        if (
            frame.file_path
            and "redis_sessions" in frame.file_path
            and name.startswith(
                (
                    "create_session",
                    "get_session",
                    "update_session",
                    "append_message",
                    "delete_session",
                )
            )
        ):
            out["store core"] = out.get("store core", 0.0) + frame.time
            part = "core"
    elif name in WATCH:
        key = f"core: {name}"
        out[key] = out.get(key, 0.0) + frame.time
        return
    for child in frame.children:
        walk(child, out, part)


def profile(call: Callable[[], Any], ops: int) -> tuple[float, dict[str, float]]:
    for _ in range(200):
        call()
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(ops):
        call()
    profiler.stop()
    root = profiler.last_session.root_frame()
    assert root is not None
    parts: dict[str, float] = {}
    walk(root, parts)
    return root.time / ops, parts


def hot_and_in_situ(
    floor: Callable[[], Any], core: Callable[[], Any], rounds: int = 15, n: int = 400
) -> tuple[float, float]:
    """µs of ``core`` alone in a loop, and what it adds to the floor's p50 when interleaved."""
    hot = min(timeit.repeat(core, number=2000, repeat=5)) / 2000 * 1e6
    both = {"floor": floor, "floor+core": lambda: (core(), floor())}
    p50s: dict[str, list[float]] = {k: [] for k in both}
    for _ in range(rounds):
        for name, call in both.items():
            lat = []
            for _ in range(n):
                start = time.perf_counter()
                call()
                lat.append(time.perf_counter() - start)
            p50s[name].append(statistics.median(lat) * 1e6)
    added = statistics.median(p50s["floor+core"]) - statistics.median(p50s["floor"])
    return hot, added


def _additions() -> int:
    """A control for the in-situ cost: pure interpreter work, no memory touched but a few ints."""
    total = 0
    for i in range(1000):
        total += i
    return total


def canned(store: SessionStore, op: Callable[[], Any], reply: Any) -> Callable[[], Any]:
    """The store's whole work for ``op`` (core and driver), with Redis answering ``reply`` at once."""

    class Instant:
        def evalsha(self, *args: Any) -> Any:
            return reply

        def execute_command(self, *args: Any) -> Any:
            return reply

    real, real_sender = store._client, store._sender
    instant = Instant()
    instant_sender = Sender(instant, is_async=False)

    def call() -> Any:
        store._client, store._sender = instant, instant_sender
        try:
            return op()
        finally:
            store._client, store._sender = real, real_sender

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url")
    parser.add_argument("--ops", type=int, default=4000)
    args = parser.parse_args()
    prefix = f"prof{uuid.uuid4().hex[:6]}"
    with server(args.url) as url:
        raw = redis.Redis.from_url(url)
        shas = {name: raw.script_load(script_source(name)) for name in ScriptName}
        config = StoreConfig(key_prefix=prefix, invalidation=False)
        store = SessionStore.from_url(url, config=config)
        nocache = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, cache_size=0))
        ctx = realistic_context(USER)
        sid = store.create_session(USER, initial_context=ctx)
        a = store.get_session_context(sid, USER)
        assert a is not None
        b = outcome_recorded(a)
        role, text, actions = chat_turn(2)
        doomed = [store.create_session(USER, initial_context=ctx) for _ in range(args.ops + 400)]
        scenarios: dict[str, Callable[[], Any]] = {
            "get (cache miss)": lambda: nocache.get_session_context(sid, USER),
            "create": lambda: store.create_session(USER, initial_context=ctx),
            "update": alternate(lambda c: store.update_session_context(sid, USER, c), a, b),
            "append message": lambda: store.append_message(
                sid, USER, role, text, whiteboard_actions=actions
            ),
            "get with history=50": lambda: store.get_session_context(sid, USER, history=50),
            "delete": lambda: store.delete_session(doomed.pop(), USER),
        }
        lines = [
            "# Where the time goes (pyinstrument)",
            "",
            f"Generated by `python -m bench.profile` ({args.ops:,} calls per operation, "
            "pyinstrument 0.1 ms sampling, Redis on loopback, invalidation off). Per-call times "
            "include the profiler's overhead, which is larger for Python than for C code.",
            "",
            "| operation | µs per call (profiled) | part | share |",
            "| --- | ---: | --- | ---: |",
        ]
        for name, call in scenarios.items():
            per_call, parts = profile(call, args.ops)
            total = per_call * args.ops
            ordered = sorted(parts.items(), key=lambda kv: -kv[1])
            accounted = sum(v for k, v in parts.items() if not k.startswith("core:"))
            ordered.append(("driver and the rest", total - accounted))
            for i, (part, seconds) in enumerate(ordered):
                head = f"| {name} | {per_call * 1e6:.1f} |" if i == 0 else "| | |"
                lines.append(f"{head} {part} | {seconds / total:.0%} |")
            print(name, f"{per_call * 1e6:.1f} µs", flush=True)

        # the core's cost without a profiler: hot, and in situ (interleaved with round trips)
        lines += [
            "",
            "## The store's own work, without a profiler",
            "",
            "The store's whole work per call with Redis answering at once (a canned reply): alone in "
            "a loop (hot), and added to the floor's p50 when each call is followed by the floor's "
            "round trip (in situ, as in an app). The last row is a control: a loop of integer "
            "additions that touches no memory. It slows down after a round trip too, less than the "
            "store's work: part of the gap comes with any code that runs right after a wait (the "
            "CPU waking: its clock, the hypervisor's scheduling of an idle vCPU), the rest with the "
            "memory the store's work touches (cold caches).",
            "",
            "| operation | hot µs | added to the floor's p50, µs | in situ / hot |",
            "| --- | ---: | ---: | ---: |",
        ]
        get_reply = raw.hgetall(store.keyspace.session(USER, sid))
        get_floor = replay(raw, shas, first_request(nocache._core.get_session(sid, USER)))
        store.get_session_context(sid, USER)  # cached again
        request = first_request(store._core.update_session_context(sid, USER, b))
        assert isinstance(request, RunScript)
        store.get_session_context(sid, USER)
        update_floor = applies(replay(raw, shas, _without_base(request)))  # as bench.run's floor
        update_reply = [1, 2, 0, 0, b""]  # as update.lua replies: no damage met
        pairs = {
            "get (cache miss)": (
                get_floor,
                canned(nocache, lambda: nocache.get_session_context(sid, USER), get_reply),
            ),
            "update": (
                update_floor,
                canned(
                    store,
                    alternate(lambda c: store.update_session_context(sid, USER, c), a, b),
                    update_reply,
                ),
            ),
            "control: integer additions": (get_floor, _additions),
        }
        for name, (floor, core) in pairs.items():
            hot, added = hot_and_in_situ(floor, core)
            lines.append(f"| {name} | {hot:.1f} | {added:.1f} | {added / hot:.1f}x |")
            print(name, f"hot {hot:.1f} µs, in situ {added:.1f} µs", flush=True)
        store.close()
        nocache.close()
        for key in raw.scan_iter(match=f"{prefix}:*", count=1000):
            raw.delete(key)
        raw.close()
    lines.append("")
    (HERE / "profile-results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
