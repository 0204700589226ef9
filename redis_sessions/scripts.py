"""The registry of Lua scripts: every script the store runs, read once from the package's ``lua/``.

The files live in the repository's top-level ``lua/`` and ship inside the wheel as
``redis_sessions/lua/``. Each store registers them with its client once (redis-py's ``Script`` sends
EVALSHA and loads the script again on NOSCRIPT).
"""

from __future__ import annotations

import enum
import functools
from importlib import resources


class ScriptName(str, enum.Enum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    APPEND = "append"
    DELETE = "delete"
    END = "end"
    LIST = "list"
    PUT_FOLDER = "put_folder"


@functools.cache
def script_source(name: ScriptName) -> str:
    """The Lua source of one script."""
    return (resources.files("redis_sessions") / "lua" / f"{name.value}.lua").read_text("utf-8")


def all_sources() -> dict[ScriptName, str]:
    return {name: script_source(name) for name in ScriptName}
