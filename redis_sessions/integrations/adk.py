"""The store as a Google ADK session service: ``RedisSessionService`` (extra ``adk``).

Each ADK session is a session of the store, for the ADK user id as the store's user id, under a
store id derived from (app name, ADK session id) (``store_session_id``): the same session serves
the tutor's typed context (``get_session_context``) and an ADK runner at once. Its events are its
messages (the event itself as the payload), its ``state`` the session's free-form state hash
beside the record (same slot, same expiry, deleted with it), the ``user:`` state a hash per (app,
user) in the user's slot, the ``app:`` state a hash per app (a slot of its own); ``temp:`` state
is never stored. The ADK session id is kept as given and given back.

Differences from ADK's own services (also in the README):
- ``list_sessions`` without a ``user_id`` (every user of the app) SCANs the whole store: each
  user's keys live in their own slot, and no index spans users.
- ``last_update_time`` is the store's ``updated_at`` (its clock, at the last write), not the last
  event's timestamp; a listing is ordered by it, oldest first, as ADK's.
- A session keeps at most ``StoreConfig.max_messages`` events (the oldest go first); ``get_session``
  filters by ``after_timestamp`` among those, by each event's own timestamp.
- Staleness: ``append_event`` raises ``StaleSessionError`` when the session's turn counter moved
  since the session object was read or last appended to (another event appended, or a message
  taken back; a pop followed by an append in between is not seen); a session object that this
  service did not make is not checked.
- The ``app:`` part of a state delta is written after the event and the rest of the delta (one
  more round trip, another slot): not atomically with them.
- A message the app appended itself (``append_message``) reads as an event authored by ``user`` or
  ``model`` with its text.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from google.genai import types
from pydantic import ValidationError

from .. import codec
from ..aio import AsyncSessionStore
from ..exceptions import InvalidInput, SessionNotFound
from ..keys import check_scope, check_user_id
from ..records import Message
from ..state_ops import StaleSession, state_changes

__all__ = ["RedisSessionService", "store_session_id"]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/redis-sessions/#adk")


def store_session_id(app_name: str, session_id: str) -> uuid.UUID:
    """The store's session id of an ADK session (the same for every user: each user's sessions
    live under their own keys). A UUID5 of the app name and the ADK id."""
    return uuid.uuid5(_NAMESPACE, f"{check_scope(app_name)}\x00{session_id}")


def _check_session_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not session_id:
        raise InvalidInput(f"session_id must be a non-empty str, got {session_id!r}")
    return session_id


def _event_message(event: Event) -> tuple[str, str, Any]:
    """(role, text, payload) of an event as a store message."""
    text = ""
    if event.content is not None and event.content.parts:
        text = "".join(part.text for part in event.content.parts if part.text)
    payload = event.model_dump(exclude_none=True, mode="json")
    return ("user" if event.author == "user" else "assistant", text, payload)


def _event(message: Message) -> Event:
    """The event a message holds, or an event made of a message the app appended itself."""
    payload = message.payload
    if isinstance(payload, dict) and {"author", "timestamp", "id"} <= payload.keys():
        try:
            return Event.model_validate(payload)
        except ValidationError:
            pass
    user = message.role == "user"
    return Event(
        id=f"turn-{message.turn_no}",
        author="user" if user else "model",
        content=types.Content(
            role="user" if user else "model", parts=[types.Part(text=message.text)]
        ),
        timestamp=message.created_at.timestamp(),
    )


def _merged(
    state: Mapping[str, Any], user: Mapping[str, Any], app: Mapping[str, Any]
) -> dict[str, Any]:
    merged = dict(state)
    merged.update({State.APP_PREFIX + k: v for k, v in app.items()})
    merged.update({State.USER_PREFIX + k: v for k, v in user.items()})
    return merged


def _timestamp(updated_at: str) -> float:
    return codec.parse_time(updated_at).timestamp()


class RedisSessionService(BaseSessionService):
    """A Google ADK ``BaseSessionService`` on an ``AsyncSessionStore`` (see the module docstring
    for the layout and the differences from ADK's own services). Round trips: ``create_session``
    4 (create, state, and the read that gives the merged state back; 5 with ``app:`` state),
    ``get_session`` 2 (the session's slot, the app's), ``list_sessions`` 2 with a user (3 when it
    removes entries of sessions the store deleted; without a user, a SCAN and one per user), ``delete_session`` 2, ``get_user_state`` 1,
    ``append_event`` 1 (2 with ``app:`` state)."""

    #: the store the sessions are kept in
    store: AsyncSessionStore

    def __init__(self, store: AsyncSessionStore) -> None:
        if not isinstance(store, AsyncSessionStore):
            raise InvalidInput(f"store must be an AsyncSessionStore, got {type(store).__name__}")
        self.store = store

    async def _app_state(self, app_name: str) -> dict[str, Any]:
        return await self.store._drive(self.store._core.get_app_state(app_name))

    async def _put_app_state(self, app_name: str, changes: Mapping[str, bytes]) -> None:
        if changes:
            await self.store._drive(self.store._core.put_app_state(app_name, changes))

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session (``session_id``: any non-empty string, a new UUID4 when None or "").
        Raises AlreadyExistsError when this user has a session of that id in the app, and
        InvalidInput for a bad id or state; nothing is written then."""
        check_scope(app_name)
        uid = check_user_id(user_id)
        adk_id = _check_session_id(session_id) if session_id else str(uuid.uuid4())
        deltas = _session_util.extract_state_delta(state or {})
        session_state = state_changes(deltas["session"], (), "state")
        user_state = state_changes(deltas["user"], (), "state['user:']")
        app_state = state_changes(deltas["app"], (), "state['app:']")
        sid = str(store_session_id(app_name, adk_id))
        core = self.store._core
        if not await self.store._drive(core.create_session_with_id(uid, sid)):
            raise AlreadyExistsError(f"Session with id {adk_id} already exists.")
        try:
            await self.store._drive(
                core.write_turns(
                    uid,
                    sid,
                    [],
                    state=session_state,
                    scope=app_name,
                    user_state=user_state,
                    scoped_entry=f"{sid} {adk_id}",
                )
            )
        except BaseException:
            await self.store.delete_session(sid, uid)  # no half-made session is left
            raise
        await self._put_app_state(app_name, app_state)
        return await self._read(app_name, uid, adk_id, 0)

    async def _read(
        self, app_name: str, uid: str, adk_id: str, count: int, after: float | None = None
    ) -> Session:
        session = await self._get(app_name, uid, adk_id, count, after)
        if session is None:  # deleted between the write and this read
            raise SessionNotFoundError(f"Session {adk_id} not found.")
        return session

    async def _get(
        self, app_name: str, uid: str, adk_id: str, count: int, after: float | None
    ) -> Session | None:
        sid = str(store_session_id(app_name, adk_id))
        read = await self.store._drive(self.store._core.read_state(uid, sid, count, app_name))
        if read is None:
            return None
        events = [_event(m) for m in read.messages]
        if after is not None:  # as ADK's: the events from the last one older than `after` on
            i = len(events) - 1
            while i >= 0 and events[i].timestamp >= after:
                i -= 1
            events = events[i + 1 :]
        app_state = await self._app_state(app_name)
        session = Session(
            id=adk_id,
            app_name=app_name,
            user_id=uid,
            state=_merged(read.state, read.user_state, app_state),
            events=events,
            last_update_time=_timestamp(read.updated_at),
        )
        session._storage_update_marker = str(read.turns)
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its events (the latest ``config.num_recent_events``, those at or
        after ``config.after_timestamp``) and its merged state; None when this user has no such
        session in the app."""
        check_scope(app_name)
        uid = check_user_id(user_id)
        adk_id = _check_session_id(session_id)
        count = self.store.config.max_messages
        after = None
        if config is not None:
            if config.num_recent_events is not None:
                count = min(count, config.num_recent_events)
            after = config.after_timestamp
        return await self._get(app_name, uid, adk_id, count, after)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The user's sessions in the app (every user's when ``user_id`` is None), without
        events, with their merged state, least recently updated first (ties by user, then id).

        Without ``user_id`` the whole store is SCANned for the users of the app (about one round
        trip per 1000 keys of the store, then one per user): an operator's call, not a hot path.
        """
        check_scope(app_name)
        core = self.store._core
        if user_id is None:
            users = await self.store._drive(core.scoped_users(app_name))
        else:
            users = [check_user_id(user_id)]
        app_state = await self._app_state(app_name)
        sessions = []
        for uid in users:
            user_state, rows = await self.store._drive(core.list_scoped(uid, app_name))
            sessions += [
                Session(
                    id=row.external_id,
                    app_name=app_name,
                    user_id=uid,
                    state=_merged(row.state, user_state, app_state),
                    last_update_time=_timestamp(row.updated_at),
                )
                for row in rows
            ]
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete the session with its events and state (the store's cascade). Nothing happens
        when there is no such session."""
        check_scope(app_name)
        uid = check_user_id(user_id)
        adk_id = _check_session_id(session_id)
        sid = str(store_session_id(app_name, adk_id))
        await self.store.delete_session(sid, uid)
        await self.store._drive(self.store._core.drop_scoped(uid, app_name, [f"{sid} {adk_id}"]))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state in the app, without the ``user:`` prefix. One round trip."""
        check_scope(app_name)
        uid = check_user_id(user_id)
        return await self.store._drive(self.store._core.get_user_state(uid, app_name))

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store the event as the session's next message and apply its state delta (session and
        ``user:`` state in the same atomic write; ``app:`` state after it), then update
        ``session``. Raises StaleSessionError when the stored session moved since ``session`` was
        read, SessionNotFoundError when it is gone, InvalidInput for an event that cannot be
        stored: nothing is written then."""
        if not isinstance(session, Session) or not isinstance(event, Event):
            raise InvalidInput("append_event takes an ADK Session and an ADK Event")
        if event.partial:
            return event
        check_scope(session.app_name)
        uid = check_user_id(session.user_id)
        adk_id = _check_session_id(session.id)
        sid = str(store_session_id(session.app_name, adk_id))
        trimmed = self._trim_temp_delta_state(event.model_copy(deep=True))
        delta = trimmed.actions.state_delta if trimmed.actions else {}
        deltas = _session_util.extract_state_delta(delta or {})
        session_state = state_changes(deltas["session"], (), "state_delta")
        user_state = state_changes(deltas["user"], (), "state_delta['user:']")
        app_state = state_changes(deltas["app"], (), "state_delta['app:']")
        role, text, payload = _event_message(trimmed)
        core = self.store._core
        blobs = core._encode_batch([(role, text, payload)], core.now())
        marker = session._storage_update_marker
        try:
            turns = await self.store._drive(
                core.write_turns(
                    uid,
                    sid,
                    blobs,
                    state=session_state,
                    scope=session.app_name,
                    user_state=user_state,
                    scoped_entry=f"{sid} {adk_id}",
                    expected_turns=int(marker) if marker is not None else None,
                )
            )
        except SessionNotFound as exc:
            raise SessionNotFoundError(f"Session {adk_id} not found.") from exc
        except StaleSession as exc:
            raise StaleSessionError(
                f"Session {adk_id} was changed by another writer since it was read "
                f"({exc}, expected {marker}): read it again."
            ) from exc
        await self._put_app_state(session.app_name, app_state)
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        self._commit_event_to_session(session, event)
        session.last_update_time = core.now().timestamp()  # about the stored updated_at
        session._storage_update_marker = str(turns)
        return event
