"""Store configuration: one keyword-only, immutable settings object."""

from __future__ import annotations

import dataclasses
import datetime as dt

from .exceptions import InvalidInput
from .keys import check_prefix

__all__ = ["StoreConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """How a store behaves. Every field has a production default.

    key_prefix            first part of every key name (``rs`` -> ``rs:{u:alice}:s:<id>``)
    cache_ttl             seconds a cached read stays fresh (in-process cache)
    cache_size            entries the cache holds at most, LRU-evicted; 0 turns the cache off
    cache_sweep_interval  seconds between purges of expired cache entries (done on access, no thread)
    max_messages          messages kept per session; older ones (and their snapshots) are trimmed
    max_context_bytes     largest encoded lean context accepted; larger raises InvalidInput
    max_age               idle time after which the sweep deletes a session
    ended_max_age         idle time after which the sweep deletes an *ended* session; None: max_age
    ttl_backstop          extra time Redis keeps a session's keys beyond the longer of the two ages,
                          refreshed by every write (a Redis TTL, in case no sweep runs); None: no TTL
    invalidation          listen for other processes' writes (pub/sub) and evict what they change;
                          the cache is used only while listening. Turn off only when this process is
                          the only one writing the sessions (or with cache_size=0)
    max_invalidation_lag  an invalidation that arrives later than this empties the cache
    max_link_silence      the cache serves only while the invalidation link answered a PING sent
                          less than this long ago: the bound on how stale a cached read can be
    replay_window         how long a write's reply is kept in Redis for a resent request (redis-py
                          resends a command whose reply was lost): within it, a write is applied
                          exactly once. Must exceed the client's whole retry budget
    """

    key_prefix: str = "rs"
    cache_ttl: float = 300.0
    cache_size: int = 1000
    cache_sweep_interval: float = 600.0
    max_messages: int = 1000
    max_context_bytes: int = 1024 * 1024
    max_age: dt.timedelta = dt.timedelta(days=30)
    ended_max_age: dt.timedelta | None = None
    ttl_backstop: dt.timedelta | None = dt.timedelta(days=7)
    invalidation: bool = True
    max_invalidation_lag: dt.timedelta = dt.timedelta(seconds=1)
    max_link_silence: dt.timedelta = dt.timedelta(seconds=2)
    replay_window: dt.timedelta = dt.timedelta(seconds=60)

    def __post_init__(self) -> None:
        check_prefix(self.key_prefix)
        if self.cache_ttl <= 0:
            raise InvalidInput(f"cache_ttl must be > 0, got {self.cache_ttl}")
        if self.cache_size < 0:
            raise InvalidInput(f"cache_size must be >= 0, got {self.cache_size}")
        if self.cache_sweep_interval <= 0:
            raise InvalidInput(f"cache_sweep_interval must be > 0, got {self.cache_sweep_interval}")
        if self.max_messages < 1:
            raise InvalidInput(f"max_messages must be >= 1, got {self.max_messages}")
        if self.max_context_bytes < 1024:
            raise InvalidInput(f"max_context_bytes must be >= 1024, got {self.max_context_bytes}")
        for name in (
            "max_age",
            "ended_max_age",
            "ttl_backstop",
            "max_invalidation_lag",
            "max_link_silence",
            "replay_window",
        ):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, dt.timedelta) or value <= dt.timedelta(0)
            ):
                raise InvalidInput(f"{name} must be a positive timedelta, got {value!r}")
        if self.replay_window < dt.timedelta(milliseconds=1):
            raise InvalidInput(f"replay_window must be at least 1 ms, got {self.replay_window!r}")
        if self.max_age is None:
            raise InvalidInput("max_age must be a positive timedelta, got None")

    @property
    def ended_age(self) -> dt.timedelta:
        """The idle time after which an ended session is swept."""
        return self.ended_max_age if self.ended_max_age is not None else self.max_age

    @property
    def key_ttl_ms(self) -> int:
        """Milliseconds every write gives a session's keys (0: no TTL)."""
        if self.ttl_backstop is None:
            return 0
        horizon = max(self.max_age, self.ended_age) + self.ttl_backstop
        return int(horizon.total_seconds() * 1000)
