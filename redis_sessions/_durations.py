"""Durations as operators write them, read the same way by the command line and the RQ job."""

from __future__ import annotations

import datetime as dt
import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
EXAMPLES = "90s, 10m, 12h, 30d, 2w, 1d12h or bare seconds (600)"


def parse_duration(value: str | float) -> dt.timedelta:
    """``90s``, ``10m``, ``12h``, ``30d``, ``2w``, combinations (``1d12h``) or seconds (``600``,
    ``600.5``, or a number) as a positive timedelta; anything else raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
        total = dt.timedelta(seconds=value)
    else:
        compact = str(value).replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            total = dt.timedelta(seconds=float(compact))
        else:
            parts = _PART.findall(compact)
            if not parts or "".join(a + b for a, b in parts) != compact:
                raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
            total = sum(
                (dt.timedelta(**{_UNITS[unit]: float(n)}) for n, unit in parts), dt.timedelta()
            )
    if total <= dt.timedelta(0):
        raise ValueError(f"the duration {value!r} must be positive")
    return total
