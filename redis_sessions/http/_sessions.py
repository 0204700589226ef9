"""The session routes: create, list, read, replace, patch, delete, end, messages, whiteboard.

Every route is scoped to the token's subject (``user``): another user's session id answers 404,
exactly as a missing one.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Response, delete, get, patch, post, put
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from ..models import TutorContext
from ..records import Session
from ._caller import CallerDep
from ._patch import merge_patch
from ._problems import HTTPProblem, invalid, not_found, responses
from ._schemas import (
    Appended,
    Created,
    Ended,
    MessageList,
    NewMessage,
    NewSession,
    SessionList,
    WhiteboardState,
)
from ._writes import checked_context, etag, lean_json, parse_if_match, write_at, write_context

MAX_PAGE = 100
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Replays within 60 s return the first result (1-64 of A-Z a-z 0-9 _ . -)",
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
    ),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", required=False, description='The ETag read ("<version>")'),
]
Limit = Annotated[int, QueryParameter(ge=0, le=2**31, description="Capped at 100")]
Offset = Annotated[int, QueryParameter(ge=0, le=10_000)]


@post(
    "/sessions",
    status_code=201,
    summary="Create a session",
    responses=responses(400, 401, 413, 422, 503),
)
async def create_session(
    data: JSONBody[NewSession], caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Response[Created]:
    """Create a session of the caller, optionally from a folder and a partial context.
    One round trip."""
    user, store = caller.user, caller.store
    sid = await store.create_session(user, data.folder_id, data.context, request_id=idempotency_key)
    return Response(
        Created(session_id=sid), status_code=201, headers={"Location": f"/sessions/{sid}"}
    )


@get("/sessions", summary="List the caller's sessions", responses=responses(400, 401, 503))
async def list_sessions(caller: CallerDep, limit: Limit = 50, offset: Offset = 0) -> SessionList:
    """The caller's sessions, most recent activity first (``limit`` capped at 100). One round
    trip."""
    user, store = caller.user, caller.store
    rows = await store.list_user_sessions(user, limit=min(limit, MAX_PAGE), offset=offset)
    return SessionList(sessions=rows)


@get(
    "/sessions/{session_id:uuid}",
    summary="Read a session's context",
    responses=responses(400, 401, 404, 503),
)
async def read_session(
    session_id: FromPath[uuid.UUID], caller: CallerDep
) -> Response[TutorContext]:
    """The lean context (defaults left out, no history), with its version as the ETag. One
    round trip; none on a cache hit."""
    user, store = caller.user, caller.store
    session = await store.get_session(session_id, user)
    if session is None:
        raise not_found()
    return Response(session.context, headers={"ETag": etag(session.version)})


@put(
    "/sessions/{session_id:uuid}",
    summary="Replace a session's context",
    responses=responses(400, 401, 404, 409, 412, 413, 422, 503),
)
async def replace_session(
    session_id: FromPath[uuid.UUID],
    data: JSONBody[dict[str, Any]],
    caller: CallerDep,
    if_match: IfMatch = None,
) -> Response[TutorContext]:
    """Replace the whole context (``user_id``/``session_id`` may be left out). With
    ``If-Match``, 412 when the version moved. Answers the new ETag. One round trip with one
    ``If-Match`` version (Redis compares it: a cached read of another worker's older version
    can never answer a false 412); otherwise two (the read: none on a cache hit)."""
    user, store = caller.user, caller.store
    allowed = parse_if_match(if_match)
    context = checked_context(data, store, session_id, user)
    if allowed is not None and len(allowed) == 1:
        version = await write_at(store, session_id, user, context, next(iter(allowed)))
        return Response(context, headers={"ETag": etag(version)})
    version, written = await write_context(store, session_id, user, lambda _: context, allowed)
    return Response(written, headers={"ETag": etag(version)})


@patch(
    "/sessions/{session_id:uuid}",
    summary="Change a session's context (JSON merge patch, RFC 7396)",
    responses=responses(400, 401, 404, 409, 412, 413, 422, 503),
)
async def patch_session(
    session_id: FromPath[uuid.UUID],
    data: JSONBody[dict[str, Any]],
    caller: CallerDep,
    if_match: IfMatch = None,
) -> Response[TutorContext]:
    """Apply a JSON merge patch to the context (``null`` resets a field to its default). With
    ``If-Match``, 412 when the version moved; without, a race re-reads and patches again. Two
    round trips per attempt (the read: none on a cache hit)."""
    user, store = caller.user, caller.store
    allowed = parse_if_match(if_match)
    for name in ("user_id", "session_id"):
        if name in data:
            raise invalid([f"$.{name}: cannot be changed"])

    def build(session: Session) -> TutorContext:
        return checked_context(
            merge_patch(lean_json(session.context), data), store, session_id, user
        )

    version, written = await write_context(store, session_id, user, build, allowed)
    return Response(written, headers={"ETag": etag(version)})


@delete(
    "/sessions/{session_id:uuid}",
    status_code=204,
    summary="Delete a session with its messages and snapshots",
    responses=responses(400, 401, 404, 422, 503),
)
async def delete_session(
    session_id: FromPath[uuid.UUID],
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Delete the session, its messages, snapshots and index entries (atomically). One round
    trip."""
    user, store = caller.user, caller.store
    if not await store.delete_session(session_id, user, request_id=idempotency_key):
        raise not_found()


