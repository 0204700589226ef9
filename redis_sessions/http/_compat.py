"""Folders, and the five endpoints of the system this store replaces, under their own names:
``deleteSession``, ``listUserSessions``, ``cleanupExpiredSessions`` (operators only),
``getFolderData`` and ``validateSessionContext``, over the same store calls as the REST routes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec
from litestar import get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from ..exceptions import CorruptData
from ..records import Folder
from ._caller import CallerDep, OperatorDep
from ._problems import not_found, responses
from ._schemas import (
    CleanupBody,
    CleanupResult,
    Deleted,
    DeleteSessionBody,
    FolderBody,
    SessionList,
    Validation,
)
from ._sessions import MAX_PAGE, Limit, Offset


@get(
    "/folders/{folder_id:uuid}",
    summary="Read a folder",
    responses=responses(400, 401, 404, 503),
)
async def read_folder(folder_id: FromPath[uuid.UUID], caller: CallerDep) -> Folder:
    """The caller's folder. One round trip."""
    user, store = caller.user, caller.store
    folder = await store.get_folder_data(folder_id, user)
    if folder is None:
        raise not_found("folder")
    return folder


@put(
    "/folders/{folder_id:uuid}",
    summary="Create or replace a folder",
    responses=responses(400, 401, 404, 413, 422, 503),
)
async def put_folder(
    folder_id: FromPath[uuid.UUID], data: JSONBody[FolderBody], caller: CallerDep
) -> Folder:
    """Create or replace the caller's folder; answers it as stored. One round trip."""
    user, store = caller.user, caller.store
    folder = Folder(
        id=folder_id,
        name=data.name,
        vector_store_id=data.vector_store_id,
        knowledge_base=data.knowledge_base,
    )
    return await store.put_folder(user, folder)


@post(
    "/deleteSession",
    status_code=200,
    summary="Delete a session (compatibility)",
    responses=responses(400, 401, 413, 422, 503),
)
async def delete_session_compat(data: JSONBody[DeleteSessionBody], caller: CallerDep) -> Deleted:
    """``{"sessionId"}`` -> whether the caller's session existed and is now gone. One round
    trip."""
    user, store = caller.user, caller.store
    return Deleted(deleted=await store.delete_session(data.sessionId, user))


@get(
    "/listUserSessions",
    summary="List the caller's sessions (compatibility)",
    responses=responses(400, 401, 503),
)
async def list_sessions_compat(
    caller: CallerDep, limit: Limit = 50, offset: Offset = 0
) -> SessionList:
    """As ``GET /sessions``. One round trip."""
    user, store = caller.user, caller.store
    rows = await store.list_user_sessions(user, limit=min(limit, MAX_PAGE), offset=offset)
    return SessionList(sessions=rows)


@post(
    "/cleanupExpiredSessions",
    status_code=200,
    summary="Delete expired sessions (operators only)",
    responses=responses(400, 401, 403, 413, 503),
)
async def cleanup_compat(
    operator: OperatorDep, data: JSONBody[CleanupBody | None] = None
) -> CleanupResult:
    """Sweep every session idle longer than ``maxAgeMs`` (default: the store's ``max_age``).
    Needs the admin claim. Round trips: those of ``cleanup_expired_sessions`` (64 pipelined
    reads, plus one script per slot holding expired sessions)."""
    store = operator
    max_age = None
    if data is not None and data.maxAgeMs is not None:
        max_age = dt.timedelta(milliseconds=data.maxAgeMs)
    report = await store.cleanup_expired_sessions(max_age)
    return CleanupResult(deleted=report.deleted)


@get(
    "/getFolderData",
    summary="Read a folder (compatibility)",
    responses=responses(400, 401, 404, 422, 503),
)
async def folder_compat(
    caller: CallerDep, folder_id: Annotated[str, QueryParameter(name="folderId")]
) -> Folder:
    """As ``GET /folders/{id}``. One round trip."""
    user, store = caller.user, caller.store
    folder = await store.get_folder_data(folder_id, user)
    if folder is None:
        raise not_found("folder")
    return folder


@get(
    "/validateSessionContext",
    summary="Validate a stored session's context (compatibility)",
    responses=responses(400, 401, 404, 422, 503),
)
async def validate_stored(
    caller: CallerDep,
    session_id: Annotated[str, QueryParameter(name="sessionId")],
) -> Validation:
    """Whether the caller's stored session decodes and validates, with every problem. One
    round trip; none on a cache hit."""
    user, store = caller.user, caller.store
    try:
        session = await store.get_session(session_id, user)
    except CorruptData as exc:
        return Validation(valid=False, errors=[exc.problem])
    if session is None:
        raise not_found()
    result = store.validate_session_context(msgspec.to_builtins(session.context))
    return Validation(valid=result.valid, errors=result.errors)


@post(
    "/validateSessionContext",
    status_code=200,
    summary="Validate a context (compatibility)",
    responses=responses(400, 401, 413, 503),
)
async def validate_body(data: JSONBody[dict[str, Any]], caller: CallerDep) -> Validation:
    """Whether the body is a valid context, with every problem and its JSON path. No round
    trip."""
    result = caller.store.validate_session_context(data)
    return Validation(valid=result.valid, errors=result.errors)


ROUTES = [
    read_folder,
    put_folder,
    delete_session_compat,
    list_sessions_compat,
    cleanup_compat,
    folder_compat,
    validate_stored,
    validate_body,
]
