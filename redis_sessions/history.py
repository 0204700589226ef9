"""The conversation of a session: messages and whiteboard snapshots, as core operations.

Messages live in the hash ``...:msgs`` (turn number -> message JSON), snapshots in ``...:wb`` (the
turn that drew it -> actions JSON), beside the session record; ``append_message`` allocates turns
atomically, and the reads take one round trip each.
"""

from __future__ import annotations

import uuid
from typing import Any

from . import codec, message_codec, write_codec
from ._corebase import (
    CoreBase,
    _check_int,
)
from .exceptions import (
    InvalidInput,
    SessionNotFound,
)
from .keys import check_user_id, check_uuid
from .records import Message
from .requests import Arg, Op, RunScript
from .scripts import ScriptName


class MessageOps(CoreBase):
    """The core operations on a session's messages and whiteboard."""

    def append_message(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        role: str,
        text: str,
        *,
        payload: Any = None,
        whiteboard_actions: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
    ) -> Op[int]:
        """The core operation behind ``SessionStore.append_message`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        now = self.now()
        message, snapshot = message_codec.encode_message(
            role, text, payload, whiteboard_actions, now
        )
        size = len(message) + len(snapshot)
        if size > self.config.max_context_bytes:
            raise InvalidInput(
                f"message is {size} bytes, more than max_context_bytes={self.config.max_context_bytes}"
            )
        stamp = codec.iso(now)
        args: list[Arg] = [
            *self._write_args(uid, sid, now),
            stamp,
            self.config.max_messages,
            message,
            snapshot,
        ]
        with self._writing((uid, sid)) as write:
            reply = yield RunScript(ScriptName.APPEND, self._write_keys(uid, sid, request_id), args)
            turn = int(reply[0])
            if turn == 0:
                raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
            self._written_around(reply[3])
            if write.before is not None:
                patch = {
                    b"turns": str(turn).encode(),
                    b"updated_at": stamp.encode(),
                    **write_codec.monotonic_fields(reply[1], reply[2]),
                }
                write.after = {**write.before, **patch}
            return turn

    def get_messages(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        limit: int = 50,
        before_turn_no: int | None = None,
    ) -> Op[list[Message]]:
        """The core operation behind ``SessionStore.get_messages`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        limit = min(_check_int(limit, "limit", minimum=1), self.config.max_messages)
        if before_turn_no is not None:
            _check_int(before_turn_no, "before_turn_no", minimum=1)
        reply = yield from self._read_script(
            uid, sid, limit, whole=False, snapshots=False, before=before_turn_no
        )
        if not reply:
            return []
        messages, problems = message_codec.decode_messages(int(reply[1]), reply[2])
        self._report_parts(uid, sid, problems, [])
        return messages

    def get_whiteboard_state(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        target_snapshot_index: int | None = None,
    ) -> Op[list[dict[str, Any]]]:
        """The core operation behind ``SessionStore.get_whiteboard_state`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if target_snapshot_index is not None:
            _check_int(target_snapshot_index, "target_snapshot_index", minimum=0)
        record_key, _, snapshots_key = self.keys.session_keys(uid, sid)
        flat = yield RunScript(
            ScriptName.BOARD,
            [record_key, snapshots_key],
            [uid, "" if target_snapshot_index is None else target_snapshot_index],
        )
        actions, problems = message_codec.board_actions(flat)
        self._report_parts(uid, sid, [], problems)
        return actions
