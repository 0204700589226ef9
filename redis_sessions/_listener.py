"""The invalidation listener: a store hears other processes' writes and evicts what they change.

Each write script announces its change on the invalidation channel (``announce`` in
``lua/_lib.lua``); every store subscribes to it before its first operation and keeps listening in a
thread (sync store) or a task (async store), one ``async def`` for both as in the driver (see
``_shell``). The link proves it is alive with PINGs: the cache serves only while the last reply
is recent (``max_link_silence``), so a dropped, stalled or blackholed link can never leave stale
entries served for longer than that bound.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any, ClassVar

import redis.exceptions as rex
from redis.backoff import NoBackoff

from ._transport import closer, settle
from .core import StoreCore


class InvalidationListener:
    """The listening part of a store (mixed into ``StoreBase``, which sets the attributes below)."""

    #: seconds the listener waits for a message before it looks at its stop flag
    LISTEN_POLL: ClassVar[float] = 1.0
    #: seconds the listener waits after a message so the next ones are read in the same wake-up
    LISTEN_BATCH: ClassVar[float] = 0.002
    #: messages the listener takes in one wake-up at most
    LISTEN_DRAIN: ClassVar[int] = 1000
    #: redis-py's Retry class (sync or asyncio): the subscription's connection gets none
    _retry_class: ClassVar[Any]

    is_async: ClassVar[bool]
    _client: Any
    _core: StoreCore
    _needs_listener: bool
    _listener: Any
    _stopping: bool
    _stop_message: bytes
    _gate: Any
    _sender: Any

    def _watch_forks(self) -> None:
        """Be given a new identity in a child process after a fork (see ``_forked``)."""
        _STORES.add(self)

    def _forked(self) -> None:
        """In a child process after a fork (an app server that made its store before forking its
        workers): the core takes a new origin (see ``StoreCore.forked``) and the gate to the
        connections has every place free again; the parent's listener, a thread or a task, did
        not come along, so the child subscribes before its first operation, with a stop message
        of its own (the parent's closing must not stop the child's)."""
        self._core.forked()
        self._sender.forget_parked()
        if self._gate is not None:  # the threads that held places did not come along
            self._gate = self._gate.fresh()
        self._listener = None
        self._stopping = False
        self._stop_message = b"stop:" + uuid.uuid4().hex.encode()
        self._needs_listener = not self._core.cache_serving

    async def _start_listening(self) -> None:
        """Subscribe to other processes' writes (in the caller, one round trip, once), then leave
        the listening to a thread (sync store) or a task (async store). Until the subscription is
        confirmed the cache is not used; if Redis cannot be reached now, the listener keeps trying.
        """
        self._needs_listener = False
        try:
            pubsub = await self._subscribe()
        except rex.RedisError:
            pubsub = None
        self._listener = self._spawn(self._listen(pubsub))

    async def _subscribe(self) -> Any:
        # push_handler_func: an announcement read under RESP3 is a push, which redis-py hands to
        # this function; its default one formats the message for a debug log and looks up the
        # logger, whether or not that log is on: a quarter of the listener's time per message
        pubsub = self._client.pubsub(
            push_handler_func=_push_as_is_async if self.is_async else _push_as_is
        )
        try:
            await settle(pubsub.subscribe(self._core.keys.invalidation_channel()))
            # redis-py would reconnect and resubscribe behind our back, losing what was published
            # meanwhile: with no retries, a dropped connection raises here instead
            pubsub.connection.retry = self._retry_class(NoBackoff(), 0)
            while True:
                message = await settle(pubsub.get_message(timeout=self.LISTEN_POLL * 5))
                if message is None:
                    raise rex.TimeoutError("no confirmation of the invalidation subscription")
                if message["type"] == "subscribe":
                    break
        except Exception:  # not on cancellation: a coroutine being closed must not wait
            await settle(closer(pubsub)())
            raise
        self._core.set_listening(True)
        return pubsub

    async def _listen(self, pubsub: Any) -> None:
        """Evict what other processes' writes change, until the store closes. A dropped or stalled
        connection empties the cache and turns it off until the subscription is back.

        The link proves it is alive: a PING every quarter of ``max_link_silence``, whose reply
        comes back behind every announcement published before it. The cache serves only while
        the last reply is recent (``StoreCore.heard``); a link silent for the whole bound is
        dropped and made anew, the cache empty until then.
        """
        core, backoff = self._core, 0.05
        every = core.config.max_link_silence.total_seconds() / 4
        poll = min(self.LISTEN_POLL, every)
        next_ping = 0.0
        busy = False  # the last wake-up found announcements: more are likely on their way
        while not self._stopping:
            if pubsub is None:
                try:
                    pubsub = await self._subscribe()
                    backoff, next_ping, busy = 0.05, 0.0, False
                except rex.RedisError:
                    await settle(self._sleep(backoff))
                    backoff = min(backoff * 2, 1.0)
                continue
            now = time.monotonic()
            try:
                if core.link_silent(now):
                    raise rex.TimeoutError("the invalidation link is silent")
                if now >= next_ping:
                    await settle(pubsub.ping(repr(now)))
                    next_ping = now + every
                batch = await self._receive(pubsub, poll, busy)
                busy = bool(batch)
            except (rex.RedisError, OSError):
                core.set_listening(False)
                await settle(closer(pubsub)())
                pubsub = None
                continue
            if not all(self._handle(message) for message in batch):
                break  # this store's own stop message
        if pubsub is not None:
            await settle(closer(pubsub)())

    async def _receive(self, pubsub: Any, poll: float, busy: bool) -> list[dict[str, Any]]:
        """The messages of one wake-up (at most LISTEN_DRAIN, so the PINGs go on under a flood).

        Idle, it waits up to ``poll`` for a message, then LISTEN_BATCH more for others to arrive,
        and takes everything that has. Busy (the last wake-up found some), it sleeps LISTEN_BATCH
        and takes everything that arrived meanwhile: one wake-up per LISTEN_BATCH under a steady
        stream of writes, not one per message, nor two per batch (each costs the thread a wake
        and the GIL a hand-over: tens of µs). A wake-up that finds nothing makes it idle again.
        """
        batch: list[dict[str, Any]] = []
        if not busy:
            message = await settle(pubsub.get_message(timeout=poll))
            if message is None:
                return batch
            batch.append(message)
        if self.LISTEN_BATCH:
            await settle(self._sleep(self.LISTEN_BATCH))
        while len(batch) < self.LISTEN_DRAIN:
            message = await self._waiting(pubsub)
            if message is None:
                break
            batch.append(message)
        return batch

    async def _waiting(self, pubsub: Any) -> dict[str, Any] | None:
        """The next message already on the subscription's connection, None when there is none.

        It is read from the connection itself (``can_read`` looks at what is buffered, without a
        wait; ``read_response`` parses it): redis-py's ``get_message`` wraps each read in its
        retry and health-check machinery, which this connection does without (no retries, see
        ``_subscribe``; the listener's own PINGs prove the link). An announcement, the message of
        nearly every wake-up, costs a fraction of the interpreter time that way: under 8 writing
        threads the listener held the GIL a fifth of the time (py-spy), time the writers waited
        for. (An asyncio store gains less: 15-17 µs an announcement against 16-22 through
        ``get_message``, draining 3,000 buffered ones; its reads keep redis.asyncio's timeout.)
        Anything but an announcement goes through ``handle_message`` as ``get_message`` would send
        it (None for redis-py's own health-check reply); a dropped connection raises, as from
        ``get_message``. Under RESP3 an announcement is a list subclass (hiredis's
        PushNotification), hence ``isinstance``.
        """
        connection = pubsub.connection
        if not await settle(connection.can_read()):
            return None
        response = await settle(
            connection.read_response(disconnect_on_error=False, push_request=True)
        )
        if isinstance(response, list) and len(response) == 3 and response[0] == b"message":
            return {"type": "message", "data": response[2]}
        handled: dict[str, Any] | None = await settle(pubsub.handle_message(response))
        return handled

    def _handle(self, message: dict[str, Any]) -> bool:
        """Act on one pub/sub message; False for this store's own stop message."""
        core, kind = self._core, message["type"]
        if kind == "pong":
            with contextlib.suppress(ValueError):
                core.heard(float(message["data"]))
        elif kind == "subscribe":  # resubscribed: the connection was made anew
            core.flush_cache()
        elif kind == "message":
            data = message["data"]
            if data.startswith(b"stop:"):
                return bool(data != self._stop_message)  # another store closing: go on
            core.invalidate_remote(data, int(time.time() * 1000))
        return True

    async def _stop_listening(self) -> None:
        """Stop the listener: tell it through its own channel, then wait for it to end."""
        self._stopping = True
        if self._listener is None:
            return
        with contextlib.suppress(rex.RedisError):  # if reconnecting, it sees the flag within 1 s
            channel = self._core.keys.invalidation_channel()
            await settle(self._client.publish(channel, self._stop_message))
        await self._join_listener()
        self._listener = None

    def _sleep(self, seconds: float) -> Any:
        """time.sleep (sync store) or asyncio.sleep (async store)."""
        raise NotImplementedError

    def _spawn(self, listening: Coroutine[Any, Any, None]) -> Any:
        raise NotImplementedError

    async def _join_listener(self) -> None:
        raise NotImplementedError


def _push_as_is(response: Any) -> Any:
    """A RESP3 push as read, to the listener (the subscription's push handler, see _subscribe)."""
    return response


async def _push_as_is_async(response: Any) -> Any:
    """``_push_as_is`` for redis.asyncio, which awaits its push handler."""
    return response


#: the stores of this process, each given a new identity in a child process after a fork
_STORES: weakref.WeakSet[InvalidationListener] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forked()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
