"""Sending one command to Redis: through redis-py's connections, without its per-call extras.

``client.execute_command`` costs about 20-35 µs of CPU per call on top of the round trip itself
(redis-py 8 records OpenTelemetry-style metrics on every call, looks for HIMPORT arguments, wraps
the call in closures); measured against sending the same packed command on a pooled connection
(``bench/profile.py``). A store makes one call per operation, so that is most of what separates a
cache miss from the raw round trip. :class:`Sender` does what ``execute_command`` does for a
command (a pooled connection, the connection's ``Retry`` with a disconnect between attempts, the
client's response callback) and no more:

- same connections, timeouts, health checks, retries (and so the same exceptions: a lost reply is
  resent, an outage raises ConnectionError or TimeoutError), pool limits and pool exhaustion;
- same replies: the client's ``response_callbacks`` are applied, for RESP2 and RESP3.

It steps aside, and the client's own ``execute_command`` runs, whenever that could behave
differently: a client that is not a plain ``redis.Redis`` / ``redis.asyncio.Redis`` (a
``RedisCluster`` routes by slot, a subclass may override anything), a single-connection client,
a pool with redis-py's client-side cache, or an ``execute_command`` that was wrapped after the
fact (``opentelemetry-instrumentation-redis`` does so, and its spans must nest under the store's).

A store that owns its client (``from_url``) also keeps the connections it used between its calls
(*parked*, :meth:`Sender.send`) instead of handing each back to redis-py's pool and taking one
again: redis-py 8's ``get_connection`` and ``release`` (a lock, four connection-count records, an
event dispatch) cost about 12 µs of a 140 µs cache miss (measured, alternating). A connection
that sat parked for CHECK_IDLE seconds or more is checked as the pool checks every connection it
hands out (data waiting on it, or a server that hung up: it is reconnected first). One used more
recently is not: the sync check is a system call, which lets go of the GIL, and with 8 threads
each waiting to take it back cut the store's update throughput by a third (5,300 against 7,500-
7,950 updates/s, three alternating runs). A server that hangs up within that second fails the
send or the read instead, and the connection's retry sends the call again on a new connection
(every write carries its request id: applied once, see lua/_lib.lua). An asyncio connection's
check looks at its buffers without a system call: it is always made. A client passed in is shared
with the app: its connections go back to the pool.

The sync store's driver runs it as a coroutine that never waits (see ``_shell``): each redis-py
call returns its result, not an awaitable, so one body serves both clients.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from types import FunctionType
from typing import Any, Final

import redis
import redis.asyncio

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the "fast" extra (installed in dev) brings hiredis
    _hiredis_pack = None

#: The client classes whose ``execute_command`` Sender reproduces (exactly these, not subclasses).
_PLAIN: Final = (redis.Redis, redis.asyncio.Redis)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


#: redis-py before 5.3 needs a command name to hand out a pooled connection: it keeps its own path
_POOL_TAKES_NO_ARGS: Final = _version(redis.__version__) >= (5, 3)


def _unwrapped(client: Any) -> bool:
    """Whether ``client.execute_command`` is redis-py's own: not wrapped for the class or for this
    client (as tracing does, before or after the store was made: wrapt's wrappers are not plain
    functions), so that skipping it skips nothing anybody added."""
    return (
        "execute_command" not in client.__dict__
        and type(type(client).execute_command) is FunctionType
    )


async def settle(value: Any) -> Any:
    """A redis-py reply: awaited when the client is async, as it is when the client is sync."""
    return await value if inspect.isawaitable(value) else value


def closer(closable: Any) -> Callable[[], Any]:
    """``aclose`` (asyncio) or ``close`` (sync) of a redis-py client or pub/sub."""
    found: Callable[[], Any] = getattr(closable, "aclose", None) or closable.close
    return found


async def _send_and_read_async(connection: Any, packed: list[bytes]) -> Any:
    await connection.send_packed_command(packed)
    return await connection.read_response()


#: how long a connection may sit parked and still be used without a check first (seconds)
CHECK_IDLE: Final = 1.0


class Sender:
    """``send(*args)``: one command's reply, as ``client.execute_command(*args)`` gives it.

    ``park``: keep the connections between calls (only for a client the store owns, whose pool
    nobody else draws on; see the module's docstring). Parked connections and those in use never
    number more than the most requests the store had in flight at once, which its gate bounds by
    the pool's size: a request that takes a connection from the pool itself (a pipeline, a SCAN)
    first hands one parked connection back (:meth:`unpark_one`).
    """

    def __init__(self, client: Any, *, is_async: bool, park: bool = False) -> None:
        self._client = client
        self._is_async = is_async
        pool = getattr(client, "connection_pool", None)
        direct = (
            _POOL_TAKES_NO_ARGS
            and type(client) in _PLAIN
            and getattr(client, "connection", None) is None  # not a single-connection client
            and getattr(client, "single_connection_client", False) is False
            and getattr(pool, "cache", None) is None  # no client-side cache
        )
        self._pool: Any = pool if direct else None
        self._callbacks: dict[str, Callable[..., Any]] = (
            getattr(client, "response_callbacks", {}) if direct else {}
        )
        # hiredis packs what the store sends (bytes, str, int) into the very bytes redis-py's own
        # packers make with a UTF-8 strict encoder, in C: 5 µs for an 8 KB write against 11 (sync)
        # or more (asyncio, whose connections pack in Python)
        kwargs = getattr(pool, "connection_kwargs", {})
        utf8 = kwargs.get("encoding", "utf-8").lower().replace("_", "-") in ("utf-8", "utf8")
        strict = kwargs.get("encoding_errors", "strict") == "strict"
        self._pack = _hiredis_pack if (direct and utf8 and strict) else None
        #: redis-py 7+ connections can be told of server maintenance (should_reconnect)
        self._maintenance = hasattr(getattr(pool, "connection_class", None), "should_reconnect")
        self._parking = park and self._pool is not None
        #: (connection, when it was parked: time.monotonic())
        self._parked: list[tuple[Any, float]] = []

    @property
    def direct(self) -> bool:
        """Whether commands skip ``execute_command`` now (False: the client's own path is used)."""
        return self._pool is not None and _unwrapped(self._client)

    async def send(self, *args: Any) -> Any:
        """The reply to one command; the errors redis-py raises for it. One round trip (and the
        connection's retries after a connection error or timeout, as redis-py makes them)."""
        pool = self._pool
        if pool is None or not _unwrapped(self._client):
            reply = self._client.execute_command(*args)
            return (await reply) if self._is_async else reply
        connection = await self._take(pool)
        read = False
        try:
            packed = [self._pack(args)] if self._pack else connection.pack_command(*args)
            retry = connection.retry
            if self._is_async:
                reply = await retry.call_with_retry(
                    lambda: _send_and_read_async(connection, packed),
                    lambda _error: connection.disconnect(),
                )
            else:
                reply = retry.call_with_retry(
                    lambda: connection.send_packed_command(packed) or connection.read_response(),
                    lambda _error: connection.disconnect(),
                )
            read = True
        finally:
            if self._maintenance and connection.should_reconnect():  # the server announced it
                closed = connection.disconnect()
                if self._is_async:
                    await closed
            if read and self._parking:  # its reply was read whole: nothing is left on it
                self._parked.append((connection, time.monotonic()))
            else:  # an error or a cancellation: redis-py's pool checks it before its next use
                released = pool.release(connection)
                if self._is_async:
                    await released
        callback = self._callbacks.get(args[0])
        return reply if callback is None else callback(reply)

    async def _take(self, pool: Any) -> Any:
        """A parked connection, checked as the pool checks the ones it hands out, or the pool's."""
        try:
            connection, parked_at = self._parked.pop()
        except IndexError:  # none parked (or another thread took the last one)
            connection = pool.get_connection()
            return (await connection) if self._is_async else connection
        if not self._is_async and time.monotonic() - parked_at < CHECK_IDLE:
            return connection  # used within the second: see the module's docstring
        try:
            stale = connection.can_read()  # a reply nobody asked for, or the server hung up
            if self._is_async:
                stale = await stale
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            stale = True
        if stale:  # the next send connects afresh (and raises as usual if it cannot)
            closed = connection.disconnect()
            if self._is_async:
                await closed
        return connection

    async def unpark_one(self) -> None:
        """Hand one parked connection back to the pool (before a request that takes its own)."""
        try:
            connection, _ = self._parked.pop()
        except IndexError:
            return
        released = self._pool.release(connection)
        if self._is_async:
            await released

    async def unpark_all(self) -> None:
        """Hand every parked connection back to the pool (the store is closing)."""
        while self._parked:
            await self.unpark_one()

    def forget_parked(self) -> None:
        """In a child process after a fork: the parked connections are the parent's sockets (the
        pool forgets them too, on its next use); they are dropped, never closed from here."""
        self._parked = []
