"""What a migration run tells: every row it repaired or skipped (a JSON lines report), counts, and
progress (a bar with rate and ETA on a terminal, plain lines otherwise)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import IO, Any

import msgspec

__all__ = ["Issue", "Summary"]


class Issue(msgspec.Struct, frozen=True, kw_only=True):
    """One row the run could not copy as it was: ``table`` and ``id`` name it (a session id, or
    ``<session_id>/<turn_no>`` for a message or snapshot), ``reason`` says what was wrong and
    ``action`` what was done: ``repaired`` (copied, changed as said) or ``skipped`` (not copied)."""

    table: str
    id: str
    reason: str
    action: str
    detail: str = ""


class Summary(msgspec.Struct, kw_only=True):
    """The counts of a run. ``copied``: rows written per table; ``repaired`` and ``skipped``: rows
    reported per table; ``expired``: sessions idle past the store's max age (not imported, as the
    sweeper would delete them); ``differences``: what ``verify`` found."""

    command: str
    dry_run: bool = False
    copied: dict[str, int] = msgspec.field(default_factory=dict)
    repaired: dict[str, int] = msgspec.field(default_factory=dict)
    skipped: dict[str, int] = msgspec.field(default_factory=dict)
    expired: int = 0
    differences: int = 0
    resumed_after: str | None = None
    already_complete: bool = False
    seconds: float = 0.0

    @property
    def reported(self) -> int:
        """Rows repaired or skipped, over all tables."""
        return sum(self.repaired.values()) + sum(self.skipped.values())

    def lines(self) -> list[str]:
        """The summary as text lines."""
        tables = sorted({*self.copied, *self.repaired, *self.skipped})
        verb = "would copy" if self.dry_run else "copied"
        out = [f"{self.command}: done in {self.seconds:.1f} s"]
        if self.already_complete:
            out.append("  already complete (checkpoint): nothing to do; --restart copies again")
        if self.resumed_after:
            out.append(f"  resumed after session {self.resumed_after}")
        for table in tables:
            out.append(
                f"  {table}: {verb} {self.copied.get(table, 0)}, repaired "
                f"{self.repaired.get(table, 0)}, skipped {self.skipped.get(table, 0)}"
            )
        if self.command == "import":
            out.append(f"  expired (idle past max age, not imported): {self.expired}")
        if self.command == "verify":
            out.append(f"  differences: {self.differences}")
        return out


class Reporter:
    """Collects the issues of a run: counts them and writes each as a JSON line to ``stream``."""

    def __init__(self, summary: Summary, stream: IO[str] | None) -> None:
        self.summary = summary
        self._stream = stream
        self.counts: Counter[str] = Counter()

    def issue(self, issue: Issue) -> None:
        """Record one issue (counted as repaired or skipped in its table)."""
        bucket = self.summary.repaired if issue.action == "repaired" else self.summary.skipped
        bucket[issue.table] = bucket.get(issue.table, 0) + 1
        self.write(msgspec.to_builtins(issue))

    def write(self, entry: dict[str, Any]) -> None:
        """Write one JSON line to the report, if there is one."""
        if self._stream is not None:
            self._stream.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def copied(self, table: str, n: int = 1) -> None:
        """Count rows written."""
        self.summary.copied[table] = self.summary.copied.get(table, 0) + n


class Progress:
    """Progress of a run over ``total`` sessions: a bar with rate and ETA on a terminal, a plain
    line every ``every`` seconds otherwise (both on stderr)."""

    def __init__(self, label: str, total: int, *, every: float = 5.0, enabled: bool = True) -> None:
        self.label, self.total, self.done = label, total, 0
        self._every = every
        self._start = self._last = time.monotonic()
        self._enabled = enabled
        self._tty = enabled and sys.stderr.isatty()

    def advance(self, n: int) -> None:
        """``n`` more sessions done."""
        self.done += n
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last < (0.2 if self._tty else self._every):
            return
        self._last = now
        self._show(now, final=False)

    def finish(self) -> None:
        """The last line."""
        if self._enabled:
            self._show(time.monotonic(), final=True)

    def _show(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        if self._tty:
            width = 30
            filled = int(width * self.done / self.total) if self.total else width
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if final else ""
            sys.stderr.write(
                f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.0f}/s ETA {eta}   {end}"
            )
        else:
            sys.stderr.write(
                f"{self.label}: {self.done}/{self.total} sessions, {rate:.0f}/s, ETA {eta}\n"
            )
        sys.stderr.flush()
