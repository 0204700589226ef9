"""What the benchmarks share: a Redis to run on, and the full context they compare the lean one to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import msgspec

from redis_sessions import TutorContext
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.samples import chat_turn


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    """``url`` as given, else a throwaway embedded redis-server for the duration."""
    if url:
        yield url
        return
    # in a session of its own: the CPU shared between Redis and the benchmark as between two
    # programs, not as one more thread of the benchmark (see EmbeddedRedis's own_session)
    with EmbeddedRedis(own_session=True) as embedded:
        yield embedded.url


def with_history(context: TutorContext, turns: int = 50) -> TutorContext:
    """A copy of ``context`` carrying ``turns`` chat turns and their whiteboard batches."""
    full = msgspec.structs.replace(context, history=[], whiteboard_history=[])
    for turn in range(1, turns + 1):
        role, text, actions = chat_turn(turn)
        full.history.append({"role": role, "content": text})
        if actions:
            full.whiteboard_history.append(actions)
    return full
