"""``redis-sessions migrate import|export|verify``: the click group, registered by ``cli.py``.

Only click, the standard library and the command line's shared helpers (``_cli_common``,
``_cli_format``) are imported here: psycopg and the migration modules are imported when a command
runs, so the CLI works without the ``postgres`` extra installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from typing import IO, Any

import click

from .._cli_common import Settings, connection_errors, server_options
from .._cli_format import Duration

#: The run finished, but rows were repaired or skipped, or verify found differences.
EXIT_REPORTED = 1


class Unreachable(click.ClickException):
    """PostgreSQL or Redis failed (unreachable, refused the login, a query failed): exit 3, so
    that a script tells it from a run that finished with reported rows (exit 1)."""

    exit_code = 3


def redis_url(ctx: click.Context) -> str:
    """The Redis URL of the store to migrate into or out of: ``--url`` (on the group or on the
    command), else ``$REDIS_SESSIONS_URL``; without either a usage error (exit 2). A migration never
    runs against an embedded throwaway server. (The one place that decides: swap it here.)"""
    return ctx.ensure_object(Settings).require_url()


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 time: {value!r}", param_hint="--since") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def _user(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise click.BadParameter(f"not a UUID: {value!r}", param_hint="--user") from exc


@contextlib.contextmanager
def _setup(
    ctx: click.Context, report: str | None, max_age: dt.timedelta | None = None
) -> Iterator[tuple[Any, Any, IO[str] | None]]:
    """(redis client, store config, report stream). Errors become one line: a usage error exits
    2, PostgreSQL or Redis failing exits 3 (1 is a finished run with rows reported)."""
    try:
        import psycopg
    except ImportError as exc:
        raise click.ClickException(
            "migrate needs psycopg 3: pip install 'redis-sessions[postgres]'"
        ) from exc
    settings = ctx.ensure_object(Settings)
    url = redis_url(ctx)
    config = settings.config(max_age=max_age) if max_age is not None else settings.config()
    client = settings.client(url)
    try:
        with contextlib.ExitStack() as stack:
            stream = stack.enter_context(open(report, "w", encoding="utf-8")) if report else None
            try:
                with connection_errors(url):
                    yield client, config, stream
            except psycopg.Error as exc:
                raise Unreachable(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
    except click.ClickException as exc:
        if type(exc) is click.ClickException:  # a server failed (usage errors keep exit 2)
            raise Unreachable(exc.message) from exc
        raise
    finally:
        client.close()


def _finish(summary: Any, failed: bool) -> None:
    for line in summary.lines():
        click.echo(line, err=True)
    if failed:
        sys.exit(EXIT_REPORTED)


_postgres = click.option(
    "--postgres",
    "dsn",
    required=True,
    envvar="REDIS_SESSIONS_POSTGRES",
    help="PostgreSQL DSN of the original's database (or $REDIS_SESSIONS_POSTGRES).",
)
_batch = click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Sessions per batch.",
)
_report = click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write every repaired or skipped row (or difference) to FILE as JSON lines.",
)
_userop = click.option(
    "--user", default=None, help="Only this user's sessions and folders (a UUID)."
)
_progress = click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress on stderr."
)
_max_age = click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="The store's max_age (e.g. 30d): sessions idle longer are not imported.",
)


@click.group("migrate")
def migrate() -> None:
    """Copy sessions between the original backend's PostgreSQL tables and the store.

    Exit status: 0 when every row was copied as it was (verify: no difference), 1 when rows were
    repaired or skipped (see --report) or verify found differences, 2 for usage errors, 3 when
    PostgreSQL or Redis failed.
    """


@migrate.command("import")
@server_options
@_postgres
@_userop
@click.option(
    "--since",
    default=None,
    help="Only sessions changed at or after this ISO-8601 time (the cutover's delta).",
)
@_batch
@click.option("--dry-run", is_flag=True, help="Read and check everything, write nothing.")
@click.option(
    "--restart",
    is_flag=True,
    help="Ignore the checkpoint of an earlier run: copy everything again.",
)
@_report
@_max_age
@_progress
@click.pass_context
def import_(
    ctx: click.Context,
    *,
    dsn: str,
    user: str | None,
    since: str | None,
    batch_size: int,
    dry_run: bool,
    restart: bool,
    report: str | None,
    max_age: dt.timedelta | None,
    progress: bool,
) -> None:
    """PostgreSQL -> Redis: folders, sessions, messages, snapshots (ids, times, turns kept)."""
    with _setup(ctx, report, max_age) as (client, config, stream):
        from ._import import run_import

        summary = run_import(
            dsn,
            client,
            config,
            user=_user(user),
            since=_since(since),
            batch_size=batch_size,
            dry_run=dry_run,
            restart=restart,
            report=stream,
            progress=progress,
        )
    _finish(summary, summary.reported > 0)


@migrate.command("export")
@server_options
@_postgres
@_userop
@click.option(
    "--create-schema", is_flag=True, help="Create the original's tables first (if missing)."
)
@_batch
@click.option("--dry-run", is_flag=True, help="Read and check everything, write nothing.")
@_report
@_progress
@click.pass_context
def export(
    ctx: click.Context,
    *,
    dsn: str,
    user: str | None,
    create_schema: bool,
    batch_size: int,
    dry_run: bool,
    report: str | None,
    progress: bool,
) -> None:
    """Redis -> PostgreSQL, in the form the original reads (upserts: reruns are harmless)."""
    _user(user)
    with _setup(ctx, report) as (client, config, stream):
        from ._export import run_export

        summary = run_export(
            dsn,
            client,
            config,
            user=user,
            create_schema=create_schema,
            batch_size=batch_size,
            dry_run=dry_run,
            report=stream,
            progress=progress,
        )
    _finish(summary, summary.reported > 0)


@migrate.command("verify")
@server_options
@_postgres
@_userop
@click.option("--since", default=None, help="Only sessions changed at or after this ISO-8601 time.")
@_batch
@_report
@_max_age
@_progress
@click.pass_context
def verify(
    ctx: click.Context,
    *,
    dsn: str,
    user: str | None,
    since: str | None,
    batch_size: int,
    report: str | None,
    max_age: dt.timedelta | None,
    progress: bool,
) -> None:
    """Compare both sides session by session; list every difference (exit 1 on any)."""
    with _setup(ctx, report, max_age) as (client, config, stream):
        from ._verify import run_verify

        summary = run_verify(
            dsn,
            client,
            config,
            user=_user(user),
            since=_since(since),
            batch_size=batch_size,
            report=stream,
            echo=click.echo,
            progress=progress,
        )
    _finish(summary, summary.differences > 0)
