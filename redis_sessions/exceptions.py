"""Every error the store raises, under one base class.

    SessionStoreError                  base: ``except SessionStoreError`` catches them all
    ├── InvalidInput                   bad ids, oversized or malformed contexts (also a ValueError);
    │                                  raised before anything is written
    ├── VersionConflict                ``expected_version`` did not match: another writer got there first
    ├── SessionNotFound                an operation that must change a session found none (append_message);
    │                                  also a LookupError. Reads return None / False instead
    ├── StoreUnavailable               Redis could not be reached or timed out; never reads as "not found"
    │   └── StoreBusy                  no connection of the store came free in time: every one stayed
    │                                  in use (``max_connections``); nothing was sent
    ├── StoreClosed                    the store was closed: nothing is served, no connection is opened
    ├── WrongEventLoop                 an AsyncSessionStore used in another event loop than its own
    │                                  (also a RuntimeError); nothing was sent
    ├── CorruptData                    a key of the store holds what it cannot use (a record that does
    │                                  not decode, a key of another type); nothing was written.
    │                                  ``redis-sessions check`` reports it, ``--drop-corrupt`` removes it
    └── BackendError                   Redis answered with an error (WRONGTYPE on a key of ours, OOM, a
                                       script error): the data is left as it was

The Redis exception that caused an error is chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CorruptData",
    "InvalidInput",
    "SessionNotFound",
    "SessionStoreError",
    "StoreBusy",
    "StoreClosed",
    "StoreUnavailable",
    "VersionConflict",
    "WrongEventLoop",
]


class SessionStoreError(Exception):
    """Base class of every error raised by redis-sessions."""


class InvalidInput(SessionStoreError, ValueError):
    """An argument can never be valid (bad id, oversized or malformed context).

    Raised before anything is sent to Redis, so nothing is written.
    """


class VersionConflict(SessionStoreError):
    """An ``expected_version`` write lost the race: the stored version differs.

    ``expected`` is the version the caller read; ``actual`` the one Redis holds.
    """

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"session {session_id}: expected version {expected}, but Redis holds version {actual}"
        )
        self.session_id = session_id
        self.expected = expected
        self.actual = actual


class SessionNotFound(SessionStoreError, LookupError):
    """The session does not exist for this user (missing, deleted, or another user's)."""


class StoreUnavailable(SessionStoreError):
    """Redis could not be reached, or did not answer in time."""


class StoreBusy(StoreUnavailable):
    """No connection of the store came free within the wait allowed (the client option
    ``timeout``): all ``max_connections`` stayed in use. The request was not sent. Callers wait
    their turn first come, first served, so this means Redis is slow or the app makes more calls
    at once than the store has connections, not that one caller was passed over."""


class CorruptData(SessionStoreError):
    """A key of the store holds what the store cannot use: a session record that does not decode
    (damaged metadata or context), or a key of another Redis type than the layout's.

    ``key`` names it and ``problem`` says what is wrong. Raised by every operation on a damaged
    session but ``delete_session``, which removes it; nothing is written. The data is left as it
    is for an operator: ``redis-sessions check`` reports it, ``check --repair --drop-corrupt``
    deletes it.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"corrupt data at {key}: {problem}")
        self.key = key
        self.problem = problem


class StoreClosed(SessionStoreError):
    """An operation was called on a store after ``close()`` / ``aclose()``."""


class WrongEventLoop(SessionStoreError, RuntimeError):
    """An AsyncSessionStore was called in another event loop than the one it was first used in.

    Its connections, its invalidation listener and anyone waiting for a connection belong to that
    loop (redis.asyncio's connections cannot move), so nothing was sent. Make one store per event
    loop, inside it: in the app's startup, or in a test's fixture (pytest-asyncio gives each test
    a loop of its own). ``aclose()`` still works from any loop."""


class BackendError(SessionStoreError):
    """Redis answered a command of the store with an error."""
