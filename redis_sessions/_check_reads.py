"""The reads of ``check`` beyond its SCAN batches: index and expiry indexes (ZSCAN), whether records
exist, and what is left of a session without record (the core operation is in ``check``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from .exceptions import BackendError
from .keys import KeyInfo
from .requests import Command, Op, Pipeline

if TYPE_CHECKING:
    from .core import StoreCore

logger: logging.Logger = logging.getLogger("redis_sessions")


class Suspect(NamedTuple):
    """A problem that the check's reads suggest, for a script to confirm (and fix) atomically."""

    problem: str
    user_id: str | None  # None: a key of no user (an expiry index)
    session_id: str | None  # None: a key of no session
    score: int = 0  # the activity score that a repair gives an entry it adds
    key: str = ""  # wrong-type, undecodable: the key, as text
    kind: str = ""  # wrong-type: what the key is (KeyInfo.kind)
    detail: str = ""  # wrong-type, undecodable: what is wrong
    evidence: tuple[bytes, ...] = ()  # undecodable: the record's fields and values as read


def _text(key: bytes | str) -> str:
    return key.decode(errors="backslashreplace") if isinstance(key, bytes) else key


def _remains(core: StoreCore, suspect: Suspect) -> Op[dict[str, int]]:
    """What is left of a session without record, by kind, counted as ``check`` counts it (an index
    entry, each messages or snapshots hash, each expiry entry): one pipelined round trip, read
    just before the repair that deletes it all (its script confirms the problem atomically)."""
    user_id, session_id = suspect.user_id, suspect.session_id
    assert user_id is not None and session_id is not None
    keys = core.keys
    _, messages, snapshots = keys.session_keys(user_id, session_id)
    live, ended = keys.expiry(user_id)
    member = keys.expiry_member(user_id, session_id)
    replies = yield Pipeline(
        (
            ("ZSCORE", keys.index(user_id), session_id),
            ("TYPE", messages),
            ("TYPE", snapshots),
            ("ZSCORE", live, member),
            ("ZSCORE", ended, member),
        ),
        raise_on_error=False,
    )
    index, messages_type, snapshots_type, in_live, in_ended = replies

    def there(reply: Any) -> int:
        return int(reply is not None and not isinstance(reply, Exception))

    return {
        "dangling-index": there(index),
        "orphan-parts": sum(_text(t) == "hash" for t in (messages_type, snapshots_type)),
        "dangling-expiry": there(in_live) + there(in_ended),
    }


def _without_record(
    core: StoreCore, sessions: list[tuple[str, str]], kind: str
) -> Op[list[Suspect]]:
    """The sessions whose record does not exist, as suspects of ``kind``: one pipelined trip."""
    if not sessions:
        return []
    replies = yield Pipeline(tuple(("EXISTS", core.keys.session(u, s)) for u, s in sessions))
    return [
        Suspect(kind, u, s) for (u, s), exists in zip(sessions, replies, strict=True) if not exists
    ]


def _zscan(key: bytes, count: int) -> Op[list[bytes]]:
    """Members of a sorted set, read in ZSCAN batches of about ``count``."""
    members: list[bytes] = []
    cursor: Any = 0
    while True:
        try:
            cursor, items = yield Command(("ZSCAN", key, cursor, "COUNT", count))
        except BackendError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            return []  # it was replaced by another type since its TYPE was read: the next check
        members.extend(member for member, _ in items)
        if int(cursor) == 0:
            return members


def _check_index(core: StoreCore, key: bytes, info: KeyInfo, count: int) -> Op[list[Suspect]]:
    assert info.user_id is not None
    user_id = info.user_id
    session_ids = [m.decode(errors="replace") for m in (yield from _zscan(key, count))]
    return (yield from _without_record(core, [(user_id, s) for s in session_ids], "dangling-index"))


def _check_expiry(core: StoreCore, key: bytes, count: int) -> Op[list[Suspect]]:
    owners = []
    for member in (yield from _zscan(key, count)):
        try:
            owners.append(core.keys.parse_expiry_member(member))
        except (ValueError, UnicodeDecodeError):
            logger.warning("malformed entry %r in %r (the next sweep removes it)", member, key)
    return (yield from _without_record(core, owners, "dangling-expiry"))
