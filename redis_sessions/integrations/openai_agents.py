"""The store as a session of the OpenAI Agents SDK: ``AgentSession`` (extra ``openai-agents``).

An ``AgentSession`` is bound to one (session, user) of an ``AsyncSessionStore`` and satisfies the
SDK's ``Session`` protocol, so ``Runner.run(agent, input, session=...)`` keeps its history as the
session's messages: one message per item, the item itself as the payload, its role mapped to the
store's (``user``, ``assistant``, ``system``). The store's own ``get_messages`` sees the same
history, and a message the app appended itself (``append_message``) reaches the agent as an easy
input message ``{"role", "content"}``. Items expire and are deleted with the session, like every
message, and a session keeps at most ``StoreConfig.max_messages`` of them (the oldest go first).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit

from ..aio import AsyncSessionStore
from ..exceptions import InvalidInput, SessionNotFound
from ..keys import check_user_id, check_uuid
from ..models import TutorContext
from ..records import Message

__all__ = ["AgentSession"]

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _role(item: Mapping[str, Any]) -> str:
    """The store role of an item: its own (``developer`` is ``system``); an item without one (a
    tool call, a tool's output, reasoning) is part of the agent's turn: ``assistant``."""
    role = item.get("role")
    if role is None:
        return "assistant"
    if role not in _ROLES:
        raise InvalidInput(f"item role must be one of {sorted(_ROLES)}, got {role!r}")
    return _ROLES[role]


def _text(item: Mapping[str, Any]) -> str:
    """What a reader of the store's messages sees of an item (the item itself is the payload)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    if item.get("type") == "function_call":
        return f"{item.get('name', '')}({item.get('arguments', '')})"
    output = item.get("output")
    return output if isinstance(output, str) else ""


def _item(message: Message) -> TResponseInputItem:
    """The item a message holds, or an easy input message for one the app appended itself."""
    payload = message.payload
    if isinstance(payload, dict) and ("type" in payload or "role" in payload):
        item: TResponseInputItem = payload  # type: ignore[assignment]  # stored by add_items
        return item
    return {"role": message.role, "content": message.text}


class AgentSession:
    """A ``Session`` of the OpenAI Agents SDK kept in the store, bound to one (session, user).

    ``session_id`` is the store's session id (canonical UUID text). The session must exist
    (``create_session``, or ``AgentSession.create``); one of another user behaves as a missing one:
    reads are empty, ``add_items`` raises ``SessionNotFound`` and writes nothing. Every method is
    one round trip.
    """

    #: the store session's id (canonical UUID text)
    session_id: str
    #: the store user the session belongs to
    user_id: str
    #: the store the items are kept in
    store: AsyncSessionStore
    #: the SDK's settings (``limit``: the items ``get_items()`` gives by default)
    session_settings: SessionSettings | None

    def __init__(
        self,
        store: AsyncSessionStore,
        *,
        session_id: str | uuid.UUID,
        user_id: str,
        session_settings: SessionSettings | None = None,
    ) -> None:
        if not isinstance(store, AsyncSessionStore):
            raise InvalidInput(f"store must be an AsyncSessionStore, got {type(store).__name__}")
        self.store = store
        self.session_id = check_uuid(session_id)
        self.user_id = check_user_id(user_id)
        self.session_settings = session_settings

    @classmethod
    async def create(
        cls,
        store: AsyncSessionStore,
        user_id: str,
        *,
        initial_context: TutorContext | Mapping[str, Any] | None = None,
        session_settings: SessionSettings | None = None,
    ) -> AgentSession:
        """Create a store session (see ``create_session``) and bind a new AgentSession to it.
        One round trip."""
        sid = await store.create_session(user_id, initial_context=initial_context)
        return cls(store, session_id=sid, user_id=user_id, session_settings=session_settings)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (``session_settings.limit`` when None; all that the session
        keeps when both are None), oldest first; [] for a missing session. ``limit`` is capped at
        ``StoreConfig.max_messages``."""
        wanted = resolve_session_limit(limit, self.session_settings)
        cap = self.store.config.max_messages
        if wanted is not None and wanted <= 0:
            return []
        count = cap if wanted is None else min(wanted, cap)
        messages = await self.store.get_messages(self.session_id, self.user_id, limit=count)
        return [_item(m) for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append the items, in order, as one atomic batch: concurrent calls never interleave or
        lose an item. A malformed item (not a mapping, an unknown role, NaN, too deep) raises
        InvalidInput and nothing is written."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, list):
            raise InvalidInput(f"items must be a list of items, got {type(items).__name__}")
        batch: list[tuple[str, str, Any]] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"items[{i}] must be a mapping, got {type(item).__name__}")
            batch.append((_role(item), _text(item), dict(item)))
        if batch:
            await self.store.append_messages(self.session_id, self.user_id, batch)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the latest item, atomically (None when there is none, or no such
        session)."""
        try:
            message = await self.store.pop_message(self.session_id, self.user_id)
        except SessionNotFound:
            return None
        return None if message is None else _item(message)

    async def clear_session(self) -> None:
        """Delete every item and keep the session (its context, state and expiry)."""
        try:
            await self.store.clear_messages(self.session_id, self.user_id)
        except SessionNotFound:
            return
