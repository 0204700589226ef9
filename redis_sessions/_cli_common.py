"""What every ``redis-sessions`` command that talks to a server shares (used by ``cli.py`` and by the
modules of other commands, such as ``serve`` and ``migrate``).

- ``server_options``: a decorator adding ``--url``, ``--prefix`` and ``--ca-file`` to a command, so
  they are accepted after the subcommand as well as before it (on the group).
- ``Settings.require_url()``: the Redis URL from ``--url``, else ``$REDIS_SESSIONS_URL``; without
  either, a ``SettingError`` naming both (one line, exit 2). Nothing here ever starts an embedded server.
- ``Settings.client_options()``: the redis-py options of a command-line client: CLI_SOCKET_TIMEOUT,
  CLI_CONNECT_TIMEOUT and no retries (redis-py retries the connection inside each retried command,
  so retries multiply; a command line reports and lets the operator run it again), plus the CA file
  of a ``rediss://`` URL.
- ``connection_errors(url)``: a context manager turning a bad URL, an unreachable server, refused
  credentials, a timeout, a refused command (ACL) or a store error into one clear line on stderr
  and a non-zero exit (2 for a usage error, 1 otherwise), never a traceback.
- ``open_store(settings)``: a ``SessionStore`` on the required server with those options, checked
  with a PING, closed at the end of the block.

Usage in a command module::

    @cli.command()
    @server_options
    @click.pass_obj
    def serve(settings: Settings) -> None:
        url = settings.require_url()
        with connection_errors(url):
            ...
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import redis
import redis.exceptions as rex
from redis.backoff import NoBackoff
from redis.retry import Retry

from .config import StoreConfig
from .exceptions import BackendError, InvalidInput, SessionStoreError, StoreUnavailable
from .store import SessionStore

F = TypeVar("F", bound=Callable[..., Any])

ENV_URL = "REDIS_SESSIONS_URL"
ENV_CA_FILE = "REDIS_SESSIONS_CA_FILE"
#: seconds a command-line client waits for each reply, and for a TCP (and TLS) connection
CLI_SOCKET_TIMEOUT = 5.0
CLI_CONNECT_TIMEOUT = 3.0
#: the most a command waits on a server that accepts connections and never answers, in seconds:
#: one attempt (no retries) of the connection's handshake or of the first command
CLI_NO_ANSWER_BUDGET = CLI_CONNECT_TIMEOUT + CLI_SOCKET_TIMEOUT


class SettingError(click.ClickException):
    """A missing or malformed server setting (URL, prefix, CA file): one line, exit status 2."""

    exit_code = 2


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class Settings:
    """The server settings of one command line run: ``--url``, ``--prefix``, ``--ca-file``, given
    on the group or on the subcommand (the subcommand's win)."""

    def __init__(
        self, url: str | None = None, prefix: str = "rs", ca_file: str | None = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ca_file = ca_file

    def url_or_none(self) -> str | None:
        """``--url``, else ``$REDIS_SESSIONS_URL``, else None (only ``demo`` may go on without)."""
        return self.url or os.environ.get(ENV_URL) or None

    def require_url(self) -> str:
        """The server's URL; without one, a SettingError (exit 2) naming ``--url`` and the variable."""
        url = self.url_or_none()
        if url is None:
            legacy = " (REDIS_URL is set, but is not read)" if os.environ.get("REDIS_URL") else ""
            raise SettingError(
                f"no Redis server given: pass --url redis://HOST:PORT/DB or set {ENV_URL}{legacy} "
                "(only `redis-sessions demo` starts a throwaway server of its own)"
            )
        return url

    def config(self, **options: Any) -> StoreConfig:
        """The store configuration for ``--prefix``; an invalid prefix is a SettingError."""
        try:
            return StoreConfig(key_prefix=self.prefix, **options)
        except InvalidInput as exc:
            raise SettingError(str(exc)) from exc

    def client_options(self) -> dict[str, Any]:
        """redis-py options for a command-line client (see the module's documentation)."""
        options: dict[str, Any] = {
            "socket_timeout": CLI_SOCKET_TIMEOUT,
            "socket_connect_timeout": CLI_CONNECT_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
        }
        ca_file = self.ca_file or os.environ.get(ENV_CA_FILE)
        if ca_file:
            if not os.path.isfile(ca_file):
                raise SettingError(f"CA file {ca_file!r} does not exist")
            options["ssl_ca_certs"] = ca_file
        return options

    def client(self, url: str) -> redis.Redis:
        """A plain redis-py client for ``url`` with ``client_options()`` (bad URL: SettingError)."""
        try:
            return redis.Redis.from_url(url, **self.client_options())
        except ValueError as exc:
            raise SettingError(f"invalid Redis URL {redact(url)!r}: {exc}") from exc


def _set_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and param.name is not None:
        setattr(ctx.ensure_object(Settings), param.name, value)


def server_options(command: F) -> F:
    """Add ``--url``, ``--prefix`` and ``--ca-file`` to ``command`` (they override the group's)."""
    for decorator in reversed(
        [
            click.option(
                "--url",
                default=None,
                expose_value=False,
                callback=_set_option,
                help=f"Redis URL (redis://, rediss:// for TLS, unix://); default ${ENV_URL}.",
            ),
            click.option(
                "--prefix",
                default=None,
                expose_value=False,
                callback=_set_option,
                help="Key prefix of the store (default rs).",
            ),
            click.option(
                "--ca-file",
                default=None,
                expose_value=False,
                callback=_set_option,
                help=f"CA certificate(s) to verify a rediss:// server with; default ${ENV_CA_FILE}.",
            ),
        ]
    ):
        command = decorator(command)
    return command


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def connection_errors(url: str) -> Iterator[None]:
    """Turn what goes wrong talking to ``url`` into one line and a non-zero exit (see the module)."""
    where = redact(url)
    try:
        yield
    except InvalidInput as exc:
        raise SettingError(_one_line(str(exc))) from exc
    except (rex.AuthenticationError, rex.AuthenticationWrongNumberOfArgsError) as exc:
        raise click.ClickException(
            f"Redis at {where} refused the credentials: {_one_line(str(exc))}"
        ) from exc
    except rex.TimeoutError as exc:
        raise click.ClickException(
            f"Redis at {where} did not answer within {CLI_SOCKET_TIMEOUT:g} s: {_one_line(str(exc))}"
        ) from exc
    except rex.NoPermissionError as exc:
        raise click.ClickException(
            f"Redis at {where} refused a command to this user (ACL): {_one_line(str(exc))}"
        ) from exc
    except rex.ConnectionError as exc:
        raise click.ClickException(f"cannot reach Redis at {where}: {_one_line(str(exc))}") from exc
    except rex.RedisError as exc:
        raise click.ClickException(
            f"Redis at {where} answered with an error: {_one_line(str(exc))}"
        ) from exc
    except (StoreUnavailable, BackendError) as exc:
        cause = exc.__cause__
        if isinstance(cause, rex.RedisError):  # the same words as without the store
            with connection_errors(url):
                raise cause from None
        if isinstance(exc, BackendError):
            raise click.ClickException(
                f"Redis at {where} answered with an error: {_one_line(str(exc))}"
            ) from exc
        raise click.ClickException(f"cannot reach Redis at {where}: {_one_line(str(exc))}") from exc
    except SessionStoreError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {_one_line(str(exc))}") from exc


@contextlib.contextmanager
def open_store(
    settings: Settings, url: str | None = None, *, cache: bool = False
) -> Iterator[SessionStore]:
    """A store on ``url`` (default: the required URL of ``settings``) with the command-line client
    options, after one PING (1 round trip). Without ``cache`` (a command reads nothing twice) the
    store has no cache, so no invalidation listener. Errors inside the block become one line
    (``connection_errors``)."""
    url = url or settings.require_url()
    config = settings.config() if cache else settings.config(cache_size=0)
    options = settings.client_options()
    try:
        store = SessionStore.from_url(url, config=config, **options)
    except InvalidInput as exc:
        raise SettingError(f"invalid Redis URL {redact(url)!r}: {exc.__cause__ or exc}") from exc
    with contextlib.closing(store), connection_errors(url):
        store.client.ping()
        yield store
