"""The requests a core operation yields to its I/O shell (pure data).

A core operation is a generator: it yields one of these, the shell performs it (one round trip) and
sends the reply back in. The sync and async stores differ only in how they perform them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from .scripts import ScriptName

T = TypeVar("T")
Arg = str | bytes | int | float


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """A plain Redis command, e.g. ``("HGETALL", key)``."""

    args: tuple[Arg, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RunScript:
    """One of the registered Lua scripts with its KEYS and ARGV."""

    name: ScriptName
    keys: Sequence[str]
    args: Sequence[Arg]


@dataclasses.dataclass(frozen=True, slots=True)
class Pipeline:
    """Plain commands sent together in one round trip (no transaction); the reply is their
    replies, in order. On a cluster, redis-py sends each node its share.

    With ``raise_on_error`` False, a command that fails does not fail the pipeline: its slot in the
    reply holds the exception (redis-py's ResponseError) instead."""

    commands: tuple[tuple[Arg, ...], ...]
    raise_on_error: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class ScriptBatch:
    """Registered scripts sent together in one round trip (a pipeline of EVALSHA, no
    transaction); the reply is their replies, in order. On a cluster, redis-py sends each node its
    share. A script the server does not know yet is loaded and sent again (that one alone); the
    first other error is raised once every reply is in (the others may have been applied)."""

    calls: tuple[RunScript, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ScanBatch:
    """One SCAN step over the keys matching ``match``, on every primary of a cluster in turn.

    ``cursor`` is opaque to the core (None to start). The reply is ``(next_cursor, keys)``, with
    next_cursor None once every key has been seen.
    """

    match: str
    count: int
    cursor: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class LoadFolder:
    """Ask the store's folder source (a plain or an async callable) for a folder; the reply is
    what it returned (a Folder or None). What it raises is thrown into the operation."""

    folder_id: str
    user_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Apply:
    """Call the application's function on a context (``modify``'s ``fn``); the reply is what it
    returned, awaited first when the store is async and it returned an awaitable. What it raises
    goes to the caller as it is."""

    fn: Callable[[Any], Any]
    context: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before trying again (time.sleep in the sync store, asyncio.sleep in the async one)."""

    seconds: float


Request = Command | RunScript | ScriptBatch | Pipeline | ScanBatch | LoadFolder | Apply | Sleep
Op = Generator[Request, Any, T]
