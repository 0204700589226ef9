"""The registry of Lua scripts: every script the store runs, read once from the package's ``lua/``.

The files live in the repository's top-level ``lua/`` and ship inside the wheel as
``redis_sessions/lua/``. ``_lib.lua`` holds functions shared by the scripts; it is prepended to each
one when loaded (Redis has no script includes). The stores send EVALSHA and, on NOSCRIPT (a new
server, a restart, SCRIPT FLUSH), load the script and send it again: what redis-py's ``Script``
does, without its per-call overhead (about 8 µs, measured; see bench/results.md).
"""

from __future__ import annotations

import enum
import functools
import hashlib
from importlib import resources


class ScriptName(str, enum.Enum):
    """The registered Lua scripts, by the stem of their file in ``lua/``."""

    CREATE = "create"
    READ = "read"
    BOARD = "board"
    UPDATE = "update"
    APPEND = "append"
    DELETE = "delete"
    END = "end"
    LIST = "list"
    PUT_FOLDER = "put_folder"
    DELETE_FOLDER = "delete_folder"
    SWEEP = "sweep"
    REPAIR = "repair"
    DROP_KEY = "drop_key"
    APPEND_MANY = "append_many"
    POP = "pop"
    CLEAR = "clear"
    READ_STATE = "read_state"
    LIST_SCOPED = "list_scoped"
    PUT_STATE = "put_state"
    RESTORE = "restore"
    RESTORE_FOLDER = "restore_folder"


LIBRARY = "_lib"


def _read(stem: str) -> str:
    return (resources.files("redis_sessions") / "lua" / f"{stem}.lua").read_text("utf-8")


@functools.cache
def script_file(name: ScriptName) -> str:
    """The text of one script's own file (its contract first)."""
    return _read(name.value)


@functools.cache
def script_source(name: ScriptName) -> str:
    """What is sent to Redis for one script: the shared library, then the script."""
    return _read(LIBRARY) + "\n" + script_file(name)


@functools.cache
def script_sha(name: ScriptName) -> str:
    """The SHA1 by which Redis knows the script (EVALSHA)."""
    return hashlib.sha1(script_source(name).encode()).hexdigest()
