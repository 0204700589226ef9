"""The bodies the routes take and give (msgspec Structs: Litestar decodes and documents them).

Request bodies reject unknown fields; contexts are free-form JSON objects checked by the store's
own validation (every problem with its JSON path, the nearest name for an unknown field).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from ..records import Message, Role, SessionInfo

Count = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class NewSession(_Strict):
    """``POST /sessions``: an optional folder to copy material from, an optional partial context."""

    folder_id: uuid.UUID | None = None
    context: dict[str, Any] | None = None


class Created(msgspec.Struct, kw_only=True):
    """The new session's id."""

    session_id: uuid.UUID


class SessionList(msgspec.Struct, kw_only=True):
    """A page of the user's sessions, most recent activity first."""

    sessions: list[SessionInfo]


class Ended(msgspec.Struct, kw_only=True):
    """``POST /sessions/{id}/end``."""

    session_id: uuid.UUID
    ended: bool


class NewMessage(_Strict):
    """``POST /sessions/{id}/messages``: one chat turn (an assistant turn may draw)."""

    role: Role
    text: Annotated[str, msgspec.Meta(max_length=1_000_000)]
    payload: Any = None
    whiteboard_actions: list[dict[str, Any]] | None = None


class Appended(msgspec.Struct, kw_only=True):
    """The turn number the new message got."""

    turn_no: int


class MessageList(msgspec.Struct, kw_only=True):
    """Messages, oldest first."""

    messages: list[Message]


class WhiteboardState(msgspec.Struct, kw_only=True):
    """The board at a snapshot: the actions of every snapshot up to it, in index order."""

    actions: list[dict[str, Any]]


class FolderBody(_Strict):
    """``PUT /folders/{id}``."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    vector_store_id: str | None = None
    knowledge_base: str = ""


class DeleteSessionBody(_Strict):
    """``POST /deleteSession``."""

    sessionId: str


class Deleted(msgspec.Struct, kw_only=True):
    """Whether the session existed (and is now gone)."""

    deleted: bool


class CleanupBody(_Strict):
    """``POST /cleanupExpiredSessions``: idle time after which sessions go (default: the store's)."""

    maxAgeMs: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)] | None = None


class CleanupResult(msgspec.Struct, kw_only=True):
    """How many sessions the sweep deleted."""

    deleted: int


class Validation(msgspec.Struct, kw_only=True):
    """``validateSessionContext``: every problem, each with its JSON path."""

    valid: bool
    errors: list[str]


class Health(msgspec.Struct, kw_only=True):
    """``/healthz`` and ``/readyz``."""

    status: str
