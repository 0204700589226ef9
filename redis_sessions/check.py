"""The consistency check, as a core operation (a generator of Redis requests, no I/O).

A check SCANs the store in batches (never the whole key space in memory) and confirms every
inconsistency it suspects with a script that looks again atomically, so a write racing the check is
not reported; with ``repair`` the same script fixes it.

Damage is seen and contained, never a reason to stop: a key whose Redis type is not the one the
layout gives it ("wrong-type") and a record that cannot be decoded ("undecodable") are reported with
their key and left out of the other checks, and every other key is still checked. ``repair`` leaves
them alone (what they hold cannot be repaired, only deleted); ``drop_corrupt`` deletes them: a record
with its whole session (the cascade of ``delete_session``), any other key on its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import msgspec

from . import codec
from ._check_reads import Suspect, _check_expiry, _check_index, _remains, _text
from .exceptions import InvalidInput
from .keys import KeyInfo
from .requests import Arg, Op, Pipeline, RunScript, ScanBatch
from .scripts import ScriptName

if TYPE_CHECKING:
    from .core import StoreCore
    from .maintenance import Progress

logger: logging.Logger = logging.getLogger("redis_sessions")

PROBLEMS: Final = {
    "unindexed": "records without an index entry",
    "no-expiry": "records without an expiry entry",
    "dangling-index": "index entries without a record",
    "orphan-parts": "messages, snapshots or session state without a record",
    "dangling-expiry": "expiry entries without a record",
    "wrong-type": "keys holding another Redis type than the layout's",
    "undecodable": "records that cannot be decoded",
}
#: The problems that ``repair`` leaves alone and only ``drop_corrupt`` removes (by deleting).
DAMAGE: Final = ("wrong-type", "undecodable")
#: The remains of a session without record: one repair deletes all of them at once.
REMAINS: Final = ("dangling-index", "orphan-parts", "dangling-expiry")
#: The Redis type of each kind of key (``KeySpace.classify``; the layout is in keys.py).
LAYOUT: Final = {
    "record": "hash",
    "msgs": "hash",
    "wb": "hash",
    "folder": "hash",
    "index": "zset",
    "exp": "zset",
    "ended": "zset",
    "req": "string",
    "state": "hash",
    "ustate": "hash",
    "ext": "zset",
    "astate": "hash",
}
EXAMPLES_PER_KIND: Final = 5  # of each problem, and of unknown keys


class CheckReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``check`` found. ``problems`` counts confirmed inconsistencies by kind (see PROBLEMS);
    ``repaired`` those it fixed (for wrong-type and undecodable: deleted); ``left`` what is still
    there; ``examples`` describes the first few of each kind, keys as text. ``repair`` and
    ``drop_corrupt`` say what the run was asked to do."""

    scanned_keys: int
    problems: dict[str, int]
    repaired: dict[str, int]
    unknown_keys: int
    examples: list[str]
    repair: bool = False
    drop_corrupt: bool = False

    @property
    def left(self) -> dict[str, int]:
        """Problems found and not repaired, by kind (kinds with none left out)."""
        counts = {k: n - self.repaired.get(k, 0) for k, n in self.problems.items()}
        return {k: n for k, n in counts.items() if n}

    @property
    def unrepaired(self) -> int:
        return sum(self.left.values())


class _Run:
    """The tallies of one check."""

    def __init__(self, repair: bool, drop_corrupt: bool) -> None:
        self.repair, self.drop_corrupt = repair, drop_corrupt
        self.problems = dict.fromkeys(PROBLEMS, 0)
        self.repaired = dict.fromkeys(PROBLEMS, 0)
        self.shown = dict.fromkeys([*PROBLEMS, "unknown"], 0)
        self.examples: list[str] = []
        self.scanned = self.unknown = 0
        #: drop_corrupt only: what a key of the wrong type stood in the way of, tried again once the
        #: whole store has been scanned (by then every such key has been deleted)
        self.retry: list[Suspect] = []
        #: repair only: the sessions whose remains a repair deleted, all of them counted then
        self.cleared: set[tuple[str, str]] = set()

    def example(self, kind: str, text: str) -> None:
        if self.shown[kind] < EXAMPLES_PER_KIND:
            self.shown[kind] += 1
            self.examples.append(text)

    def report(self) -> CheckReport:
        return CheckReport(
            scanned_keys=self.scanned,
            problems={k: v for k, v in self.problems.items() if v},
            repaired={k: v for k, v in self.repaired.items() if v},
            unknown_keys=self.unknown,
            examples=self.examples,
            repair=self.repair,
            drop_corrupt=self.drop_corrupt,
        )


