"""Every operation of a store that reaches Redis, called on a session id no test made: one table
for the tests that hold all of them to one behaviour (an outage, a closed store)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from redis_sessions import Folder, TutorContext

SID = str(uuid.uuid4())
#: (name, call) pairs; ``call(store)`` performs the operation
CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("create", lambda s: s.create_session("alice")),
    ("get", lambda s: s.get_session(SID, "alice")),
    ("get_context", lambda s: s.get_session_context(SID, "alice")),
    ("get_history", lambda s: s.get_session_context(SID, "alice", history=3)),
    (
        "update",
        lambda s: s.update_session_context(
            SID, "alice", TutorContext(user_id="alice", session_id=uuid.UUID(SID))
        ),
    ),
    ("modify", lambda s: s.modify(SID, "alice", lambda ctx: None)),
    ("exists", lambda s: s.session_exists(SID, "alice")),
    ("end", lambda s: s.end_session(SID, "alice")),
    ("delete", lambda s: s.delete_session(SID, "alice")),
    ("list", lambda s: s.list_user_sessions("alice")),
    ("append", lambda s: s.append_message(SID, "alice", "user", "hi")),
    ("messages", lambda s: s.get_messages(SID, "alice")),
    ("put_folder", lambda s: s.put_folder("alice", Folder(id=SID, name="f"))),
    ("get_folder", lambda s: s.get_folder_data(SID, "alice")),
    ("delete_folder", lambda s: s.delete_folder(SID, "alice")),
    ("sweep", lambda s: s.cleanup_expired_sessions()),
    ("check", lambda s: s.check()),
]
