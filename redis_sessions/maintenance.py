"""Expiry sweeps and consistency checks, as core operations (generators of Redis requests, no I/O).

A sweep visits the expiry indexes of all 16384 hash slots (pipelined, a fixed cost whatever the
number of sessions), picks at most ``batch_size`` expired candidates per slot and index, and deletes
them with one script per slot that checks each candidate's activity again. Its cost grows with the
number of expired sessions, not with live ones. Each session is deleted atomically, so a sweep killed
at any point leaves nothing half-deleted, and two sweeps running at once never delete a session twice
nor one that was touched.

A check SCANs the store in batches (never the whole key space in memory) and confirms every
inconsistency it suspects with a script that looks again atomically, so a write racing the check is
not reported; with ``repair`` the same script fixes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec

from . import codec
from .exceptions import InvalidInput
from .keys import SLOTS, KeyInfo
from .requests import Arg, Command, Op, Pipeline, RunScript, ScanBatch
from .scripts import ScriptName

if TYPE_CHECKING:
    from .core import StoreCore

logger = logging.getLogger("redis_sessions")

SLOT_CHUNK: Final = 512  # slots whose indexes one pipeline reads (2 commands each)
Progress = Callable[[int, int], None]


class SweepReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one sweep did. ``scanned`` candidates were examined; ``deleted`` of them had expired
    (in a dry run: would be deleted); ``kept`` had been touched since they were picked."""

    scanned: int
    deleted: int
    kept: int
    malformed: int
    duration_seconds: float
    dry_run: bool
    max_age: dt.timedelta
    ended_max_age: dt.timedelta
    now: dt.datetime


PROBLEMS: Final = {
    "unindexed": "records without an index entry",
    "no-expiry": "records without an expiry entry",
    "dangling-index": "index entries without a record",
    "orphan-parts": "messages or snapshots without a record",
    "dangling-expiry": "expiry entries without a record",
}


class CheckReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``check`` found. ``problems`` counts confirmed inconsistencies by kind (see PROBLEMS);
    ``repaired`` those it fixed; ``examples`` describes the first few."""

    scanned_keys: int
    problems: dict[str, int]
    repaired: dict[str, int]
    unknown_keys: int
    examples: list[str]

    @property
    def unrepaired(self) -> int:
        return sum(self.problems.values()) - sum(self.repaired.values())


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sweep(
    core: StoreCore,
    *,
    max_age: dt.timedelta | None,
    now: dt.datetime | None,
    batch_size: int,
    dry_run: bool,
    progress: Progress | None,
) -> Op[SweepReport]:
    config = core.config
    if max_age is None:
        max_age = config.max_age
    if not isinstance(max_age, dt.timedelta) or max_age <= dt.timedelta(0):
        raise InvalidInput(f"max_age must be a positive timedelta, got {max_age!r}")
    ended_age = config.ended_max_age if config.ended_max_age is not None else max_age
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be an int >= 1, got {batch_size!r}")
    moment = codec.check_aware(now) if now is not None else core.now()
    live_cutoff = codec.epoch_ms(moment - max_age)
    ended_cutoff = codec.epoch_ms(moment - ended_age)
    started = time.perf_counter()
    scanned = deleted = kept = malformed = 0
    # slot -> offsets into its (live, ended) indexes; a real sweep removes what it picks, so it
    # reads from 0 again; a dry run removes nothing and pages on.
    pending: dict[int, tuple[int, int]] = dict.fromkeys(range(SLOTS), (0, 0))
    done = 0
    total = SLOTS
    while pending:
        again: dict[int, tuple[int, int]] = {}
        for chunk in _chunks(sorted(pending), SLOT_CHUNK):
            commands: list[tuple[Arg, ...]] = []
            for slot in chunk:
                live_key, ended_key = core.keys.slot_expiry(slot)
                live_off, ended_off = pending[slot]
                commands.append(
                    (
                        "ZRANGEBYSCORE",
                        live_key,
                        "-inf",
                        f"({live_cutoff}",
                        "LIMIT",
                        live_off,
                        batch_size,
                    )
                )
                commands.append(
                    (
                        "ZRANGEBYSCORE",
                        ended_key,
                        "-inf",
                        f"({ended_cutoff}",
                        "LIMIT",
                        ended_off,
                        batch_size,
                    )
                )
            replies = yield Pipeline(tuple(commands))
            for position, slot in enumerate(chunk):
                live_found, ended_found = replies[2 * position], replies[2 * position + 1]
                if not live_found and not ended_found:
                    continue
                result = yield from _sweep_slot(
                    core,
                    slot,
                    members=[*live_found, *ended_found],
                    live_cutoff=live_cutoff,
                    ended_cutoff=ended_cutoff,
                    dry_run=dry_run,
                )
                scanned += len(live_found) + len(ended_found)
                deleted += result[0]
                kept += result[1]
                malformed += result[2]
                full = len(live_found) == batch_size or len(ended_found) == batch_size
                if full and dry_run:
                    live_off, ended_off = pending[slot]
                    again[slot] = (live_off + len(live_found), ended_off + len(ended_found))
                elif full and result[0] + result[2] > 0:  # progress made: there may be more
                    again[slot] = (0, 0)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        pending = again
        total += len(again)
    return SweepReport(
        scanned=scanned,
        deleted=deleted,
        kept=kept,
        malformed=malformed,
        duration_seconds=time.perf_counter() - started,
        dry_run=dry_run,
        max_age=max_age,
        ended_max_age=ended_age,
        now=moment,
    )


def _sweep_slot(
    core: StoreCore,
    slot: int,
    *,
    members: list[bytes],
    live_cutoff: int,
    ended_cutoff: int,
    dry_run: bool,
) -> Op[tuple[int, int, int]]:
    """(deleted, kept, malformed) for one slot's candidates; one script (two with bad entries)."""
    live_key, ended_key = core.keys.slot_expiry(slot)
    keys: list[str] = [live_key, ended_key]
    now_ms = codec.epoch_ms(core.now())
    args: list[Arg] = [live_cutoff, ended_cutoff, "0" if dry_run else "1", core.channel, now_ms]
    owners: dict[bytes, tuple[str, str]] = {}
    bad: list[bytes] = []
    for member in members:
        try:
            user_id, session_id = core.keys.parse_expiry_member(member)
        except (ValueError, UnicodeDecodeError):
            bad.append(member)
            continue
        owners[member] = (user_id, session_id)
        keys.extend([*core.keys.session_keys(user_id, session_id), core.keys.index(user_id)])
        args.extend([member, session_id])
    if bad:
        logger.warning(
            "removing %d malformed entries from %s / %s: %r", len(bad), live_key, ended_key, bad[:5]
        )
        if not dry_run:
            yield Command(("ZREM", live_key, *bad))
            yield Command(("ZREM", ended_key, *bad))
    if not owners:
        return 0, 0, len(bad)
    expired, kept = yield RunScript(ScriptName.SWEEP, keys, args)
    if not dry_run:
        for member in expired:
            core.cache.evict(owners[member])
    return len(expired), int(kept), len(bad)


def check(
    core: StoreCore, *, repair: bool, count: int, progress: Progress | None
) -> Op[CheckReport]:
    keys = core.keys
    problems: dict[str, int] = dict.fromkeys(PROBLEMS, 0)
    repaired: dict[str, int] = dict.fromkeys(PROBLEMS, 0)
    examples: list[str] = []
    scanned = unknown = 0
    cursor: Any = None
    while True:
        cursor, batch = yield ScanBatch(keys.pattern(), count, cursor)
        scanned += len(batch)
        records, parts, suspects = [], [], []
        for key in batch:
            info = keys.classify(key)
            if info is None:
                if key.decode(errors="replace") != keys.sweep_lock():
                    unknown += 1
                    if len(examples) < 20:
                        examples.append(f"unknown key {key!r}")
            elif info.kind == "record":
                records.append(info)
            elif info.kind in ("msgs", "wb"):
                parts.append(info)
            elif info.kind == "index":
                suspects += yield from _check_index(core, key, info, count)
            elif info.kind in ("exp", "ended"):
                suspects += yield from _check_expiry(core, key, count)
        suspects += yield from _check_records(core, records)
        suspects += yield from _check_parts(core, parts)
        for problem, user_id, session_id, score in suspects:
            args: list[Arg] = [
                problem,
                "1" if repair else "0",
                session_id,
                keys.expiry_member(user_id, session_id),
                score,
                core.channel,
                codec.epoch_ms(core.now()),
            ]
            found = yield RunScript(
                ScriptName.REPAIR, core.keys.session_write_keys(user_id, session_id), args
            )
            if not found:
                continue  # a write resolved it meanwhile, or an earlier repair did
            problems[problem] += 1
            if repair:
                repaired[problem] += 1
            if len(examples) < 20:
                examples.append(
                    f"{PROBLEMS[problem]}: user {user_id!r}, session {session_id}"
                    + (" (repaired)" if repair else "")
                )
        if progress is not None:
            progress(scanned, 0)
        if cursor is None:
            break
    return CheckReport(
        scanned_keys=scanned,
        problems={k: v for k, v in problems.items() if v},
        repaired={k: v for k, v in repaired.items() if v},
        unknown_keys=unknown,
        examples=examples,
    )


