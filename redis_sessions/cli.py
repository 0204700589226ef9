"""The ``redis-sessions`` command line: a demo, inspection and maintenance of a store.

Every command that reads or changes data needs a server: ``--url`` or ``$REDIS_SESSIONS_URL``
(``_cli_common``); only ``demo`` starts an embedded throwaway server when neither is given. The
server options (``--url``, ``--prefix``, ``--ca-file``) go before or after the subcommand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from typing import Any

import click
import msgspec

from ._cli_common import (
    ENV_URL,
    SettingError,
    Settings,
    connection_errors,
    open_store,
    redact,
    server_options,
)
from ._cli_format import (
    Duration,
    describe_user_keys,
    echo_json,
    human,
    read_user_keys,
    redis_repr,
    short,
    table,
)
from .check import DAMAGE, PROBLEMS
from .embedded import EmbeddedRedis, RedisServerNotFound
from .http._cli import serve  # the command only: litestar and uvicorn load when it runs
from .keys import SLOTS
from .migrate._cli import migrate
from .store import SessionStore

__all__ = ["cli", "main", "redact", "redis_repr"]

LIST_CAP = 100  # list_user_sessions caps its limit here
OFFSET_CAP = 10_000


@click.group()
@server_options
@click.version_option(package_name="redis-sessions")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect, maintain and demonstrate a redis-sessions store."""
    ctx.ensure_object(Settings)


