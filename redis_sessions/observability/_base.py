"""An observer that does nothing (a base to override), and one that tells several."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._observe import CacheEvent, OperationResult, StoreObserver, start_does_nothing

if TYPE_CHECKING:
    from ..maintenance import SweepReport


class ObserverBase:
    """A StoreObserver whose methods do nothing: subclass it and override what you need."""

    @start_does_nothing  # (the store leaves it uncalled: override it and it is called)
    def start(self, operation: str) -> object:
        """An operation begins; what this returns is handed to :meth:`finish`."""
        return None

    def finish(self, handle: object, result: OperationResult) -> None:
        """An operation ended."""

    def script(self, name: str, seconds: float) -> None:
        """One Lua script ran."""

    def cache_event(self, kind: CacheEvent, count: int) -> None:
        """Cache entries were evicted, an invalidation arrived, or the cache was emptied."""

    def corrupt(self, key: str, problem: str) -> None:
        """Damage was met at ``key``."""

    def invalidation(self, lag_seconds: float) -> None:
        """Another process's write was announced ``lag_seconds`` ago."""

    def listener_reconnect(self) -> None:
        """The invalidation link was lost; the listener subscribes anew."""

    def sweep(self, report: SweepReport, batches: int) -> None:
        """A sweep ended after ``batches`` slot scripts."""


class Observers(ObserverBase):
    """Several observers as one, each told everything in the order given (metrics, traces, logs).

    ``finish`` hands each observer back what its own ``start`` returned, in reverse order (a span
    started first ends last)."""

    def __init__(self, *observers: StoreObserver) -> None:
        self.observers: tuple[StoreObserver, ...] = observers

    def start(self, operation: str) -> object:
        """Start every observer; their handles, in order."""
        return [observer.start(operation) for observer in self.observers]

    def finish(self, handle: object, result: OperationResult) -> None:
        """Finish every observer with its own handle, the last one first."""
        assert isinstance(handle, list)
        for observer, own in zip(reversed(self.observers), reversed(handle), strict=True):
            observer.finish(own, result)

    def script(self, name: str, seconds: float) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.script(name, seconds)

    def cache_event(self, kind: CacheEvent, count: int) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.cache_event(kind, count)

    def corrupt(self, key: str, problem: str) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.corrupt(key, problem)

    def invalidation(self, lag_seconds: float) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.invalidation(lag_seconds)

    def listener_reconnect(self) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.listener_reconnect()

    def sweep(self, report: SweepReport, batches: int) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.sweep(report, batches)