@post(
    "/sessions/{session_id:uuid}/end",
    status_code=200,
    summary="End a session",
    responses=responses(400, 401, 404, 422, 503),
)
async def end_session(
    session_id: FromPath[uuid.UUID],
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Ended:
    """Record the session's end time (the first one is kept). One round trip."""
    user, store = caller.user, caller.store
    if not await store.end_session(session_id, user, request_id=idempotency_key):
        raise not_found()
    return Ended(session_id=session_id, ended=True)


@get(
    "/sessions/{session_id:uuid}/messages",
    summary="Read messages, oldest first",
    responses=responses(400, 401, 404, 422, 503),
)
async def get_messages(
    session_id: FromPath[uuid.UUID],
    caller: CallerDep,
    limit: Limit = 50,
    before_turn_no: Annotated[int | None, QueryParameter(ge=0, le=2**53 - 1)] = None,
) -> MessageList:
    """The newest ``limit`` (capped at 100) messages below ``before_turn_no``, oldest first.
    One round trip (two when there are none: a missing session is 404)."""
    user, store = caller.user, caller.store
    messages = await store.get_messages(
        session_id, user, limit=min(limit, MAX_PAGE), before_turn_no=before_turn_no
    )
    if not messages and not await store.session_exists(session_id, user):
        raise not_found()
    return MessageList(messages=messages)


@post(
    "/sessions/{session_id:uuid}/messages",
    status_code=201,
    summary="Append a message",
    responses=responses(400, 401, 404, 413, 422, 503),
)
async def append_message(
    session_id: FromPath[uuid.UUID],
    data: JSONBody[NewMessage],
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Appended:
    """Append a turn (with whiteboard actions: a snapshot under its turn number). One round
    trip."""
    user, store = caller.user, caller.store
    turn = await store.append_message(
        session_id,
        user,
        data.role,
        data.text,
        payload=data.payload,
        whiteboard_actions=data.whiteboard_actions,
        request_id=idempotency_key,
    )
    return Appended(turn_no=turn)


@get(
    "/sessions/{session_id:uuid}/whiteboard_state_at_turn",
    summary="The whiteboard as it stood at a snapshot",
    responses=responses(400, 401, 404, 422, 503),
)
async def whiteboard_state(
    session_id: FromPath[uuid.UUID],
    caller: CallerDep,
    target_snapshot_index: Annotated[int | None, QueryParameter(ge=0, le=2**53 - 1)] = None,
) -> WhiteboardState:
    """The actions of every snapshot up to ``target_snapshot_index`` (the latest when absent).
    One round trip (two when there are none: a missing session is 404)."""
    user, store = caller.user, caller.store
    actions = await store.get_whiteboard_state(session_id, user, target_snapshot_index)
    if not actions and not await store.session_exists(session_id, user):
        raise not_found()
    return WhiteboardState(actions=actions)


ROUTES = [
    create_session,
    list_sessions,
    read_session,
    replace_session,
    patch_session,
    delete_session,
    end_session,
    get_messages,
    append_message,
    whiteboard_state,
]
__all__ = ["ROUTES", "HTTPProblem"]