@contextlib.contextmanager
def _demo_store(settings: Settings, keep: bool) -> Iterator[SessionStore]:
    url = settings.url_or_none()
    if url is not None:
        with open_store(settings, url, cache=True) as store:
            yield store
        return
    if keep:
        raise SettingError(f"demo --keep needs a server that outlives the demo: --url or {ENV_URL}")
    try:
        server = EmbeddedRedis()
        server.start()
    except (RedisServerNotFound, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        click.echo(
            f"Using an embedded throwaway redis-server {server.version()} "
            f"({server.binary.origin}: {server.binary.path}) on 127.0.0.1:{server.port}; "
            f"it is stopped when the command ends. Give --url or {ENV_URL} for a real one.",
            err=True,
        )
        with open_store(settings, server.url, cache=True) as store:
            yield store
    finally:
        server.stop()


@cli.command()
@server_options
@click.option(
    "--keep", is_flag=True, help="Leave the demo's data (needs --url) and print redis-cli commands."
)
@click.pass_obj
def demo(settings: Settings, keep: bool) -> None:
    """Run a scripted tutoring-session lifecycle and show the keys as redis-cli does."""
    from .demo import run_demo

    with _demo_store(settings, keep) as store:
        url = settings.url_or_none()
        run_demo(store, click.echo, keep=keep, url=redact(url) if url else None)


def _limit(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1:
        raise click.BadParameter("must be at least 1")
    if value > LIST_CAP:
        raise click.BadParameter(
            f"{value} is above the store's cap of {LIST_CAP} sessions per listing: "
            f"page with --offset (e.g. --limit {LIST_CAP} --offset {LIST_CAP})"
        )
    return value


def _offset(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if not 0 <= value <= OFFSET_CAP:
        raise click.BadParameter(f"must be between 0 and {OFFSET_CAP} (the store's cap)")
    return value


@cli.command("list")
@server_options
@click.argument("user")
@click.option("--limit", default=50, show_default=True, callback=_limit, help="At most 100.")
@click.option("--offset", default=0, show_default=True, callback=_offset)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON array.")
@click.pass_obj
def list_(settings: Settings, user: str, limit: int, offset: int, as_json: bool) -> None:
    """List USER's sessions, most recent activity first."""
    with open_store(settings) as store:
        rows = store.list_user_sessions(user, limit=limit, offset=offset)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no sessions for user {user!r}", err=True)
        return
    lines = table(
        ["SESSION", "VERSION", "LAST ACTIVE (UTC)", "ENDED (UTC)", "GOAL"],
        [
            (
                row.session_id,
                row.version,
                f"{row.updated_at:%Y-%m-%d %H:%M:%S}",
                f"{row.ended_at:%Y-%m-%d %H:%M}" if row.ended_at else "-",
                row.session_goal or "",
            )
            for row in rows
        ],
    )
    click.echo("\n".join(lines))


@cli.command()
@server_options
@click.argument("user")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
@click.pass_obj
def show(settings: Settings, user: str, session_id: str, as_json: bool) -> None:
    """Show one session of USER."""
    with open_store(settings) as store:
        session = store.get_session(session_id, user)
    if session is None:
        raise click.ClickException(f"no session {session_id} for user {user!r}")
    if as_json:
        echo_json(session)
        return
    click.echo(f"session {session.session_id} of {session.user_id!r}, version {session.version}")
    click.echo(
        f"created {session.created_at.isoformat()}, active {session.updated_at.isoformat()}"
        + (f", ended {session.ended_at.isoformat()}" if session.ended_at else "")
    )
    context = msgspec.to_builtins(session.context)  # defaults left out
    rows = [(name, short(msgspec.json.encode(value).decode())) for name, value in context.items()]
    click.echo("\n".join(table(["FIELD", "VALUE"], rows)))
    concepts = session.context.user_model_state.concepts
    if concepts:
        mastery = [
            (topic, f"{c.mastery:.2f}", c.confidence, "yes" if c.is_mastered else "no")
            for topic, c in concepts.items()
        ]
        click.echo("\n".join(table(["CONCEPT", "MASTERY", "CONFIDENCE", "MASTERED"], mastery)))


@cli.command()
@server_options
@click.argument("user")
@click.argument("session_id")
@click.pass_obj
def delete(settings: Settings, user: str, session_id: str) -> None:
    """Delete one session of USER with its messages and snapshots."""
    with open_store(settings) as store:
        deleted = store.delete_session(session_id, user)
    if not deleted:
        raise click.ClickException(f"no session {session_id} for user {user!r}")
    click.echo(f"deleted session {session_id} of {user!r}")


@cli.command()
@server_options
@click.argument("user")
@click.option("--json", "as_json", is_flag=True, help="Print the keys and values as JSON.")
@click.pass_obj
def keys(settings: Settings, user: str, as_json: bool) -> None:
    """Show every key of USER as redis-cli shows it."""
    with open_store(settings) as store:
        if as_json:
            entries = read_user_keys(store, user)
            echo_json([{k: v for k, v in e.items() if not k.startswith("raw")} for e in entries])
            return
        for line in describe_user_keys(store, user):
            click.echo(line)


@cli.command()
@server_options
@click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="Idle time after which a session goes: 90s, 10m, 12h, 30d or seconds "
    "(default: StoreConfig.max_age, 30d).",
)
@click.option("--dry-run", is_flag=True, help="Find and count expired sessions, delete nothing.")
@click.option(
    "--batch-size", default=100, show_default=True, help="Candidates per slot per script."
)
@click.option("--json", "as_json", is_flag=True, help="Print the sweep's report as JSON.")
@click.pass_obj
def sweep(
    settings: Settings,
    max_age: dt.timedelta | None,
    dry_run: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Delete expired sessions now, in the foreground."""
    with (
        open_store(settings) as store,
        click.progressbar(length=SLOTS, label="sweeping", file=sys.stderr) as bar,
    ):
        seen = [0]

        def progress(done: int, total: int) -> None:
            bar.length = max(total, SLOTS)
            bar.update(done - seen[0])
            seen[0] = done

        report = store.cleanup_expired_sessions(
            max_age, batch_size=batch_size, dry_run=dry_run, progress=progress
        )
    if as_json:
        echo_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {report.deleted} of {report.scanned} candidates idle longer than "
        f"{human(report.max_age)} (ended sessions: {human(report.ended_max_age)}); "
        f"kept {report.kept} touched meanwhile; {report.malformed} malformed entries; "
        f"{report.duration_seconds:.2f} s"
    )


@cli.command()
@server_options
@click.option("--repair", is_flag=True, help="Fix the inconsistencies found (each fix is atomic).")
@click.option(
    "--drop-corrupt",
    is_flag=True,
    help="With --repair: also delete keys of the wrong type and undecodable records "
    "(a record goes with its whole session).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def check(settings: Settings, repair: bool, drop_corrupt: bool, as_json: bool) -> None:
    """Scan the store for inconsistencies and damage; exit 1 if any is left unrepaired."""
    if drop_corrupt and not repair:
        raise click.UsageError("--drop-corrupt needs --repair")
    with open_store(settings) as store:
        report = store.check(repair=repair, drop_corrupt=drop_corrupt)
    if as_json:
        echo_json({**msgspec.to_builtins(report), "left": report.left})
        if report.unrepaired:
            sys.exit(1)
        return
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
@server_options
@click.option("--queue", "queue_name", default="redis-sessions", show_default=True)
@click.option(
    "--interval",
    type=Duration(),
    default="10m",
    show_default=True,
    help="Time between sweeps: 90s, 10m, 1h or seconds.",
)
@click.option("--max-age", type=Duration(), default=None, help="As for `sweep`.")
@click.option(
    "--batch-size", default=100, show_default=True, help="Candidates per slot per script."
)
@click.option("--burst", is_flag=True, help="Enqueue one sweep, run the queue empty, and exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics of the sweeps on this port (needs the metrics extra).",
)
@click.pass_obj
def worker(  # noqa: PLR0917 - one parameter per option, as click passes them
    settings: Settings,
    queue_name: str,
    interval: dt.timedelta,
    max_age: dt.timedelta | None,
    batch_size: int,
    burst: bool,
    metrics_port: int | None,
) -> None:
    """Run an RQ worker on QUEUE with the sweep scheduled every INTERVAL."""
    from .worker.runner import WorkerOptions, run_worker

    url = settings.require_url()
    settings.config()  # a bad prefix is a usage error before anything starts
    with connection_errors(url):
        with settings.client(url) as client:  # within the command-line budget, before RQ's retries
            client.ping()
        run_worker(
            url,
            WorkerOptions(
                prefix=settings.prefix,
                queue_name=queue_name,
                interval=max(1, round(interval.total_seconds())),
                max_age=max_age,
                batch_size=batch_size,
                ca_file=settings.client_options().get("ssl_ca_certs"),
                metrics_port=metrics_port,
            ),
            burst=burst,
        )


cli.add_command(serve)  # redis-sessions serve: the HTTP service (needs the http extra)
cli.add_command(migrate)  # migrate import|export|verify (issue #16; psycopg loaded on use)


def main(args: list[str] | None = None) -> Any:
    """The ``redis-sessions`` console script."""
    return cli(args=args, prog_name="redis-sessions")


if __name__ == "__main__":  # pragma: no cover
    main()
