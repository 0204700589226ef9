"""Expiry sweeps, as core operations (generators of Redis requests, no I/O).

A sweep visits the expiry indexes of all 16384 hash slots (pipelined, a fixed cost whatever the
number of sessions), picks at most ``batch_size`` expired candidates per slot and index, and deletes
them with one script per slot that checks each candidate's activity again. Its cost grows with the
number of expired sessions, not with live ones. Each session is deleted atomically, so a sweep killed
at any point leaves nothing half-deleted, and two sweeps running at once never delete a session twice
nor one that was touched.

The consistency check lives in :mod:`redis_sessions.check`; ``check``, ``CheckReport`` and
``PROBLEMS`` are re-exported here for the callers that know them from this module.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import msgspec

from . import codec
from .check import PROBLEMS, CheckReport, check
from .exceptions import InvalidInput
from .keys import SLOTS
from .requests import Arg, Command, Op, Pipeline, RunScript
from .scripts import ScriptName

if TYPE_CHECKING:
    from .core import StoreCore

__all__ = ["PROBLEMS", "CheckReport", "Progress", "SweepReport", "check", "sweep"]

logger: logging.Logger = logging.getLogger("redis_sessions.maintenance")

SLOT_CHUNK: Final = 512  # slots whose indexes one pipeline reads (2 commands each)
Progress = Callable[[int, int], None]


class SweepReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one sweep did. ``scanned`` candidates were examined; ``deleted`` of them had expired
    (in a dry run: would be deleted); ``kept`` had been touched since they were picked; ``batches``
    deleting scripts ran (one per slot holding candidates, per ``batch_size`` of them)."""

    scanned: int
    deleted: int
    kept: int
    malformed: int
    duration_seconds: float
    dry_run: bool
    max_age: dt.timedelta
    ended_max_age: dt.timedelta
    now: dt.datetime
    batches: int = 0


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
    """The core operation behind ``SessionStore.cleanup_expired_sessions`` (see its documentation)."""
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
    scanned = deleted = kept = malformed = batches = 0
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
                batches += 1
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
        batches=batches,
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
            "removing %d malformed entries from %s / %s: %r",
            len(bad),
            live_key,
            ended_key,
            bad[:5],
            extra={"event": "malformed_expiry_entries", "key": live_key, "count": len(bad)},
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
