"""The ``redis-sessions`` command line: a demo and inspection of a store.

The server comes from ``--url`` or ``REDIS_URL``; with neither, an embedded throwaway redis-server is
started for the run and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import msgspec
import redis

from .check import DAMAGE, PROBLEMS
from .config import StoreConfig
from .embedded import EmbeddedRedis, RedisServerNotFound
from .exceptions import InvalidInput, SessionStoreError, StoreUnavailable
from .http._cli import serve  # the command only: litestar and uvicorn load when it runs
from .keys import SLOTS, KeySpace
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
    """What the command group hands its subcommands: the server's URL, the key prefix."""

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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``45s``, ``2w`` as a timedelta."""
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 1d12h, 90m or 45s")
    total = dt.timedelta()
    for amount, unit in parts:
        total += dt.timedelta(**{_UNITS[unit]: float(amount)})
    if total <= dt.timedelta(0):
        raise click.BadParameter("the duration must be positive")
    return total


class Duration(click.ParamType[dt.timedelta]):
    """A duration option: ``90s``, ``10m``, ``12h``, ``30d``, ``2w``, combinations (``1d12h``)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The option text as a timedelta (bare numbers are seconds)."""
        return value if isinstance(value, dt.timedelta) else parse_duration(str(value))


@cli.command()
@click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="Idle time after which a session goes (default: StoreConfig.max_age, 30d).",
)
@click.option("--dry-run", is_flag=True, help="Find and count expired sessions, delete nothing.")
@click.option(
    "--batch-size", default=100, show_default=True, help="Candidates per slot per script."
)
@click.pass_obj
def sweep(obj: Context, max_age: dt.timedelta | None, dry_run: bool, batch_size: int) -> None:
    """Delete expired sessions now, in the foreground."""
    with obj.store() as store, _store_errors():
        with click.progressbar(length=SLOTS, label="sweeping", file=sys.stderr) as bar:
            seen = [0]

            def progress(done: int, total: int) -> None:
                bar.length = max(total, SLOTS)
                bar.update(done - seen[0])
                seen[0] = done

            report = store.cleanup_expired_sessions(
                max_age, batch_size=batch_size, dry_run=dry_run, progress=progress
            )
        verb = "would delete" if dry_run else "deleted"
        click.echo(
            f"{verb} {report.deleted} of {report.scanned} candidates idle longer than "
            f"{_human(report.max_age)} (ended sessions: {_human(report.ended_max_age)}); "
            f"kept {report.kept} touched meanwhile; {report.malformed} malformed entries; "
            f"{report.duration_seconds:.2f} s"
        )


@cli.command()
@click.option("--repair", is_flag=True, help="Fix the inconsistencies found (each fix is atomic).")
@click.option(
    "--drop-corrupt",
    is_flag=True,
    help="With --repair: also delete keys of the wrong type and undecodable records "
    "(a record goes with its whole session).",
)
@click.pass_obj
def check(obj: Context, repair: bool, drop_corrupt: bool) -> None:
    """Scan the store for inconsistencies and damage; exit 1 if any is left unrepaired."""
    if drop_corrupt and not repair:
        raise click.UsageError("--drop-corrupt needs --repair")
    with obj.store() as store, _store_errors():
        report = store.check(repair=repair, drop_corrupt=drop_corrupt)
    click.echo(f"scanned {report.scanned_keys} keys")
    for kind, description in PROBLEMS.items():
        found = report.problems.get(kind, 0)
        if not found:
            continue
        fixed, left = report.repaired.get(kind, 0), report.left.get(kind, 0)
        verb = "deleted" if kind in DAMAGE else "repaired"
        line = f"  {description}: found {found}, {verb} {fixed}, left {left}"
        if left and kind in DAMAGE and not drop_corrupt:
            line += " - left alone (use --drop-corrupt to delete)"
        click.echo(line)
    if report.unknown_keys:
        click.echo(
            f"  keys under the prefix that the store does not write: {report.unknown_keys} "
            "(reported, never touched)"
        )
    for example in report.examples:
        click.echo(f"    {example}")
    if report.unrepaired:
        damage_left = any(kind in DAMAGE for kind in report.left)
        if not repair:
            flags = "--repair --drop-corrupt" if damage_left else "--repair"
            hint = f"run `redis-sessions check {flags}`"
        elif damage_left and not drop_corrupt:
            hint = "damage is only deleted with `redis-sessions check --repair --drop-corrupt`"
        else:
            hint = "they changed meanwhile or a key of the wrong type was in the way; run it again"
        raise click.ClickException(f"{report.unrepaired} problem(s) left unrepaired: {hint}")
    click.echo("consistent" if not report.problems else "all problems repaired")


@cli.command()
@click.option("--queue", "queue_name", default="redis-sessions", show_default=True)
@click.option("--interval", default=600, show_default=True, help="Seconds between sweeps.")
@click.option("--max-age", type=Duration(), default=None, help="As for `sweep`.")
@click.option("--burst", is_flag=True, help="Enqueue one sweep, run the queue empty, and exit.")
@click.pass_obj
def worker(
    obj: Context, queue_name: str, interval: int, max_age: dt.timedelta | None, burst: bool
) -> None:
    """Run an RQ worker on QUEUE with the sweep scheduled every INTERVAL seconds."""
    from .runner import run_worker

    if obj.url is None:
        raise click.UsageError(
            "the worker needs --url or REDIS_URL (an embedded server would vanish)"
        )
    _or_usage_error(lambda: StoreConfig(key_prefix=obj.prefix))
    try:
        run_worker(
            obj.url,
            prefix=obj.prefix,
            queue_name=queue_name,
            interval=interval,
            max_age=max_age,
            burst=burst,
        )
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot reach Redis at {redact(obj.url)}: {exc}") from exc


cli.add_command(serve)  # redis-sessions serve: the HTTP service (needs the http extra)


def _human(age: dt.timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    keyspace: KeySpace = store.keyspace
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
            scored: list[tuple[bytes, float]] = client.zrange(name, 0, -1, withscores=True)
            for member, score in scored:
                items += [member, f"{score:.17g}"]
        elif kind == "string" and keyspace.classify(name) is not None:  # a write's replay key
            ttl = client.pttl(name)
            lines.append(f"> GET {_arg(name)}  (a write's reply, kept {ttl} ms more for a resend)")
            items.append(client.get(name))
        else:
            lines.append(f"> TYPE {_arg(name)}  ->  {kind} (not a key this store writes)")
        lines += [f"  {i}) {redis_repr(item)}" for i, item in enumerate(items[:MAX_SHOWN], 1)]
        if len(items) > MAX_SHOWN:
            lines.append(f"  ... {len(items) - MAX_SHOWN} more")
    return lines


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main() -> None:
    """The ``redis-sessions`` console script."""
    cli(prog_name="redis-sessions")


if __name__ == "__main__":  # pragma: no cover
    main()
