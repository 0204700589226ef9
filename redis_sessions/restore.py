"""Restoring sessions whole (a migration, a backup): the core operations and their input record.

``restore_session`` writes one session with the ids, times, turn numbers, messages and snapshots it
is given, replacing whatever its keys hold, and leaves it as the store's own writes would have
(``lua/restore.lua``: index and expiry entries scored by its last activity, the TTL of its keys
counted from it, an invalidation announcement). It is idempotent: the same restore twice leaves the
same keys and the same version. ``restore_sessions`` sends many in one pipeline.

Everything is checked before anything is sent (InvalidInput, nothing written): the context with
the store's own encoder (``write_codec``), each message and snapshot as ``append_message`` checks
them. A payload or actions given as ``msgspec.Raw`` (JSON already encoded, e.g. a jsonb column's
text) is stored as it is once its syntax and nesting are checked, without being decoded into
Python objects: the fast path of a bulk import.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from . import codec, folders, write_codec
from ._corebase import CoreBase
from .exceptions import InvalidInput
from .keys import check_user_id, check_uuid
from .message_codec import StoredMessage, encode_message
from .models import MAX_SAFE_INT, TutorContext
from .records import Folder, Message
from .requests import Arg, Op, RunScript, ScriptBatch
from .scripts import ScriptName
from .validation import MAX_DEPTH

__all__ = ["FolderRestore", "SessionRestore"]


class SessionRestore(msgspec.Struct, frozen=True, kw_only=True):
    """One session to write whole with ``restore_session`` / ``restore_sessions``.

    - ``context``: its context; its ``user_id`` and ``session_id`` name the session (its
      ``history`` and ``whiteboard_history`` are not stored, as with every write).
    - ``created_at``, ``updated_at`` (its last activity: listing order, idle clock, TTL),
      ``ended_at``: timezone-aware times, kept as given (in UTC).
    - ``turns``: the turn counter (the next message takes ``turns + 1``); None: the highest of
      the messages' turns and ``context.latest_turn_no``.
    - ``messages``: at most ``max_messages`` ``Message`` records, within ``max_messages`` turns of
      the latest; ``whiteboard_snapshot_index`` is ``turn_no`` or None. A ``payload`` that is a
      ``msgspec.Raw`` is stored as that JSON.
    - ``snapshots``: whiteboard snapshot index -> its actions (a list of dicts, or a
      ``msgspec.Raw`` of that JSON), indexes from 1 to ``turns``, within the messages' window.
    - ``extra``: fields kept in the record beside the store's own, which the store ignores and
      leaves alone (names must not be the store's: no ``c:`` prefix, none of its metadata).
    """

    context: TutorContext
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None = None
    turns: int | None = None
    messages: Sequence[Message] = ()
    snapshots: Mapping[int, Any] = msgspec.field(default_factory=dict)
    extra: Mapping[str, str | bytes] = msgspec.field(default_factory=dict)


class FolderRestore(msgspec.Struct, frozen=True, kw_only=True):
    """One folder to write whole with ``restore_folders``: ``folder`` of ``user_id`` with its
    ``created_at`` and ``updated_at`` as given (both required, timezone-aware), and ``extra``
    fields kept beside the folder's own, which the store ignores and leaves alone."""

    user_id: str
    folder: Folder
    extra: Mapping[str, str | bytes] = msgspec.field(default_factory=dict)


#: a folder hash's own fields, which a FolderRestore's ``extra`` cannot name
FOLDER_FIELDS: Final = frozenset(
    (
        "id",
        "user_id",
        "name",
        "knowledge_base",
        "created_at",
        "updated_at",
        "vector_store_id",
        "analysis",
    )
)

#: the record's own fields (besides the context's ``c:`` fields), which ``extra`` cannot name
RESERVED_FIELDS: Final = frozenset(
    (
        "user_id",
        "session_id",
        "folder_id",
        "created_at",
        "updated_at",
        "ended_at",
        "version",
        "schema",
        "turns",
        "ttl_until",
    )
)
_ROLES: Final = frozenset(("user", "assistant", "system"))
_UTC: Final = dt.timezone.utc
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_encode = msgspec.json.Encoder().encode
_raw_json = msgspec.json.Decoder(msgspec.Raw)  # checks the syntax, makes no Python objects


class _Object(msgspec.Struct, gc=False):
    """Any JSON object (its members are checked for syntax and skipped)."""


_raw_actions = msgspec.json.Decoder(list[_Object])  # a list of objects, nothing kept


def _utc(value: object, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value if value.tzinfo is _UTC else value.astimezone(_UTC)


def _checked_raw(raw: msgspec.Raw, decoder: Any, what: str, n: int) -> bytes | None:
    """A JSON text given as Raw, as it is stored: well-formed (``decoder``) and nested at most
    MAX_DEPTH deep (counted by brackets, strings' too: a false alarm, None, only sends it the slow
    way). Malformed: InvalidInput naming ``what % n``."""
    try:
        decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{what % n} is not well-formed JSON of its kind: {exc}") from exc
    blob = bytes(raw)
    return blob if blob.count(b"[") + blob.count(b"{") <= MAX_DEPTH else None


def _decoded(raw: msgspec.Raw, what: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{what} cannot be stored: {exc}") from exc


def _message(m: object, floor: int) -> tuple[int, bytes]:
    """(turn, message JSON) of one restored message; InvalidInput when it cannot be stored."""
    if type(m) is not Message:
        raise InvalidInput(f"messages must be Message records, got {type(m).__name__}")
    turn = m.turn_no
    if type(turn) is not int or not floor < turn <= MAX_SAFE_INT or turn < 1:
        raise InvalidInput(
            f"message turn_no must be an int from 1, above {floor} (within max_messages turns "
            f"of the latest), got {turn!r}"
        )
    wsi = m.whiteboard_snapshot_index
    if wsi is not None and wsi != turn:
        raise InvalidInput(
            f"message {turn}: whiteboard_snapshot_index must be its turn_no or None, got {wsi!r}"
        )
    created = m.created_at
    if type(created) is not dt.datetime or created.tzinfo is not _UTC:
        created = _utc(created, f"message {turn}: created_at")
    payload = m.payload
    simple = payload is None or (
        type(payload) is msgspec.Raw
        and _checked_raw(payload, _raw_json, "message %d: payload", turn) is not None
    )
    if simple and type(m.text) is str and m.role in _ROLES:
        stored = StoredMessage(
            role=m.role, text=m.text, payload=payload, snapshot=wsi is not None, created_at=created
        )
        return turn, _encode(stored)
    if type(payload) is msgspec.Raw:
        payload = _decoded(payload, f"message {turn}: payload")
    blob, _ = encode_message(m.role, m.text, payload, [] if wsi is not None else None, created)
    return turn, blob


def _snapshot(index: object, actions: object, floor: int, turns: int) -> tuple[int, bytes]:
    """(index, actions JSON) of one restored snapshot; InvalidInput when it cannot be stored."""
    if type(index) is not int or not max(floor, 0) < index <= turns:
        raise InvalidInput(
            f"snapshot index must be an int from {max(floor, 0) + 1} to turns ({turns}) "
            f"(within max_messages turns of the latest message), got {index!r}"
        )
    if type(actions) is msgspec.Raw:
        blob = _checked_raw(actions, _raw_actions, "snapshot %d", index)
        if blob is not None:
            return index, blob
        actions = _decoded(actions, f"snapshot {index}")
    if not isinstance(actions, list):
        raise InvalidInput(f"snapshot {index}: actions must be a list of dicts")
    _, blob = encode_message("user", "", None, actions, _EPOCH)  # only the actions are kept
    return index, blob


def _extra_pairs(
    extra: object, reserved: frozenset[str], prefix: str | None
) -> list[tuple[bytes, bytes]]:
    """The extra fields of a restore as (name, value) bytes; InvalidInput for a name of the
    store's (in ``reserved``, or starting with ``prefix``) or a value that is not text."""
    if not isinstance(extra, Mapping):
        raise InvalidInput("extra must be a mapping of field name -> str or bytes")
    out = []
    for name, value in extra.items():
        if not isinstance(name, str) or name in reserved or (prefix and name.startswith(prefix)):
            raise InvalidInput(f"extra cannot name the store's own field {name!r}")
        if not isinstance(value, str | bytes):
            raise InvalidInput(f"extra {name!r} must be str or bytes")
        out.append((name.encode(), value.encode() if isinstance(value, str) else value))
    return out


def _ttl_span(ttl_ms: int) -> int:
    """How long a write gives a session's keys (``ttl_span`` in lua/_lib.lua, which sets them):
    the TTL plus a grace of an eighth of it, at most a day."""
    return ttl_ms + min(ttl_ms // 8, 86_400_000)


class RestoreOps(CoreBase):
    """The core operations that write sessions whole (see the module docstring)."""

    def _restore_call(self, restore: SessionRestore, now_us: int) -> tuple[str, str, RunScript]:
        """(user id, session id, the script call) of one restore; InvalidInput for bad input."""
        if type(restore) is not SessionRestore:
            raise InvalidInput(f"expected a SessionRestore, got {type(restore).__name__}")
        context = restore.context
        if not isinstance(context, TutorContext):
            raise InvalidInput(f"context must be a TutorContext, got {type(context).__name__}")
        uid, sid = check_user_id(context.user_id), check_uuid(context.session_id)
        created = _utc(restore.created_at, "created_at")
        updated = _utc(restore.updated_at, "updated_at")
        ended = None if restore.ended_at is None else _utc(restore.ended_at, "ended_at")
        if not isinstance(restore.messages, Sequence):
            raise InvalidInput("messages must be a sequence of Message records")
        keep = self.config.max_messages
        top = max(
            (m.turn_no for m in restore.messages if type(m) is Message and type(m.turn_no) is int),
            default=0,
        )
        floor = top - keep
        messages: list[Arg] = []
        for m in restore.messages:
            messages += _message(m, floor)
        if len(set(messages[::2])) * 2 != len(messages):
            raise InvalidInput("two messages have the same turn_no")
        turns = restore.turns
        if turns is None:
            turns = max(top, context.latest_turn_no)
        if type(turns) is not int or not top <= turns <= MAX_SAFE_INT:
            raise InvalidInput(
                f"turns must be an int from {top} (the latest message), got {turns!r}"
            )
        if not isinstance(restore.snapshots, Mapping):
            raise InvalidInput("snapshots must be a mapping of index -> actions")
        snapshots: list[Arg] = []
        for index, actions in restore.snapshots.items():
            snapshots += _snapshot(index, actions, floor if top else 0, turns)
        fields = write_codec.encode_context(
            context, user_id=uid, session_id=sid, max_bytes=self.config.max_context_bytes
        )
        record = write_codec.record_fields(
            user_id=uid, session_id=sid, now=created, context_fields=fields
        )
        del record[b"version"]  # the script's: kept when nothing changed
        record[b"updated_at"] = codec.iso(updated).encode()
        if ended is not None:
            record[b"ended_at"] = codec.iso(ended).encode()
        if turns:
            record[b"turns"] = str(turns).encode()
        if restore.extra:
            record.update(_extra_pairs(restore.extra, RESERVED_FIELDS, "c:"))
        ttl = self._key_ttl_ms
        updated_us = codec.epoch_us(updated)
        if ttl and updated_us // 1000 + _ttl_span(ttl) <= now_us // 1000:
            raise InvalidInput(
                f"session {sid}: its last activity ({codec.iso(updated)}) is so old that its keys' "
                "TTL (StoreConfig.key_ttl_ms) ran out: the store would hold it no more"
            )
        args: list[Arg] = [
            sid,
            self.keys.expiry_member(uid, sid),
            now_us,
            ttl,
            self.channel,
            updated_us,
            "1" if ended is not None else "0",
            2 * len(record),
            *codec.flatten(record.items()),
            len(messages),
            *messages,
            len(snapshots),
            *snapshots,
        ]
        return uid, sid, RunScript(ScriptName.RESTORE, self.keys.session_write_keys(uid, sid), args)

    def restore_session(self, restore: SessionRestore) -> Op[int]:
        """The core operation behind ``SessionStore.restore_session`` (documented there)."""
        uid, sid, call = self._restore_call(restore, codec.epoch_us(self.now()))
        with self._writing((uid, sid)):
            reply = yield call
        self._written_around(reply[1])
        return int(reply[0])

    def restore_sessions(self, restores: Sequence[SessionRestore]) -> Op[list[int]]:
        """The core operation behind ``SessionStore.restore_sessions`` (documented there)."""
        if isinstance(restores, SessionRestore) or not isinstance(restores, Sequence):
            raise InvalidInput("restores must be a sequence of SessionRestore")
        now_us = codec.epoch_us(self.now())
        calls = [self._restore_call(r, now_us) for r in restores]  # all checked before any is sent
        if not calls:
            return []
        with contextlib.ExitStack() as writes:
            if self.config.cache_size:  # a store that caches nothing has nothing to keep coherent
                for uid, sid, _ in calls:
                    writes.enter_context(self._writing((uid, sid)))
            replies = yield ScriptBatch(tuple(call for _, _, call in calls))
        for reply in replies:
            self._written_around(reply[1])
        return [int(reply[0]) for reply in replies]

    def _folder_call(self, item: FolderRestore) -> RunScript:
        """The script call of one folder restore; InvalidInput for bad input."""
        if type(item) is not FolderRestore:
            raise InvalidInput(f"expected a FolderRestore, got {type(item).__name__}")
        uid, folder = check_user_id(item.user_id), item.folder
        if not isinstance(folder, Folder):
            raise InvalidInput(f"folder must be a Folder, got {type(folder).__name__}")
        fid = check_uuid(folder.id, "folder id")
        if not isinstance(folder.name, str) or not isinstance(folder.knowledge_base, str):
            raise InvalidInput("folder name and knowledge_base must be str")
        if folder.vector_store_id is not None and not isinstance(folder.vector_store_id, str):
            raise InvalidInput("folder vector_store_id must be str or None")
        created = _utc(folder.created_at, "folder created_at")
        updated = _utc(folder.updated_at, "folder updated_at")
        made = msgspec.structs.replace(folder, id=fid, created_at=created)
        pairs = folders.folder_fields(made, uid, updated)
        size = sum(len(v) for _, v in pairs)
        if size > self.config.max_context_bytes // 2:  # as put_folder: it is copied into contexts
            raise InvalidInput(
                f"folder is {size} bytes; at most max_context_bytes/2 = "
                f"{self.config.max_context_bytes // 2}"
            )
        extra = _extra_pairs(item.extra, FOLDER_FIELDS, None)
        args: list[Arg] = [*codec.flatten(pairs), *codec.flatten(extra)]
        return RunScript(ScriptName.RESTORE_FOLDER, [self.keys.folder(uid, fid)], args)

    def restore_folders(self, items: Sequence[FolderRestore]) -> Op[None]:
        """The core operation behind ``SessionStore.restore_folders`` (documented there)."""
        if isinstance(items, FolderRestore) or not isinstance(items, Sequence):
            raise InvalidInput("items must be a sequence of FolderRestore")
        calls = tuple(self._folder_call(item) for item in items)  # all checked first
        if calls:
            yield ScriptBatch(calls)
