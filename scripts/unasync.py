"""Generate redis_sessions/_sync_api.py (SessionStore's operations) from _async_api.py.

    python scripts/unasync.py            write the file
    python scripts/unasync.py --check    exit 1 if the file is not what this would write

The async API is the one written by hand; the sync one is the same text with ``async def`` made
``def`` and ``await self._drive(...)`` made ``self._run(...)`` (the sync driver runs the very same
coroutine to its end), then formatted with ruff. httpcore keeps its two flavours the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "redis_sessions"
SOURCE = PACKAGE / "_async_api.py"
TARGET = PACKAGE / "_sync_api.py"

HEADER = '''"""The public operations of SessionStore. GENERATED from ``_async_api.py`` by
``scripts/unasync.py`` (``make generate``): edit that file, not this one.
"""
'''
#: (pattern, replacement), applied in order to everything after the source's module docstring
RULES = [
    (r"\basync def ", "def "),
    (r"\breturn await self\._drive\(", "return self._run("),
    (r"\bAsyncModifyFn\b", "ModifyFn"),
    (r"\b_AsyncAPI\b", "_SyncAPI"),
    (r"\bAsyncSessionStore\b", "SessionStore"),
    (r"the asyncio store", "the synchronous store"),
]


def generate() -> str:
    text = SOURCE.read_text("utf-8")
    body = text[text.index('"""', 3) + 3 :]  # drop the source's module docstring
    for pattern, replacement in RULES:
        body = re.sub(pattern, replacement, body)
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=HEADER + body,
        capture_output=True,
        text=True,
        check=True,
    )
    return formatted.stdout


def main() -> int:
    generated = generate()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text("utf-8") if TARGET.exists() else ""
        if current != generated:
            print(f"{TARGET} is not current: run `make generate`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(generated, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
