"""Context writes with HTTP's preconditions: ``ETag`` carries the record's version, ``If-Match``
makes a write conditional (412 when the version moved), and without it a write re-reads and
retries on a race, so the ETag it answers is exactly the version it wrote."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import msgspec

from ..aio import AsyncSessionStore
from ..exceptions import VersionConflict
from ..models import TutorContext
from ..records import Session
from ._problems import HTTPProblem, invalid, not_found

RETRIES = 10
BULKY = ("history", "whiteboard_history")  # never stored in the record: dropped from bodies


def etag(version: int) -> str:
    """The strong entity tag of a record version."""
    return f'"{version}"'


def parse_if_match(value: str | None) -> frozenset[int] | None:
    """The versions an ``If-Match`` header allows: None when absent or ``*`` (any existing
    record); a tag that is not one of ours can never match (an empty set: 412)."""
    if value is None or value.strip() == "*":
        return None
    versions = set()
    for raw in value.split(","):
        tag = raw.strip()
        tag = tag.removeprefix("W/")  # a weak tag compares as its opaque part here
        if len(tag) >= 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
            versions.add(int(tag[1:-1]))
    return frozenset(versions)


def checked_context(
    data: object, store: AsyncSessionStore, session_id: uuid.UUID, user: str
) -> TutorContext:
    """``data`` (a decoded JSON body) as a valid TutorContext of this session and user, or 422.

    ``user_id`` and ``session_id`` may be left out (they are filled in); given, they must match.
    ``history`` and ``whiteboard_history`` are dropped (the record never holds them).
    """
    if not isinstance(data, dict):
        raise invalid(["$: a context must be a JSON object"])
    body = {k: v for k, v in data.items() if k not in BULKY}
    errors = []
    if body.setdefault("user_id", user) != user:
        errors.append("$.user_id: must be the caller (the token's subject) or left out")
    if body.setdefault("session_id", str(session_id)) != str(session_id):
        errors.append("$.session_id: must be the session of the URL or left out")
    if errors:
        raise invalid(errors, "the context does not belong to this session")
    result = store.validate_session_context(body)
    if not result.valid or result.context is None:
        raise invalid(result.errors, "invalid context")
    return result.context


async def write_context(
    store: AsyncSessionStore,
    session_id: uuid.UUID,
    user: str,
    build: Callable[[Session], TutorContext],
    allowed: frozenset[int] | None,
) -> tuple[int, TutorContext]:
    """Write ``build(session)`` over the session with ``expected_version``; returns the new
    version and the context written. With ``allowed`` (If-Match), a version outside it is 412;
    without, a race re-reads and builds again (409 after RETRIES). Two round trips per attempt
    (none for the read on a cache hit)."""
    for _ in range(RETRIES):
        session = await store.get_session(session_id, user)
        if session is None:
            raise not_found()
        if allowed is not None and session.version not in allowed:
            raise precondition_failed(session.version)
        context = build(session)
        try:
            written = await store.update_session_context(
                session_id, user, context, expected_version=session.version
            )
        except VersionConflict as exc:
            if allowed is not None:
                raise precondition_failed(exc.actual) from exc
            continue
        if not written:
            raise not_found()
        return session.version + 1, context
    raise HTTPProblem(409, "other writers changed the session on every attempt; try again")


async def write_at(
    store: AsyncSessionStore, session_id: uuid.UUID, user: str, context: TutorContext, version: int
) -> int:
    """Write ``context`` if the record is at ``version`` (412 otherwise, 404 when missing);
    returns the new version. One round trip."""
    try:
        written = await store.update_session_context(
            session_id, user, context, expected_version=version
        )
    except VersionConflict as exc:
        raise precondition_failed(exc.actual) from exc
    if not written:
        raise not_found()
    return version + 1


def precondition_failed(current: int) -> HTTPProblem:
    """412, telling the current version."""
    return HTTPProblem(
        412,
        f"the session is at version {current}: read it again",
        headers={"ETag": etag(current)},
    )


def lean_json(context: TutorContext) -> dict[str, object]:
    """The context as the store writes it (defaults left out), as a JSON object."""
    out: dict[str, object] = msgspec.to_builtins(context)
    return out
