"""Server-side cost of each operation: Redis's own µs per call, from ``INFO commandstats``.

    python -m bench.server_cost [--url URL] [--ops N]

For each operation, the statistics are reset (``CONFIG RESETSTAT``), N calls are made, and the
µs Redis spent in every command (a script's ``EVALSHA`` includes the commands it runs) are added
up and divided by N. The same for the pydantic+JSON store's ``MULTI``/``EXEC`` of the same writes.
This is the time the server is busy per operation: what bounds throughput when many clients
share one Redis. Used by bench/run.py (the table in bench/results.md); runs alone too.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import server
from redis_sessions import SessionStore, StoreConfig
from redis_sessions.samples import chat_turn, realistic_context

USER = "cost-user"


def server_us(client: redis.Redis, call: Callable[[], Any], ops: int) -> tuple[float, str]:
    """(µs of server time per call, which commands took it) for ``ops`` calls of ``call``."""
    client.config_resetstat()
    for _ in range(ops):
        call()
    stats: dict[str, Any] = client.info("commandstats")
    spent: dict[str, float] = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command.startswith(("config", "info", "ping", "hello", "client", "script")):
            continue
        spent[command] = float(row["usec"]) / ops
    # a script's or a transaction's time includes the commands it ran (counted again on their
    # own rows): only the outer ones add up
    outer = [c for c in spent if c in ("evalsha", "eval", "exec", "multi")]
    total = sum(spent[c] for c in outer) if outer else sum(spent.values())
    shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
    return total, shown


def operations(url: str, prefix: str) -> dict[str, dict[str, Callable[[], Any]]]:
    """Each operation as the store does it (``ours``) and as the pydantic+JSON store does it."""
    from bench.run import PydanticStore, alternate, outcome_recorded
    from tests import reference_models as ref

    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, invalidation=False))
    uncached = SessionStore.from_url(
        url, config=StoreConfig(key_prefix=prefix, cache_size=0, invalidation=False)
    )
    pyd = PydanticStore(redis.Redis.from_url(url), prefix + "p")
    ctx = realistic_context(USER)
    pctx = ref.TutorContext.model_validate_json(msgspec.json.encode(ctx))
    sid = store.create_session(USER, initial_context=ctx)
    psid = pyd.create(USER, pctx)
    a = store.get_session_context(sid, USER)
    assert a is not None
    b = outcome_recorded(a)
    pb = ref.TutorContext.model_validate_json(msgspec.json.encode(b))
    role, text, actions = chat_turn(2)
    doomed: list[Any] = []
    pdoomed: list[str] = []

    def ours_delete() -> None:
        store.delete_session(doomed.pop(), USER)

    def prepare_deletes(n: int) -> None:
        for _ in range(n):
            s = store.create_session(USER, initial_context=ctx)
            for turn in range(1, 21):
                store.append_message(s, USER, "user", f"turn {turn}", whiteboard_actions=actions)
            doomed.append(s)
            p = pyd.create(USER, pctx)
            for _turn in range(20):
                pyd.append(p, "user", "turn", actions)
            pdoomed.append(p)

    return {
        "create": {
            "ours": lambda: store.create_session(USER, initial_context=ctx),
            "pydantic+JSON": lambda: pyd.create(USER, pctx),
        },
        "update (a change)": {
            "ours": alternate(lambda c: store.update_session_context(sid, USER, c), a, b),
            "pydantic+JSON": alternate(lambda c: pyd.update(USER, psid, c), pctx, pb),
        },
        "append message": {
            "ours": lambda: store.append_message(sid, USER, role, text, whiteboard_actions=actions),
            "pydantic+JSON": lambda: pyd.append(psid, role, text, actions),
        },
        "get (cache miss)": {
            "ours": lambda: uncached.get_session_context(sid, USER),
            "pydantic+JSON": lambda: pyd.get(psid),
        },
        "delete (20 messages)": {
            "ours": ours_delete,
            "pydantic+JSON": lambda: pyd.delete(USER, pdoomed.pop()),
            "_prepare": prepare_deletes,  # type: ignore[dict-item]
        },
        # what a script pays to take in its arguments before a line of it runs: Lua copies each
        # into its heap (and its garbage collector then works in proportion)
        "a script that only returns 1": argument_costs(redis.Redis.from_url(url)),
    }


def argument_costs(client: redis.Redis) -> dict[str, Callable[[], Any]]:
    """EVALSHA of ``return 1`` with one argument of 200 B, 4.5 KB (an update's changed user
    model) and 40 KB: the script's cost for its arguments alone."""
    sha = client.script_load("return 1")

    def call(size: int) -> Callable[[], Any]:
        argument = b"x" * size
        return lambda: client.evalsha(sha, 0, argument)

    return {
        "one argument of 200 B": call(200),
        "one of 4.5 KB": call(4500),
        "one of 40 KB": call(40_000),
    }


def measure(url: str, ops: int) -> dict[str, dict[str, tuple[float, str]]]:
    client = redis.Redis.from_url(url)
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for name, variants in operations(url, f"cost{uuid.uuid4().hex[:6]}").items():
        prepare = variants.pop("_prepare", None)
        if prepare is not None:
            prepare(ops)
        for call in variants.values():  # warm: scripts loaded
            if prepare is None:
                call()
        if prepare is not None:
            prepare(1)
        out[name] = {variant: server_us(client, call, ops) for variant, call in variants.items()}
    return out


def table(results: dict[str, dict[str, tuple[float, str]]]) -> list[str]:
    lines = [
        "| operation | variant | server µs per call | of which |",
        "| --- | --- | ---: | --- |",
    ]
    for name, variants in results.items():
        for variant, (total, shown) in variants.items():
            lines.append(f"| {name} | {variant} | {total:.1f} | {shown} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--ops", type=int, default=500)
    args = parser.parse_args()
    with server(args.url) as url:
        print("\n".join(table(measure(url, args.ops))))


if __name__ == "__main__":
    main()
