"""The store without I/O: every operation as a generator that yields Redis requests.

An operation yields a :class:`Command` or a :class:`RunScript`, receives the reply through ``send``,
and returns its result. A Redis failure is thrown into it (already translated into the store's own
exception, with the Redis error chained), so that it can evict what it cached before the error goes on
to the caller. Cache hits return without yielding anything: zero round trips.

The sync and async stores only run these generators (``_drive``); no logic lives in them. The
operations are split by what they act on: sessions here, messages in ``history``, folders in
``folder_ops``, all on ``_corebase.CoreBase``.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from . import codec, maintenance, message_codec, write_codec
from ._corebase import (
    MAX_LIST_LIMIT,
    MAX_LIST_OFFSET,
    MAX_MODIFY_RETRIES,
    AsyncModifyFn,
    _check_int,
    logger,
)
from .exceptions import (
    BackendError,
    InvalidInput,
    SessionNotFound,
    VersionConflict,
)
from .folder_ops import FolderOps
from .folders import analysis_from_folder
from .history import MessageOps
from .keys import check_user_id, check_uuid
from .models import TutorContext
from .records import Folder, Session, SessionInfo
from .requests import Apply, Arg, Command, LoadFolder, Op, RunScript, Sleep
from .restore import RestoreOps
from .scripts import ScriptName
from .state_ops import StateOps
from .validation import validate_context


class StoreCore(MessageOps, FolderOps, StateOps, RestoreOps):
    """Everything a store does except talking to Redis. One instance per store. Its cache and
    how it stays coherent with Redis are ``CacheCoherence``'s."""

    # ------------------------------------------------------------------ sessions

    def create_session(
        self,
        user_id: str,
        folder_id: str | uuid.UUID | None = None,
        initial_context: TutorContext | Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> Op[uuid.UUID]:
        """The core operation behind ``SessionStore.create_session`` (documented there)."""
        uid = check_user_id(user_id)
        request_key = self.request_key(uid, request_id)
        context = self._initial_context(uid, initial_context)
        if folder_id is None and context.folder_id is not None:
            folder_id = context.folder_id
        fid = check_uuid(folder_id, "folder_id") if folder_id is not None else None
        context.folder_id = None
        redis_folder = fid
        if fid is not None and self.folder_source is not None:
            context = yield from self._apply_folder_source(context, fid, uid)
            redis_folder = None
        now = self.now()
        for _ in range(3):  # a UUID4 collision is practically impossible; never overwrite one
            context.session_id = codec.new_session_id()
            sid = str(context.session_id)
            fields = write_codec.encode_context(
                context, user_id=uid, session_id=sid, max_bytes=self.config.max_context_bytes
            )
            record = write_codec.record_fields(
                user_id=uid, session_id=sid, now=now, context_fields=fields
            )
            keys = [*self.keys.session_write_keys(uid, sid), request_key]
            if redis_folder is not None:
                keys.append(self.keys.folder(uid, redis_folder))
            args = [
                *self._write_args(uid, sid, now),
                redis_folder or "",
                *codec.flatten(record.items()),
            ]
            with self._writing((uid, sid)) as write:
                reply = yield RunScript(ScriptName.CREATE, keys, args)
                if reply[0] == 1 and reply[1] == b"none" and reply[2] == sid.encode():
                    # no folder was copied in: the record is exactly what was sent
                    write.after, write.cold = record, True
            if reply[0] == 1:
                sid = bytes(reply[2]).decode()  # a replayed create names the session it made
                self._written_around(reply[3])
                break
        else:  # pragma: no cover - three UUID4 collisions in a row
            raise BackendError("could not allocate a free session id")
        status = reply[1].decode()
        if status in ("missing", "invalid"):
            logger.warning(
                "session %s of user %r created without folder data: folder %s is %s",
                sid,
                uid,
                redis_folder,
                "missing or not this user's"
                if status == "missing"
                else "not loadable (malformed analysis)",
            )
        return uuid.UUID(sid)

    def _initial_context(
        self, user_id: str, initial: TutorContext | Mapping[str, Any] | None
    ) -> TutorContext:
        placeholder = uuid.UUID(int=0)
        if initial is None:
            return TutorContext(user_id=user_id, session_id=placeholder)
        if isinstance(initial, TutorContext):
            if initial.user_id != user_id:
                raise InvalidInput(
                    f"initial_context.user_id is {initial.user_id!r}, not {user_id!r}"
                )
            return msgspec.structs.replace(initial)
        if isinstance(initial, Mapping):
            data = dict(initial)
            if data.get("user_id", user_id) != user_id:
                raise InvalidInput(
                    f"initial_context user_id is {data['user_id']!r}, not {user_id!r}"
                )
            data["user_id"] = user_id
            data["session_id"] = str(placeholder)
            result = validate_context(data)
            if result.context is None:
                raise InvalidInput("invalid initial_context: " + "; ".join(result.errors))
            return result.context
        raise InvalidInput(
            f"initial_context must be a TutorContext or a mapping, got {type(initial).__name__}"
        )

    def _apply_folder_source(
        self, context: TutorContext, folder_id: str, user_id: str
    ) -> Op[TutorContext]:
        try:
            folder = yield LoadFolder(folder_id, user_id)
            if folder is None:
                logger.warning(
                    "folder %s of user %r not found: session created without it", folder_id, user_id
                )
                return context
            if not isinstance(folder, Folder):
                raise TypeError(f"folder source returned {type(folder).__name__}, not Folder")
            analysis = analysis_from_folder(folder)
        except Exception as exc:  # the contract: a failing folder never fails the create
            logger.warning(
                "folder %s of user %r failed to load (%r): session created without it",
                folder_id,
                user_id,
                exc,
            )
            return context
        return msgspec.structs.replace(
            context,
            folder_id=uuid.UUID(folder_id),
            vector_store_id=folder.vector_store_id
            if folder.vector_store_id is not None
            else context.vector_store_id,
            analysis_result=analysis if analysis is not None else context.analysis_result,
        )

    def get_session(self, session_id: str | uuid.UUID, user_id: str) -> Op[Session | None]:
        """The core operation behind ``SessionStore.get_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        record = yield from self._record(uid, sid)
        return None if record is None else self._session(record, uid, sid)

    def get_session_context(
        self, session_id: str | uuid.UUID, user_id: str, *, history: int = 0
    ) -> Op[TutorContext | None]:
        """The core operation behind ``SessionStore.get_session_context`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        history = min(_check_int(history, "history", minimum=0), self.config.max_messages)
        if history == 0:
            record = self._cached((uid, sid))  # a hit makes no generator of _record
            if record is None:
                record = yield from self._record(uid, sid, use_cache=False)
            return None if record is None else self._context(record, uid, sid)
        epoch = self.freshness.token()
        reply = yield from self._read_script(uid, sid, history, whole=True, snapshots=True)
        if not reply:
            return None
        record = codec.pairs_to_dict(reply[0])
        context = self._context(record, uid, sid)
        self._fill_cache((uid, sid), record, epoch)
        first = int(reply[1])
        entries, bad_messages = message_codec.history_entries(first, reply[2])
        snapshots, bad_snapshots = message_codec.decode_snapshots(first, reply[3])
        self._report_parts(uid, sid, bad_messages, bad_snapshots)
        context.history = entries
        context.whiteboard_history = snapshots
        return context

    def update_session_context(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        context: TutorContext,
        *,
        expected_version: int | None = None,
        request_id: str | None = None,
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.update_session_context`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if expected_version is not None:
            _check_int(expected_version, "expected_version", minimum=1)
        # with the record cached, send only what changed, against the cached version (fields
        # that did not change were read back from Redis: they need no validation)
        peeked = self.cache.peek((uid, sid)) if self.cache_serving else None
        fields = write_codec.encode_context(
            context,
            user_id=uid,
            session_id=sid,
            max_bytes=self.config.max_context_bytes,
            stored=peeked,
        )
        now = self.now()
        stamp = codec.iso(now)
        head = [
            *self._write_args(uid, sid, now),
            stamp,
            "" if expected_version is None else expected_version,
        ]
        keys = self._write_keys(uid, sid, request_id)
        with self._writing((uid, sid)) as write:
            # a whole context: "*" asks the script for what else the record holds, to cache it
            whole = b"*" if self.cache_serving and self.config.cache_size else b""
            base = write.before if write.before is peeked else None
            base_version = base.get(b"version") if base is not None else None
            if base_version is None:
                base, base_version = None, whole
            change = write_codec.context_change(fields, base)
            reply = yield RunScript(ScriptName.UPDATE, keys, [*head, base_version, *change.args()])
            if int(reply[0]) == -2:  # Redis moved on from the cached version: send it whole
                base, change = None, write_codec.context_change(fields, None)
                reply = yield RunScript(ScriptName.UPDATE, keys, [*head, whole, *change.args()])
            status = int(reply[0])
            if status == 0:
                return False
            if status == -1:
                assert expected_version is not None
                raise VersionConflict(sid, expected_version, int(reply[1]))
            self._written_around(reply[4])
            if base is not None:
                record = change.applied_to(base, int(reply[2]), int(reply[3]))
            elif len(reply) > 5:  # whole: the record is what was sent and what the script said
                record = write_codec.whole_record(
                    uid,
                    sid,
                    change,
                    meta=reply[5:9],
                    latest_turn=reply[2],
                    latest_snapshot=reply[3],
                )
                if len(record) + 2 != int(
                    reply[9]
                ):  # fields this version does not know: not cached
                    return True
            else:
                return True
            record[b"version"] = str(reply[1]).encode()
            record[b"updated_at"] = stamp.encode()
            write.after = record
            return True

    def modify(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        fn: AsyncModifyFn,
        *,
        retries: int = 10,
    ) -> Op[TutorContext]:
        """The core operation behind ``SessionStore.modify`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        _check_int(retries, "retries", minimum=0, maximum=MAX_MODIFY_RETRIES)
        for attempt in range(retries + 1):
            # the first attempt may use the cache; after a conflict, read what Redis holds
            record = yield from self._record(uid, sid, use_cache=attempt == 0)
            if record is None:
                raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
            session = self._session(record, uid, sid)
            returned = yield Apply(fn, session.context)
            if returned is None:
                context = session.context
            elif isinstance(returned, TutorContext):
                context = returned
            else:
                raise TypeError(
                    "modify's fn must change the context in place and return None, or return a "
                    f"TutorContext; it returned {type(returned).__name__} (nothing was written)"
                )
            try:
                written = yield from self.update_session_context(
                    sid, uid, context, expected_version=session.version
                )
            except VersionConflict:
                if attempt == retries:
                    raise
                yield Sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            if not written:
                raise SessionNotFound(f"session {sid} of user {uid!r} was deleted meanwhile")
            return context
        raise AssertionError("unreachable")  # pragma: no cover

    def session_exists(self, session_id: str | uuid.UUID, user_id: str) -> Op[bool]:
        """The core operation behind ``SessionStore.session_exists`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if self._cached((uid, sid)) is not None:
            return True
        key = self.keys.session(uid, sid)
        values = yield from self._read_hash("HMGET", key, *codec.META_FIELDS)
        problem = codec.meta_problem(values, uid)
        if problem is None:
            return True
        if problem:
            raise self._damage(key, problem)
        exists: int = yield Command(("EXISTS", key))  # a record without user_id: damaged too
        if exists:
            raise self._damage(key, "the record has no user_id")
        return False

    def end_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.end_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        now = self.now()
        stamp = codec.iso(now)
        with self._writing((uid, sid)) as write:
            reply = yield RunScript(
                ScriptName.END,
                self._write_keys(uid, sid, request_id),
                [*self._write_args(uid, sid, now), stamp],
            )
            if not reply:
                return False
            ended = reply[0]
            self._written_around(reply[1])
            if write.before is not None:
                patch = {b"ended_at": ended, b"updated_at": stamp.encode()}
                write.after = {**write.before, **patch}
            return True

    def delete_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.delete_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        args: list[Arg] = [
            sid,
            self.keys.expiry_member(uid, sid),
            self.channel,
            codec.epoch_ms(self.now()),
            self._replay_window_ms,
        ]
        with self._writing((uid, sid)):
            reply = yield RunScript(ScriptName.DELETE, self._write_keys(uid, sid, request_id), args)
        self._written_around(reply[1])
        return bool(int(reply[0]))

    def list_user_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> Op[list[SessionInfo]]:
        """The core operation behind ``SessionStore.list_user_sessions`` (documented there)."""
        uid = check_user_id(user_id)
        limit = min(_check_int(limit, "limit", minimum=1), MAX_LIST_LIMIT)
        offset = _check_int(offset, "offset", minimum=0, maximum=MAX_LIST_OFFSET)
        fields = codec.LISTING_FIELDS
        index = self.keys.index(uid)
        flat, problems = yield RunScript(
            ScriptName.LIST, [index], [self.keys.session_prefix(uid), offset, limit, *fields]
        )
        for i in range(0, len(problems), 2):  # rows the script left out, each reported
            self.report_corrupt(self._row_key(uid, problems[i]), problems[i + 1].decode())
        fast = codec.infos_from_rows(flat, uid)
        if fast is not None:
            return fast
        width = 1 + len(fields)
        out = []
        for i in range(0, len(flat), width):
            session_id, row = flat[i], flat[i + 1 : i + width]
            try:
                out.append(codec.info_from_row(session_id, row, uid))
            except codec.CorruptRecord as exc:
                self.report_corrupt(self._row_key(uid, session_id), exc)
        return out

    def _row_key(self, uid: str, session_id: bytes) -> str:
        return self.keys.session(uid, session_id.decode(errors="replace"))

    # ------------------------------------------------------------------ maintenance

    def cleanup_expired_sessions(
        self,
        max_age: dt.timedelta | None = None,
        *,
        now: dt.datetime | None = None,
        batch_size: int = 100,
        dry_run: bool = False,
        progress: maintenance.Progress | None = None,
    ) -> Op[maintenance.SweepReport]:
        """The core operation behind ``SessionStore.cleanup_expired_sessions`` (documented there)."""
        return maintenance.sweep(
            self,
            max_age=max_age,
            now=now,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )

    def check(
        self,
        *,
        repair: bool = False,
        drop_corrupt: bool = False,
        count: int = 1000,
        progress: maintenance.Progress | None = None,
    ) -> Op[maintenance.CheckReport]:
        """The core operation behind ``SessionStore.check`` (documented there)."""
        return maintenance.check(
            self, repair=repair, drop_corrupt=drop_corrupt, count=count, progress=progress
        )
