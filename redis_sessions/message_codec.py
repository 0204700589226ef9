"""How messages and whiteboard snapshots are stored beside a session record. Pure functions.

A message is JSON in the hash ``...:msgs`` under its turn number (``role``, ``text``, ``payload``,
``snapshot``, ``created_at``); a snapshot is the JSON list of its actions in ``...:wb`` under the turn
that drew it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import msgspec

from .codec import _encoder
from .exceptions import InvalidInput
from .records import Message, Role
from .validation import MAX_DEPTH, free_form_errors


class StoredMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A message as stored in ``...:msgs`` (the turn number is the hash field)."""

    role: Role
    text: str
    payload: Any = None
    snapshot: bool = False
    created_at: dt.datetime


_message_decoder = msgspec.json.Decoder(StoredMessage)
_ROLES: Final = frozenset(("user", "assistant", "system"))


def encode_message(
    role: str, text: str, payload: Any, whiteboard_actions: Any, now: dt.datetime
) -> tuple[bytes, bytes]:
    """(message JSON, snapshot JSON or b""). Raises InvalidInput for what can never be stored:
    NaN or infinity in the payload or the actions, or either nested deeper than MAX_DEPTH."""
    if role not in _ROLES:
        raise InvalidInput(f"role must be one of {sorted(_ROLES)}, got {role!r}")
    if not isinstance(text, str):
        raise InvalidInput(f"text must be a str, got {type(text).__name__}")
    if whiteboard_actions is not None and not (
        isinstance(whiteboard_actions, list)
        and all(isinstance(a, dict) for a in whiteboard_actions)
    ):
        raise InvalidInput("whiteboard_actions must be a list of dicts (one batch of actions)")
    blobs = []
    for root, value in (("payload", payload), ("whiteboard_actions", whiteboard_actions)):
        blob = b""
        if value is not None:
            try:
                blob = _encoder.encode(value)
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                _refuse_free_form(root, value)  # too deep for the encoder: say where
                raise InvalidInput(f"message cannot be encoded as JSON: {exc}") from exc
            # NaN and infinity are encoded as null; the nesting is at most the brackets
            if b"null" in blob or blob.count(b"[") + blob.count(b"{") > MAX_DEPTH:
                _refuse_free_form(root, value)
        blobs.append(blob)
    snapshot = blobs[1]
    stored = StoredMessage(
        role=role,  # type: ignore[arg-type]  # checked against _ROLES above
        text=text,
        payload=payload,
        snapshot=whiteboard_actions is not None,
        created_at=now,
    )
    try:
        message = _encoder.encode(stored)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # pragma: no cover
        raise InvalidInput(f"message cannot be encoded as JSON: {exc}") from exc
    return message, snapshot


def _refuse_free_form(root: str, value: Any) -> None:
    """Raise InvalidInput with the first problem of a payload or actions, if any."""
    errors = free_form_errors(value, root)
    if errors:
        raise InvalidInput(f"message cannot be stored: {errors[0]}")


def decode_messages(first_turn: int, blobs: list[bytes | None]) -> tuple[list[Message], list[str]]:
    """Messages of consecutive turns from ``first_turn``; trimmed (nil) turns are skipped.

    Returns the messages and a description of each one that could not be decoded (left out).
    """
    out, problems = [], []
    for offset, blob in enumerate(blobs):
        if blob is None:
            continue
        turn = first_turn + offset
        try:
            stored = _message_decoder.decode(blob)
        except msgspec.DecodeError as exc:
            problems.append(f"message {turn}: {exc}")
            continue
        out.append(
            Message(
                turn_no=turn,
                role=stored.role,
                text=stored.text,
                payload=stored.payload,
                whiteboard_snapshot_index=turn if stored.snapshot else None,
                created_at=stored.created_at,
            )
        )
    return out, problems


def history_entries(
    first_turn: int, blobs: list[bytes | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``history`` list of a context from stored messages of consecutive turns (as
    ``decode_messages`` takes them): ``{"role", "content"}`` per message, oldest first, and a
    description of each one left out. Each message is decoded (so checked) whole, as
    ``decode_messages`` does, without making the Message it has no use for."""
    out = []
    decode = _message_decoder.decode
    for blob in blobs:
        if blob is None:
            continue
        try:
            stored = decode(blob)
        except msgspec.DecodeError:  # damage: the long way, which says which and why
            messages, problems = decode_messages(first_turn, blobs)
            return [{"role": m.role, "content": m.text} for m in messages], problems
        out.append({"role": stored.role, "content": stored.text})
    return out, []


def decode_snapshots(
    first_turn: int, blobs: list[bytes | None]
) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """Snapshots of consecutive turns (None = that turn has none), and what could not be decoded."""
    out: list[list[dict[str, Any]]] = []
    problems = []
    for offset, blob in enumerate(blobs):
        if blob is None:
            continue
        try:
            out.append(_snapshot_decoder.decode(blob))
        except msgspec.DecodeError as exc:
            problems.append(f"snapshot {first_turn + offset}: {exc}")
    return out, problems


_snapshot_decoder = msgspec.json.Decoder(list[dict[str, Any]])


def board_actions(flat: list[bytes]) -> tuple[list[dict[str, Any]], list[str]]:
    """The whiteboard from ``board.lua``'s reply (index, actions JSON, ...): every snapshot's
    actions concatenated in index order, and what could not be decoded (left out)."""
    pairs = sorted((int(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2))
    actions: list[dict[str, Any]] = []
    problems = []
    for index, blob in pairs:
        try:
            actions.extend(_snapshot_decoder.decode(blob))
        except msgspec.DecodeError as exc:
            problems.append(f"snapshot {index}: {exc}")
    return actions, problems
