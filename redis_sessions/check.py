"""The consistency check, as a core operation (a generator of Redis requests, no I/O).

A check SCANs the store in batches (never the whole key space in memory) and confirms every
inconsistency it suspects with a script that looks again atomically, so a write racing the check is
not reported; with ``repair`` the same script fixes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import msgspec

from . import codec
from .keys import KeyInfo
from .requests import Arg, Command, Op, Pipeline, RunScript, ScanBatch
from .scripts import ScriptName

if TYPE_CHECKING:
    from .core import StoreCore
    from .maintenance import Progress

logger = logging.getLogger("redis_sessions")

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