Suspect = tuple[str, str, str, int]  # (problem, user_id, session_id, activity score for a repair)


def _sessions_of(infos: list[KeyInfo]) -> list[tuple[str, str]]:
    """(user_id, session_id) of keys that belong to one session (record, msgs, wb)."""
    return [(i.user_id, i.session_id) for i in infos if i.user_id and i.session_id]


def _check_records(core: StoreCore, records: list[KeyInfo]) -> Op[list[Suspect]]:
    sessions = _sessions_of(records)
    if not sessions:
        return []
    commands: list[tuple[Arg, ...]] = []
    for user_id, session_id in sessions:
        member = core.keys.expiry_member(user_id, session_id)
        live_key, ended_key = core.keys.expiry(user_id)
        commands += [
            ("ZSCORE", core.keys.index(user_id), session_id),
            ("ZSCORE", live_key, member),
            ("ZSCORE", ended_key, member),
            ("HGET", core.keys.session(user_id, session_id), "updated_at"),
        ]
    replies = yield Pipeline(tuple(commands))
    out: list[Suspect] = []
    for i, (user_id, session_id) in enumerate(sessions):
        indexed, live, ended, updated = replies[4 * i : 4 * i + 4]
        score = _score(updated, core)
        if indexed is None:
            out.append(("unindexed", user_id, session_id, score))
        if live is None and ended is None:
            out.append(("no-expiry", user_id, session_id, score))
    return out


def _check_parts(core: StoreCore, parts: list[KeyInfo]) -> Op[list[Suspect]]:
    return (yield from _without_record(core, _sessions_of(parts), "orphan-parts"))


def _without_record(
    core: StoreCore, sessions: list[tuple[str, str]], kind: str
) -> Op[list[Suspect]]:
    """The sessions whose record does not exist, as suspects of ``kind``: one pipelined trip."""
    if not sessions:
        return []
    replies = yield Pipeline(tuple(("EXISTS", core.keys.session(u, s)) for u, s in sessions))
    return [(kind, u, s, 0) for (u, s), exists in zip(sessions, replies, strict=True) if not exists]


def _zscan(key: bytes, count: int) -> Op[list[bytes]]:
    """Members of a sorted set, read in ZSCAN batches of about ``count``."""
    members: list[bytes] = []
    cursor: Any = 0
    while True:
        cursor, items = yield Command(("ZSCAN", key, cursor, "COUNT", count))
        members.extend(member for member, _ in items)
        if int(cursor) == 0:
            return members


def _check_index(core: StoreCore, key: bytes, info: KeyInfo, count: int) -> Op[list[Suspect]]:
    assert info.user_id is not None
    user_id = info.user_id
    session_ids = [m.decode(errors="replace") for m in (yield from _zscan(key, count))]
    if not session_ids:
        return []
    replies = yield Pipeline(
        tuple(("EXISTS", core.keys.session(user_id, sid)) for sid in session_ids)
    )
    return [
        ("dangling-index", user_id, sid, 0)
        for sid, exists in zip(session_ids, replies, strict=True)
        if not exists
    ]


def _check_expiry(core: StoreCore, key: bytes, count: int) -> Op[list[Suspect]]:
    owners = []
    for member in (yield from _zscan(key, count)):
        try:
            owners.append(core.keys.parse_expiry_member(member))
        except (ValueError, UnicodeDecodeError):
            logger.warning("malformed entry %r in %r (the next sweep removes it)", member, key)
    return (yield from _without_record(core, owners, "dangling-expiry"))


def _score(updated: bytes | None, core: StoreCore) -> int:
    """The activity score a repair gives a record: its updated_at, else now."""
    try:
        if updated is not None:
            return codec.epoch_ms(codec.parse_time(updated))
    except ValueError:
        pass
    return codec.epoch_ms(core.now())
