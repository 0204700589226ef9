"""Core operations for agent frameworks: message batches, taking the last message back, clearing a
history, and free-form state (a session's, a user's per scope, a scope's shared by its users).

A session's state is the hash ``...:s:<sid>:state`` beside its record (field -> JSON): it expires
and is deleted with the session (see ``state_key`` in lua/_lib.lua). A user's state in a scope (an
app) is ``rs:{u:<u>}:us:<scope>``, in the user's slot, so one script can write it with a session;
a scope's shared state is ``rs:{a:<scope>}:as``, in a slot of its own. Every operation is one round
trip.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from . import codec, message_codec, write_codec
from ._corebase import CoreBase
from .codec import _encoder
from .exceptions import InvalidInput, SessionNotFound
from .keys import check_scope, check_user_id, check_uuid
from .models import TutorContext
from .records import Message
from .requests import Arg, Command, Op, RunScript, ScanBatch
from .scripts import ScriptName
from .validation import MAX_DEPTH, free_form_errors

#: One new message of a batch: (role, text, payload).
NewMessage = tuple[str, str, Any]


class StaleSession(Exception):
    """A write that named the turn counter it last read found another one (nothing written)."""

    def __init__(self, turns: int) -> None:
        super().__init__(f"the session's turn counter is {turns}")
        self.turns = turns


@dataclasses.dataclass(frozen=True)
class StateRead:
    """What ``read_state`` found: the turn counter (the staleness marker), last activity, the
    latest messages, the session's state and the user's state of the scope."""

    turns: int
    updated_at: str
    messages: list[Message]
    state: dict[str, Any]
    user_state: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ScopedRow:
    """One session of a user's scoped index (``list_scoped``)."""

    external_id: str
    session_id: str
    updated_at: str
    state: dict[str, Any]


def encode_value(key: object, value: Any, where: str) -> bytes:
    """The JSON of one state value; InvalidInput (naming the key) for what cannot be stored: a key
    that is not a str, NaN or infinity, nesting deeper than MAX_DEPTH, a value JSON cannot hold."""
    if not isinstance(key, str):
        raise InvalidInput(f"{where} keys must be str, got {type(key).__name__}")
    root = f"{where}[{key!r}]"
    try:
        blob = _encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        errors = free_form_errors(value, root)
        raise InvalidInput(
            errors[0] if errors else f"{root} cannot be encoded as JSON: {exc}"
        ) from exc
    if b"null" in blob or blob.count(b"[") + blob.count(b"{") > MAX_DEPTH:
        errors = free_form_errors(value, root)
        if errors:
            raise InvalidInput(errors[0])
    return blob


def state_changes(
    changes: Mapping[str, Any], remove: Iterable[str], where: str
) -> dict[str, bytes]:
    """Field -> JSON to write, and field -> b"" to remove (the scripts' convention)."""
    if not isinstance(changes, Mapping):
        raise InvalidInput(f"{where} must be a mapping, got {type(changes).__name__}")
    out = {key: encode_value(key, value, where) for key, value in changes.items()}
    for key in [remove] if isinstance(remove, str) else remove:
        if not isinstance(key, str):
            raise InvalidInput(f"{where} keys must be str, got {type(key).__name__}")
        if key in out:
            raise InvalidInput(f"{where}: {key!r} is both set and removed")
        out[key] = b""
    return out