def check(
    core: StoreCore, *, repair: bool, drop_corrupt: bool, count: int, progress: Progress | None
) -> Op[CheckReport]:
    """The core operation behind ``SessionStore.check`` (see its documentation)."""
    if drop_corrupt and not repair:
        raise InvalidInput("drop_corrupt deletes what repair cannot fix: it needs repair=True")
    run = _Run(repair, drop_corrupt)
    cursor: Any = None
    while True:
        cursor, batch = yield ScanBatch(core.keys.pattern(), count, cursor)
        run.scanned += len(batch)
        for suspect in (yield from _check_batch(core, run, batch, count)):
            yield from _confirm(core, run, suspect, last_try=False)
        if progress is not None:
            progress(run.scanned, 0)
        if cursor is None:
            break
    # Deleting a key of the wrong type makes what it stood in the way of repairable: the records a
    # wrong-type index or expiry index should have listed (met before SCAN reached that key, they
    # could not be read against it), and fixes that would have had to write it. Every such key is
    # gone now, so one more try of exactly those ends the run with a store that checks clean, with
    # no second scan.
    retry, run.retry = run.retry, []
    for suspect in retry:
        yield from _confirm(core, run, suspect, last_try=True)
    return run.report()


def _check_batch(core: StoreCore, run: _Run, batch: list[bytes], count: int) -> Op[list[Suspect]]:
    """The suspects among one SCAN batch's keys.

    One pipeline reads the TYPE of every key of the layout, and, for each record, the record itself
    (HGETALL, to decode it) and its index and expiry entries; for messages and snapshots, whether
    their record exists. TYPE is sent per key in this pipeline rather than filtering SCAN by TYPE:
    the filter returns the keys *of* one type, so finding the ones of another type would take a
    scan per type and the whole key space in hand to compare; it also needs Redis 6 and a SCAN per
    type on every cluster node. Pipelined, TYPE costs one round trip per batch, shared with the
    reads of the records. Replies are per command (``raise_on_error=False``): a record's index
    or expiry index may hold another type (reported when SCAN meets it, maybe in another batch),
    and then only that read fails.
    """
    keys = core.keys
    known: list[tuple[bytes, KeyInfo]] = []
    for key in batch:
        try:
            info = keys.classify(key)
        except UnicodeDecodeError:  # not UTF-8: no key the store writes
            info = None
        if info is not None:
            known.append((key, info))
        elif _text(key) != keys.sweep_lock():
            run.unknown += 1
            run.example("unknown", f"unknown key {_text(key)}")
    if not known:
        return []
    records = [(k, i) for k, i in known if i.kind == "record"]
    parts = [(k, i) for k, i in known if i.kind in ("msgs", "wb", "state")]
    commands: list[tuple[Arg, ...]] = [("TYPE", key) for key, _ in known]
    for key, (_, user_id, session_id) in records:
        assert user_id is not None and session_id is not None
        member = keys.expiry_member(user_id, session_id)
        live_key, ended_key = keys.expiry(user_id)
        commands += [
            ("HGETALL", key),
            ("ZSCORE", keys.index(user_id), session_id),
            ("ZSCORE", live_key, member),
            ("ZSCORE", ended_key, member),
        ]
    for _, (_, user_id, session_id) in parts:
        assert user_id is not None and session_id is not None
        commands.append(("EXISTS", keys.session(user_id, session_id)))
    replies = yield Pipeline(tuple(commands), raise_on_error=False)
    types = {key: _text(kind) for (key, _), kind in zip(known, replies[: len(known)], strict=True)}
    out: list[Suspect] = []
    for key, info in known:
        kind, expected = types[key], LAYOUT[info.kind]
        if kind == "none":
            continue  # gone since SCAN saw it
        if kind != expected:
            out.append(
                Suspect(
                    "wrong-type",
                    info.user_id,
                    info.session_id,
                    key=_text(key),
                    kind=info.kind,
                    detail=f"a {kind}, not a {expected}",
                )
            )
        elif info.kind == "index":
            out += yield from _check_index(core, key, info, count)
        elif info.kind in ("exp", "ended"):
            out += yield from _check_expiry(core, key, count)
    at = len(known)
    for key, info in records:
        reads = replies[at : at + 4]  # HGETALL and the three ZSCOREs
        at += 4
        if types[key] == "hash" and isinstance(reads[0], dict) and reads[0]:
            out += _check_record(run, _text(key), info, reads)
    for key, (_, user_id, session_id) in parts:
        record_exists = replies[at]
        at += 1
        if types[key] == "hash" and record_exists == 0:
            out.append(Suspect("orphan-parts", user_id, session_id))
    return out


