"""From the original's rows to the store's input: what one session (or folder) becomes in Redis.

Pure: no I/O. A session becomes a ``SessionRestore`` (the store's public input of
``restore_sessions``, which checks and writes it the store's way); each row the store would refuse
is found here first, so that it alone is skipped and reported (the store's own encoder,
``message_codec.encode_message``, decides on what may not fit).

What the store has no place for is kept in one extra record field, ``pg_extra`` (JSON, present only
when needed), which the store ignores and leaves alone and the export reads back: a message whose
``text`` was NULL (stored as ""), whose ``payload_json`` was the JSON ``null`` rather than SQL NULL,
whose ``whiteboard_snapshot_index`` is not its own turn, and a snapshot whose ``created_at`` is not
its message's. ``analysis_status`` is a plain record field of that name. A folder whose
``knowledge_base`` was NULL gets ``pg_extra`` = ``{"knowledge_base_null": true}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import msgspec

from .. import codec
from ..config import StoreConfig
from ..exceptions import InvalidInput
from ..message_codec import encode_message
from ..records import Folder, Message
from ..restore import FolderRestore, SessionRestore
from ..validation import MAX_DEPTH
from ._pg import Bundle, FolderRow, loads
from ._report import Issue
from ._shape import read_context

EXTRA_FIELD = b"pg_extra"
_ROLES = frozenset(("user", "assistant", "system"))
_raw_list = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])  # parses one level only


def _raw(text: str | bytes) -> msgspec.Raw | None:
    """The jsonb text as it is, when the store would surely take it: jsonb holds no NaN or
    infinity, so only nesting can be too deep (brackets inside strings count too: a false alarm
    only sends it the slow way). None: check it the store's way (decoded, then encoded by
    ``encode_message``). An integer past 64 bits, which ``encode_message`` cannot encode, is
    kept as PostgreSQL wrote it (the store's readers decode it)."""
    blob = text.encode() if isinstance(text, str) else text
    if blob.count(b"[") + blob.count(b"{") > MAX_DEPTH:
        return None
    return msgspec.Raw(blob)


def _raw_actions(text: str | bytes) -> msgspec.Raw | None:
    """The actions' jsonb text as it is when it is surely a list of objects the store takes."""
    raw = _raw(text)
    if raw is None:
        return None
    try:
        _raw_list.decode(raw)
    except msgspec.DecodeError:
        return None
    return raw


STATUS_FIELD = b"analysis_status"
_encode = msgspec.json.Encoder().encode


class Outcome(NamedTuple):
    """A converted session: what the store is asked to restore (None when skipped or expired),
    whether it is expired, and every issue of its rows."""

    plan: SessionRestore | None
    expired: bool
    issues: list[Issue]


class Planned(NamedTuple):
    """A session on its way to the store: what it is asked to restore, and the rows it came from
    (converted again, strictly, when the store refuses it)."""

    restore: SessionRestore
    bundle: Bundle


def skipped_children(bundle: Bundle, why: str) -> list[Issue]:
    """The issues of the messages and snapshots of a session that was skipped whole."""
    sid = str(bundle.session.id)
    return [
        *(
            Issue(table="session_messages", id=f"{sid}/{m.turn_no}", reason=why, action="skipped")
            for m in bundle.messages
        ),
        *(
            Issue(
                table="whiteboard_snapshots",
                id=f"{sid}/{w.snapshot_index}",
                reason=why,
                action="skipped",
            )
            for w in bundle.snapshots
        ),
    ]


def session_plan(
    bundle: Bundle, config: StoreConfig, now: dt.datetime, *, strict: bool = False
) -> Outcome:
    """What ``bundle`` becomes in Redis, or why it does not.

    The jsonb of payloads and actions is handed to the store as it is (``msgspec.Raw``), which
    checks it; ``strict`` checks each one here first, so that one the store would refuse is
    skipped and reported alone (what the import does for a session the store refused)."""
    row = bundle.session
    sid = str(row.id)
    issues: list[Issue] = []

    def note(table: str, ident: str, reason: str, action: str, detail: str = "") -> None:
        issues.append(Issue(table=table, id=ident, reason=reason, action=action, detail=detail))

    def skip_children(why: str) -> None:
        issues.extend(skipped_children(bundle, why))

    if row.bad_times or row.created_at is None or row.updated_at is None:
        note("sessions", sid, "a time out of range", "skipped", row.bad_times)
        skip_children("its session was skipped")
        return Outcome(None, False, issues)
    user_id = str(row.user_id)
    context, notes = read_context(
        row.context_data, session_id=row.id, user_id=user_id, folder_id=row.folder_id
    )
    for n in notes:
        note("sessions", sid, n.reason, n.action, n.detail)
    if context is None:
        skip_children("its session was skipped")
        return Outcome(None, False, issues)

    last = row.updated_at
    ended = row.ended_at is not None
    idle = now - last
    if idle > (config.ended_age if ended else config.max_age):
        note(
            "sessions",
            sid,
            "idle past the store's max age",
            "expired",
            f"last activity {codec.iso(last)}: not imported, as the sweeper would delete it",
        )
        return Outcome(None, True, issues)

    extra: dict[str, Any] = {}
    messages, message_times, top = _messages(bundle, config, note, extra, strict)
    snapshots = _snapshots(
        bundle=bundle,
        config=config,
        note=note,
        extra=extra,
        message_times=message_times,
        top=top,
        strict=strict,
    )
    fields: dict[str, str | bytes] = {}
    if row.analysis_status is not None:
        fields[STATUS_FIELD.decode()] = row.analysis_status
    if extra:
        fields[EXTRA_FIELD.decode()] = _encode(extra)
    restore = SessionRestore(
        context=context,
        created_at=row.created_at,
        updated_at=last,
        ended_at=row.ended_at,
        turns=max(top, context.latest_turn_no),
        messages=messages,
        snapshots=snapshots,
        extra=fields,
    )
    return Outcome(restore, False, issues)


def _messages(
    bundle: Bundle, config: StoreConfig, note: Any, extra: dict[str, Any], strict: bool
) -> tuple[list[Message], dict[int, dt.datetime], int]:
    """The messages kept, their times by turn, and the highest turn."""
    sid = str(bundle.session.id)
    valid = []
    for m in bundle.messages:
        if m.bad_times or m.created_at is None:
            note(
                "session_messages",
                f"{sid}/{m.turn_no}",
                "created_at out of range",
                "skipped",
                m.bad_times,
            )
        elif m.turn_no < 1:
            note("session_messages", f"{sid}/{m.turn_no}", "turn_no below 1", "skipped")
        else:
            valid.append(m)
    top = max((m.turn_no for m in valid), default=0)
    floor = top - config.max_messages
    out: list[Message] = []
    times: dict[int, dt.datetime] = {}
    for m in valid:
        turn = m.turn_no
        if turn <= floor:
            note(
                "session_messages",
                f"{sid}/{turn}",
                f"more messages than the store keeps (max_messages={config.max_messages})",
                "skipped",
                "the oldest turns are left out, as the store trims them",
            )
            continue
        wsi, created = m.whiteboard_snapshot_index, m.created_at
        assert created is not None  # checked above
        text = m.text if m.text is not None else ""
        raw = m.payload_json
        null = raw is None or raw == "null"
        payload: Any = None
        if not null:
            assert raw is not None
            payload = _raw(raw) if strict else msgspec.Raw(raw.encode())
        if m.role not in _ROLES or (payload is None and not null):
            # what may not fit: the store's own checks, on the decoded value
            try:
                payload = loads(raw) if raw is not None else None
                encode_message(m.role, text, payload, None, created)
            except InvalidInput as exc:
                note(
                    "session_messages",
                    f"{sid}/{turn}",
                    "the store refuses the message",
                    "skipped",
                    str(exc),
                )
                continue
        if m.text is None:
            extra.setdefault("text_null", []).append(turn)
        if raw == "null":
            extra.setdefault("payload_json_null", []).append(turn)
        if wsi is not None and wsi != turn:
            extra.setdefault("snapshot_index", {})[str(turn)] = wsi
        out.append(
            Message(
                turn_no=turn,
                role=m.role,  # type: ignore[arg-type]  # checked by encode_message when odd
                text=text,
                payload=payload,
                whiteboard_snapshot_index=turn if wsi == turn else None,
                created_at=created,
            )
        )
        times[turn] = created
    return out, times, top


def _snapshots(
    *,
    bundle: Bundle,
    config: StoreConfig,
    note: Any,
    extra: dict[str, Any],
    message_times: dict[int, dt.datetime],
    top: int,
    strict: bool,
) -> dict[int, Any]:
    """index -> actions (their JSON as it is, or decoded) of the snapshots kept."""
    sid = str(bundle.session.id)
    floor = top - config.max_messages if top else None
    out: dict[int, Any] = {}
    for w in bundle.snapshots:
        index = w.snapshot_index
        if w.bad_times or w.created_at is None:
            note(
                "whiteboard_snapshots",
                f"{sid}/{index}",
                "created_at out of range",
                "skipped",
                w.bad_times,
            )
            continue
        if index < 1:
            note("whiteboard_snapshots", f"{sid}/{index}", "snapshot_index below 1", "skipped")
            continue
        if floor is not None and index <= floor:
            note(
                "whiteboard_snapshots",
                f"{sid}/{index}",
                f"its turn is older than the store keeps (max_messages={config.max_messages})",
                "skipped",
            )
            continue
        text = w.actions_json
        actions: Any = _raw_actions(text) if strict else msgspec.Raw(text.encode())
        if actions is None:  # what may not fit: the store's own checks, on the decoded value
            try:
                actions = loads(w.actions_json)
                encode_message("user", "", None, actions, w.created_at)
            except InvalidInput as exc:
                note(
                    "whiteboard_snapshots",
                    f"{sid}/{index}",
                    "the store refuses the actions",
                    "skipped",
                    str(exc),
                )
                continue
        if message_times.get(index) != w.created_at:
            extra.setdefault("snapshot_at", {})[str(index)] = codec.iso(w.created_at)
        out[index] = actions
    return out


def folder_record(row: FolderRow) -> FolderRestore | Issue:
    """What a folder row becomes (the store's ``restore_folders`` input), or the issue that keeps
    it out."""
    if row.bad_times or row.created_at is None or row.updated_at is None:
        return Issue(
            table="folders",
            id=str(row.id),
            reason="a time out of range",
            action="skipped",
            detail=row.bad_times,
        )
    folder = Folder(
        id=row.id,
        name=row.name,
        vector_store_id=row.vector_store_id,
        knowledge_base=row.knowledge_base or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    extra: dict[str, str | bytes] = {}
    if row.knowledge_base is None:
        extra[EXTRA_FIELD.decode()] = _encode({"knowledge_base_null": True})
    return FolderRestore(user_id=str(row.user_id), folder=folder, extra=extra)
