"""Key-layout and encoding measurements behind the record format (``make bench``).

Compares the store's layout (one hash field per non-default top-level context field) with the
obvious alternative (one hash field holding the whole lean JSON), on a realistic context, on a
throwaway redis-server started here (or ``--url``):

- bytes of the lean record versus the full context with 50 turns of history and their snapshots;
- Redis memory per record (MEMORY USAGE);
- CPU per encode (write path) and per decode (read path), as ratios against the single-field layout
  measured in the same run, interleaved to share the machine's noise;
- reading one field alone (the listing's session_goal) both ways.

Writes bench/layout-results.md. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import redis

from bench.common import with_history
from redis_sessions import codec, write_codec
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.samples import realistic_context

OUT = Path(__file__).with_name("layout-results.md")
_decoder = msgspec.json.Decoder(codec.TutorContext)


def per_call_us(fn: Callable[[], object], *, rounds: int = 7, number: int = 2000) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return samples


def interleaved(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Median microseconds per call of a and b, measured in alternating rounds."""
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(7):
        sa += per_call_us(a, rounds=1)
        sb += per_call_us(b, rounds=1)
    return statistics.median(sa), statistics.median(sb)


def run(client: redis.Redis, version: str) -> str:
    user, sid = "bench-user", str(uuid.uuid4())
    ctx = realistic_context(user, sid)
    lean_struct = msgspec.structs.replace(ctx, history=[], whiteboard_history=[])
    full_bytes = len(msgspec.json.encode(with_history(ctx)))

    fields = write_codec.encode_context(ctx, user_id=user, session_id=sid, max_bytes=1 << 20)
    meta = write_codec.record_fields(
        user_id=user, session_id=sid, now=codec.utc_now(), context_fields=fields
    )
    single_json = msgspec.json.encode(lean_struct)
    meta_only = {k: v for k, v in meta.items() if not k.startswith(b"c:")}

    per_field_key, single_key = f"bench:{{x}}:per-field:{sid}", f"bench:{{x}}:single:{sid}"
    client.delete(per_field_key, single_key)
    client.hset(per_field_key, mapping=meta)  # type: ignore[arg-type]
    client.hset(single_key, mapping={**meta_only, b"context": single_json})  # type: ignore[arg-type]
    stored = client.hgetall(per_field_key)
    lean_bytes = len(codec.lean_json(stored))
    mem_per_field = client.memory_usage(per_field_key, samples=0)
    mem_single = client.memory_usage(single_key, samples=0)
    single_stored = client.hgetall(single_key)

    def encode_per_field() -> object:
        return write_codec.encode_context(ctx, user_id=user, session_id=sid, max_bytes=1 << 20)

    def encode_single() -> object:
        blob = msgspec.json.encode(msgspec.structs.replace(ctx, history=[], whiteboard_history=[]))
        _decoder.decode(blob)  # the same type check the store does before writing
        return blob

    def decode_per_field() -> object:
        return codec.decode_context(codec.lean_json(stored))

    def decode_single() -> object:
        return _decoder.decode(single_stored[b"context"])

    enc_pf, enc_single = interleaved(encode_per_field, encode_single)
    dec_pf, dec_single = interleaved(decode_per_field, decode_single)
    goal_pf, goal_single = interleaved(
        lambda: client.hget(per_field_key, "c:session_goal"),
        lambda: _decoder.decode(client.hget(single_key, "context") or b"").session_goal,
    )
    client.delete(per_field_key, single_key)

    rows = [
        ("lean record (bytes of lean JSON)", f"{lean_bytes:,}", ""),
        ("full context with 50 turns + 25 snapshots (bytes)", f"{full_bytes:,}", ""),
        ("lean / full", f"{lean_bytes / full_bytes:.1%}", "target <= 30%"),
        (
            "context fields stored (non-default)",
            f"{sum(1 for k in fields if k.startswith(b'c:'))}",
            "of 23 lean fields",
        ),
        (
            "MEMORY USAGE per-field record (bytes)",
            f"{mem_per_field:,}",
            f"{mem_per_field / mem_single:.2f}x single-field",
        ),
        ("MEMORY USAGE single-field record (bytes)", f"{mem_single:,}", "baseline"),
        (
            "encode for write, per-field (us)",
            f"{enc_pf:.1f}",
            f"{enc_pf / enc_single:.2f}x single-field",
        ),
        ("encode for write, single-field (us)", f"{enc_single:.1f}", "baseline"),
        (
            "decode on read, per-field (us)",
            f"{dec_pf:.1f}",
            f"{dec_pf / dec_single:.2f}x single-field",
        ),
        ("decode on read, single-field (us)", f"{dec_single:.1f}", "baseline"),
        (
            "read session_goal alone, per-field (us, incl. round trip)",
            f"{goal_pf:.1f}",
            f"{goal_pf / goal_single:.2f}x single-field",
        ),
        (
            "read session_goal alone, single-field (us, incl. round trip)",
            f"{goal_single:.1f}",
            "baseline",
        ),
    ]
    lines = [
        "# Record layout measurements",
        "",
        f"Redis {version}, realistic context (lesson plan with 4 sections, 30 concepts, a quiz question).",
        "Generated by `make bench` (bench/layout.py); ratios are against the single-field layout measured",
        "in the same run, interleaved. Medians of 7 rounds.",
        "",
        "| measure | value | note |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="Redis URL (default: a throwaway embedded redis-server)")
    args = parser.parse_args()
    if args.url:
        client = redis.Redis.from_url(args.url)
        report = run(client, client.info("server")["redis_version"])
    else:
        with EmbeddedRedis() as server:
            client = redis.Redis.from_url(server.url)
            report = run(client, server.version())
            client.close()
    OUT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
