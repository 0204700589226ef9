"""The ``redis-sessions`` command line: a demo and inspection of a store.

The server comes from ``--url`` or ``REDIS_URL``; with neither, an embedded throwaway redis-server is
started for the run and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import msgspec
import redis

from .config import StoreConfig
from .embedded import EmbeddedRedis, RedisServerNotFound
from .exceptions import InvalidInput, SessionStoreError, StoreUnavailable
from .keys import KeySpace
from .store import SessionStore

T = TypeVar("T")
MAX_SHOWN = 100


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class Context:
    def __init__(self, url: str | None, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    @contextlib.contextmanager
    def store(self) -> Iterator[SessionStore]:
        """A store on the given server, or on an embedded one for the duration of the block."""
        config = _or_usage_error(lambda: StoreConfig(key_prefix=self.prefix))
        with contextlib.ExitStack() as stack:
            url = self.url
            if url is None:
                try:
                    server = stack.enter_context(EmbeddedRedis())
                except (RedisServerNotFound, RuntimeError) as exc:
                    raise click.ClickException(str(exc)) from exc
                click.echo(
                    f"Using an embedded throwaway redis-server {server.version()} "
                    f"({server.binary.origin}: {server.binary.path}) on 127.0.0.1:{server.port}; "
                    "it is stopped when the command ends. Give --url or REDIS_URL for a real one.",
                    err=True,
                )
                url = server.url
            store = _or_usage_error(lambda: SessionStore.from_url(url, config=config))
            stack.callback(store.close)
            try:
                store.client.ping()
            except redis.RedisError as exc:
                raise click.ClickException(f"cannot reach Redis at {redact(url)}: {exc}") from exc
            yield store


def _or_usage_error(make: Callable[[], T]) -> T:
    try:
        return make()
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc


@click.group()
@click.option(
    "--url",
    envvar="REDIS_URL",
    default=None,
    help="Redis URL (default: $REDIS_URL, else an embedded throwaway server).",
)
@click.option("--prefix", default="rs", show_default=True, help="Key prefix of the store.")
@click.version_option(package_name="redis-sessions")
@click.pass_context
def cli(ctx: click.Context, url: str | None, prefix: str) -> None:
    """Inspect and demonstrate a redis-sessions store."""
    ctx.obj = Context(url, prefix)


@cli.command()
@click.pass_obj
def demo(obj: Context) -> None:
    """Run a scripted tutoring-session lifecycle and show the keys as redis-cli does."""
    from .demo import run_demo

    with obj.store() as store, _store_errors():
        run_demo(store, click.echo)


@cli.command("list")
@click.argument("user")
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.pass_obj
def list_(obj: Context, user: str, limit: int, offset: int) -> None:
    """List USER's sessions, most recent activity first."""
    with obj.store() as store, _store_errors():
        rows = store.list_user_sessions(user, limit=limit, offset=offset)
        if not rows:
            click.echo(f"no sessions for user {user!r}")
        for row in rows:
            ended = f"  ended {row.ended_at:%Y-%m-%d %H:%M}" if row.ended_at else ""
            click.echo(
                f"{row.session_id}  v{row.version}  active {row.updated_at:%Y-%m-%d %H:%M:%S}"
                f"{ended}  {row.session_goal or ''}"
            )


@cli.command()
@click.argument("user")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
@click.pass_obj
def show(obj: Context, user: str, session_id: str, as_json: bool) -> None:
    """Show one session of USER."""
    with obj.store() as store, _store_errors():
        session = store.get_session(session_id, user)
        if session is None:
            raise click.ClickException(f"no session {session_id} for user {user!r}")
        if as_json:
            click.echo(msgspec.json.format(msgspec.json.encode(session), indent=2).decode())
            return
        click.echo(
            f"session {session.session_id} of {session.user_id!r}, version {session.version}"
        )
        click.echo(
            f"created {session.created_at.isoformat()}, active {session.updated_at.isoformat()}"
            + (f", ended {session.ended_at.isoformat()}" if session.ended_at else "")
        )
        context = msgspec.to_builtins(session.context)  # defaults left out
        for name, value in context.items():
            click.echo(f"  {name}: {_short(msgspec.json.encode(value).decode())}")
        for topic, concept in session.context.user_model_state.concepts.items():
            click.echo(
                f"  mastery {topic}: {concept.mastery:.2f} (confidence {concept.confidence}"
                f"{', mastered' if concept.is_mastered else ''})"
            )


@cli.command()
@click.argument("user")
@click.argument("session_id")
@click.pass_obj
def delete(obj: Context, user: str, session_id: str) -> None:
    """Delete one session of USER with its messages and snapshots."""
    with obj.store() as store, _store_errors():
        if not store.delete_session(session_id, user):
            raise click.ClickException(f"no session {session_id} for user {user!r}")
        click.echo(f"deleted session {session_id} of {user!r}")


@cli.command()
@click.argument("user")
@click.pass_obj
def keys(obj: Context, user: str) -> None:
    """Show every key of USER as redis-cli shows it."""
    with obj.store() as store, _store_errors():
        for line in describe_user_keys(store, user):
            click.echo(line)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except SessionStoreError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _short(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


_ESCAPES = {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    7: "\\a",
    8: "\\b",
}


def redis_repr(value: bytes | str | int, width: int = 110) -> str:
    """A value quoted as redis-cli prints it (its sdscatrepr escaping), cut after ``width`` bytes."""
    raw = value if isinstance(value, bytes) else str(value).encode()
    cut = len(raw) > width
    out = []
    for byte in raw[:width]:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"' + ("..." if cut else "")


def _arg(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    plain = all(32 < b < 127 and b not in b"\"\\'" for b in key)
    return text if plain else redis_repr(key, width=10_000)


def describe_user_keys(store: SessionStore, user: str) -> list[str]:
    """Every key of ``user``, with its content in redis-cli's numbered format."""
    keyspace: KeySpace = store._core.keys
    client = store.client
    names = sorted(client.scan_iter(match=keyspace.user_pattern(user), count=1000))
    if not names:
        return [f"(no keys for user {user!r} under prefix {keyspace.prefix!r})"]
    lines = []
    for name in names:
        kind = _text(client.type(name))
        items: list[Any] = []
        if kind == "hash":
            lines.append(f"> HGETALL {_arg(name)}")
            for field, value in client.hgetall(name).items():
                items += [field, value]
        elif kind == "zset":
            lines.append(f"> ZRANGE {_arg(name)} 0 -1 WITHSCORES")
            scored: list[tuple[bytes, float]] = client.zrange(name, 0, -1, withscores=True)  # type: ignore[assignment]
            for member, score in scored:
                items += [member, f"{score:.17g}"]
        else:
            lines.append(f"> TYPE {_arg(name)}  ->  {kind} (not a key this store writes)")
        lines += [f"  {i}) {redis_repr(item)}" for i, item in enumerate(items[:MAX_SHOWN], 1)]
        if len(items) > MAX_SHOWN:
            lines.append(f"  ... {len(items) - MAX_SHOWN} more")
    return lines


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main() -> None:
    cli(prog_name="redis-sessions")


if __name__ == "__main__":  # pragma: no cover
    main()