class StateOps(CoreBase):
    """The core operations on message batches and free-form state."""

    def _decode_state(self, key: str, fields: list[bytes] | dict[bytes, bytes]) -> dict[str, Any]:
        """A state hash's fields (a flat list, or HGETALL's dict) decoded; a value that is not
        JSON is left out and reported."""
        pairs = (
            fields.items()
            if isinstance(fields, dict)
            else zip(fields[::2], fields[1::2], strict=True)
        )
        out: dict[str, Any] = {}
        for raw_name, raw_value in pairs:
            name = bytes(raw_name).decode(errors="replace")
            try:
                out[name] = msgspec.json.decode(raw_value)
            except msgspec.DecodeError as exc:
                self.report_corrupt(key, f"state field {name!r}: {exc}")
        return out

    def _encode_batch(self, messages: Sequence[NewMessage], now: Any) -> list[bytes]:
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise InvalidInput("messages must be a sequence of (role, text, payload) tuples")
        blobs = []
        for i, item in enumerate(messages):
            if not isinstance(item, tuple) or len(item) != 3:
                raise InvalidInput(f"messages[{i}] must be a (role, text, payload) tuple")
            blob, _ = message_codec.encode_message(item[0], item[1], item[2], None, now)
            if len(blob) > self.config.max_context_bytes:
                raise InvalidInput(
                    f"messages[{i}] is {len(blob)} bytes, more than "
                    f"max_context_bytes={self.config.max_context_bytes}"
                )
            blobs.append(blob)
        return blobs

    def write_turns(
        self,
        uid: str,
        sid: str,
        blobs: Sequence[bytes],
        *,
        state: Mapping[str, bytes] | None = None,
        scope: str | None = None,
        user_state: Mapping[str, bytes] | None = None,
        scoped_entry: str = "",
        expected_turns: int | None = None,
        request_id: str | None = None,
    ) -> Op[int]:
        """Append encoded messages and change state in one atomic script (lua/append_many.lua).
        Returns the turn counter afterwards; raises SessionNotFound for a missing or foreign
        session, StaleSession when ``expected_turns`` is not the counter (nothing written)."""
        state, user_state = state or {}, user_state or {}
        if (user_state or scoped_entry) and scope is None:
            raise InvalidInput("user state and a scoped entry need a scope")
        now = self.now()
        state_key = self.keys.session_state(uid, sid)
        keys = [
            *self._write_keys(uid, sid, request_id),
            state_key,
            self.keys.user_state(uid, scope) if scope is not None else state_key,
            self.keys.scoped_index(uid, scope) if scope is not None else state_key,
        ]
        args: list[Arg] = [
            *self._write_args(uid, sid, now),
            codec.iso(now),
            self.config.max_messages,
            "" if expected_turns is None else expected_turns,
            len(blobs),
            len(state),
            len(user_state),
            scoped_entry,
            *blobs,
            *codec.flatten(state.items()),
            *codec.flatten(user_state.items()),
        ]
        with self._writing((uid, sid)):
            reply = yield RunScript(ScriptName.APPEND_MANY, keys, args)
        if int(reply[0]) == 0:
            raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
        if int(reply[0]) == -1:
            raise StaleSession(int(reply[1]))
        self._written_around(reply[4])
        return int(reply[1])

    def append_messages(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        messages: Sequence[NewMessage],
        *,
        request_id: str | None = None,
    ) -> Op[int]:
        """The core operation behind ``SessionStore.append_messages`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        blobs = self._encode_batch(messages, self.now())
        return (yield from self.write_turns(uid, sid, blobs, request_id=request_id))

    def _history_write(
        self, name: ScriptName, session_id: str | uuid.UUID, user_id: str, request_id: str | None
    ) -> Op[list[Any]]:
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        now = self.now()
        args = [*self._write_args(uid, sid, now), codec.iso(now)]
        with self._writing((uid, sid)):
            reply: list[Any] = yield RunScript(name, self._write_keys(uid, sid, request_id), args)
        if int(reply[0]) == 0:
            raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
        if len(reply) > 2:
            self._written_around(reply[-1])
        return reply

    def pop_message(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[Message | None]:
        """The core operation behind ``SessionStore.pop_message`` (documented there)."""
        reply = yield from self._history_write(ScriptName.POP, session_id, user_id, request_id)
        if int(reply[0]) == 1:
            return None
        turn = int(reply[1])
        messages, problems = message_codec.decode_messages(turn, [reply[2]])
        self._report_parts(check_user_id(user_id), check_uuid(session_id), problems, [])
        return messages[0] if messages else None

    def clear_messages(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[int]:
        """The core operation behind ``SessionStore.clear_messages`` (documented there)."""
        reply = yield from self._history_write(ScriptName.CLEAR, session_id, user_id, request_id)
        return int(reply[1])

    def read_state(
        self, uid: str, sid: str, count: int, scope: str | None = None
    ) -> Op[StateRead | None]:
        """The session's turn counter, last activity, latest ``count`` messages (all kept ones
        when ``count`` is at least ``max_messages``) and state, with the user's state of ``scope``;
        None for a missing or foreign session. One round trip (lua/read_state.lua)."""
        state_key = self.keys.session_state(uid, sid)
        user_key = self.keys.user_state(uid, scope) if scope is not None else state_key
        record_key, messages_key, _ = self.keys.session_keys(uid, sid)
        reply = yield RunScript(
            ScriptName.READ_STATE,
            [record_key, messages_key, state_key, user_key],
            [uid, min(count, self.config.max_messages), "1" if scope is not None else "0"],
        )
        if not reply:
            return None
        messages, problems = message_codec.decode_messages(int(reply[2]), reply[3])
        self._report_parts(uid, sid, problems, [])
        return StateRead(
            turns=int(reply[0]),
            updated_at=bytes(reply[1]).decode(),
            messages=messages,
            state=self._decode_state(state_key, reply[4]),
            user_state=self._decode_state(user_key, reply[5]) if scope is not None else {},
        )

    def get_session_state(
        self, session_id: str | uuid.UUID, user_id: str
    ) -> Op[dict[str, Any] | None]:
        """The core operation behind ``SessionStore.get_session_state`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        read = yield from self.read_state(uid, sid, 0)
        return None if read is None else read.state

    def update_session_state(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        changes: Mapping[str, Any],
        *,
        remove: Iterable[str] = (),
        request_id: str | None = None,
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.update_session_state`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        state = state_changes(changes, remove, "state")
        try:
            yield from self.write_turns(uid, sid, [], state=state, request_id=request_id)
        except SessionNotFound:
            return False
        return True

    # ------------------------------------------------------------ for the integrations

    def create_session_with_id(
        self, uid: str, sid: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """Create a session with the reference default context under a chosen id (integrations
        that derive the id from their own); False when the id is taken (nothing written). One
        round trip (lua/create.lua)."""
        now = self.now()
        context = TutorContext(user_id=uid, session_id=uuid.UUID(sid))
        fields = write_codec.encode_context(
            context, user_id=uid, session_id=sid, max_bytes=self.config.max_context_bytes
        )
        record = write_codec.record_fields(
            user_id=uid, session_id=sid, now=now, context_fields=fields
        )
        keys = self._write_keys(uid, sid, request_id)
        args = [*self._write_args(uid, sid, now), "", *codec.flatten(record.items())]
        with self._writing((uid, sid)):
            reply = yield RunScript(ScriptName.CREATE, keys, args)
        if int(reply[0]) != 1:
            return False
        if bytes(reply[2]).decode() != sid:  # a request id that created another session
            raise InvalidInput("request_id was already used to create another session")
        self._written_around(reply[3])
        return True

    def list_scoped(self, uid: str, scope: str) -> Op[tuple[dict[str, Any], list[ScopedRow]]]:
        """The user's state of ``scope`` and the sessions of the user's scoped index, oldest write
        first; entries whose session is gone are removed (a second round trip, only then)."""
        index_key, user_key = self.keys.scoped_index(uid, scope), self.keys.user_state(uid, scope)
        reply = yield RunScript(
            ScriptName.LIST_SCOPED, [index_key, user_key], [self.keys.session_prefix(uid), uid]
        )
        user_state = self._decode_state(user_key, reply[0])
        flat = reply[1]
        rows = [
            ScopedRow(
                external_id=bytes(flat[i]).decode(),
                session_id=bytes(flat[i + 1]).decode(),
                updated_at=bytes(flat[i + 2]).decode(),
                state=self._decode_state(
                    self.keys.session_state(uid, bytes(flat[i + 1]).decode()), flat[i + 3]
                ),
            )
            for i in range(0, len(flat), 4)
        ]
        if reply[2]:
            yield from self.drop_scoped(uid, scope, [bytes(e).decode() for e in reply[2]])
        return user_state, rows

    def scoped_users(self, scope: str, count: int = 1000) -> Op[list[str]]:
        """The users who have a scoped index of ``scope``: a SCAN of the whole store, in batches
        of about ``count`` keys (one round trip each, on every primary of a cluster)."""
        pattern = self.keys.scoped_index_pattern(check_scope(scope))
        users: set[str] = set()
        cursor: Any = None
        while True:
            cursor, batch = yield ScanBatch(pattern, count, cursor)
            for key in batch:
                try:
                    info = self.keys.classify(key)
                except UnicodeDecodeError:  # not UTF-8: no key the store writes
                    continue
                if (
                    info is not None
                    and info.kind == "ext"
                    and info.user_id is not None
                    and self.keys.scoped_index(info.user_id, scope).encode() == bytes(key)
                ):
                    users.add(info.user_id)
            if cursor is None:
                return sorted(users)

    def drop_scoped(self, uid: str, scope: str, entries: Sequence[str]) -> Op[int]:
        """Remove entries from the user's scoped index. One round trip."""
        removed = yield Command(("ZREM", self.keys.scoped_index(uid, scope), *entries))
        return int(removed)

    def get_user_state(self, uid: str, scope: str) -> Op[dict[str, Any]]:
        """The user's state in ``scope``. One round trip."""
        key = self.keys.user_state(uid, check_scope(scope))
        fields = yield from self._read_hash("HGETALL", key)
        return self._decode_state(key, fields)

    def get_app_state(self, scope: str) -> Op[dict[str, Any]]:
        """The state shared by every user of ``scope``. One round trip."""
        key = self.keys.app_state(check_scope(scope))
        flat = yield from self._read_hash("HGETALL", key)
        return self._decode_state(key, flat)

    def put_app_state(self, scope: str, changes: Mapping[str, bytes]) -> Op[int]:
        """Write (field -> JSON) or remove (field -> b"") fields of the state shared by every user
        of ``scope``. One round trip (lua/put_state.lua)."""
        key = self.keys.app_state(check_scope(scope))
        if not changes:
            return 0
        size = yield RunScript(ScriptName.PUT_STATE, [key], codec.flatten(changes.items()))
        return int(size)