def _check_record(run: _Run, key: str, info: KeyInfo, reads: list[Any]) -> list[Suspect]:
    """A record's suspects: undecodable (and then nothing else), unindexed, no-expiry."""
    _, user_id, session_id = info
    assert user_id is not None and session_id is not None
    fields, indexed, live, ended = reads
    try:
        session = codec.session_from_fields(fields, user_id, session_id)
    except codec.CorruptRecord as exc:
        evidence = tuple(part for pair in fields.items() for part in pair)
        return [
            Suspect("undecodable", user_id, session_id, key=key, detail=str(exc), evidence=evidence)
        ]
    out: list[Suspect] = []
    # the user index is scored in microseconds (updated_at exactly), the expiry indexes in ms
    unindexed = Suspect("unindexed", user_id, session_id, codec.epoch_us(session.updated_at))
    if isinstance(indexed, Exception):  # the index holds another type: SCAN reports it
        if run.drop_corrupt:
            run.retry.append(unindexed)  # once it is deleted, this record is not indexed
    elif indexed is None:
        out.append(unindexed)
    live_bad, ended_bad = isinstance(live, Exception), isinstance(ended, Exception)
    if (live is None or live_bad) and (ended is None or ended_bad):
        no_expiry = Suspect("no-expiry", user_id, session_id, codec.epoch_ms(session.updated_at))
        if not (live_bad or ended_bad):
            out.append(no_expiry)
        elif run.drop_corrupt:
            run.retry.append(no_expiry)
    return out


def _confirm(core: StoreCore, run: _Run, suspect: Suspect, *, last_try: bool) -> Op[None]:
    """Confirm one suspect with a script (which fixes it when asked) and tally the outcome."""
    problem = suspect.problem
    fix = run.drop_corrupt if problem in DAMAGE else run.repair
    owner = (suspect.user_id or "", suspect.session_id or "")
    remains: dict[str, int] = {}
    if fix and problem in REMAINS:
        if owner in run.cleared:
            return  # deleted, and counted, with the rest of its session's remains
        remains = yield from _remains(core, suspect)
    status = int((yield _script(core, suspect, fix)))
    if status == 0:
        return  # a write resolved it meanwhile, or an earlier repair did
    if remains and status == 1:
        # The repair deleted every remain of the session at once; count each as `check` would
        # have found it (one per key or entry), so that a repair reports what a check reports.
        run.cleared.add(owner)
        remains[problem] = max(remains.get(problem, 0), 1)
        for other, found in remains.items():
            if other != problem and found:
                run.problems[other] += found
                run.repaired[other] += found
                run.example(
                    other,
                    f"{PROBLEMS[other]}: user {suspect.user_id!r}, session {suspect.session_id} "
                    "(repaired)",
                )
        extra = remains[problem] - 1
        run.problems[problem] += extra
        run.repaired[problem] += extra
    if status == 2 and run.drop_corrupt and not last_try:
        run.retry.append(suspect)  # a key of the wrong type is in the way: deleted by the end
        return
    run.problems[problem] += 1
    fixed = fix and status == 1
    if fixed:
        run.repaired[problem] += 1
        if suspect.session_id is not None and suspect.user_id is not None:
            core.cache.evict((suspect.user_id, suspect.session_id))
    if problem in DAMAGE:
        text = f"{PROBLEMS[problem]}: {suspect.key}: {suspect.detail}"
    else:
        text = f"{PROBLEMS[problem]}: user {suspect.user_id!r}, session {suspect.session_id}"
    if fixed and problem not in DAMAGE:
        text += " (repaired)"
    elif fixed:
        whole = problem == "undecodable" or suspect.kind == "record"
        text += " (deleted with its session)" if whole else " (deleted)"
    elif fix:  # status 2
        text += " (not repaired: a key of the wrong type is in the way)"
    elif run.repair:  # damage, without drop_corrupt
        text += " (left alone)"
    run.example(problem, text)


def _script(core: StoreCore, suspect: Suspect, fix: bool) -> RunScript:
    """The script that confirms ``suspect`` (and fixes it when ``fix``)."""
    flag = "1" if fix else "0"
    if suspect.problem == "wrong-type" and suspect.kind != "record":
        return RunScript(ScriptName.DROP_KEY, [suspect.key], [LAYOUT[suspect.kind], flag])
    user_id, session_id = suspect.user_id, suspect.session_id
    assert user_id is not None and session_id is not None
    args: list[Arg] = [
        suspect.problem,
        flag,
        session_id,
        core.keys.expiry_member(user_id, session_id),
        suspect.score,
        core.channel,
        codec.epoch_ms(core.now()),
        *suspect.evidence,
    ]
    return RunScript(ScriptName.REPAIR, core.keys.session_write_keys(user_id, session_id), args)
