"""``redis-sessions serve``: the HTTP service on uvicorn.

litestar and uvicorn are imported inside the command, so the rest of the command line works
without the ``http`` extra. Workers get their configuration through the environment
(``REDIS_SESSIONS_*``) and build the app with :func:`app_from_env` (a uvicorn app factory).
"""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path
from typing import Any

import click

from .._cli_common import ENV_CA_FILE, SettingError, Settings, server_options

NO_AUTH_ENV = "REDIS_SESSIONS_INSECURE_NO_AUTH"
ENV_URL = "REDIS_SESSIONS_URL"
ENV_PREFIX = "REDIS_SESSIONS_PREFIX"
ENV_MAX_BODY = "REDIS_SESSIONS_MAX_BODY_BYTES"
ENV_POOL = "REDIS_SESSIONS_MAX_CONNECTIONS"
ENV_CORS = "REDIS_SESSIONS_CORS_ORIGINS"
ENV_METRICS = "REDIS_SESSIONS_METRICS"
ENV_TRACING = "REDIS_SESSIONS_TRACING"


def serve_url(settings: Settings, embedded: bool) -> str | None:
    """The Redis URL to serve: ``--url`` (before or after ``serve``) or ``$REDIS_SESSIONS_URL``;
    None means the embedded server, which needs ``--embedded``. Without either, the command line's
    one error for a missing server (exit 2, naming both)."""
    if embedded:
        if settings.url_or_none() is not None:
            raise click.UsageError(
                "--embedded starts a throwaway server: give it or a URL, not both"
            )
        return None
    try:
        return settings.require_url()
    except SettingError as exc:
        raise SettingError(
            f"{exc.message}; `serve --embedded` starts one to try the service out (a service on a "
            "throwaway server loses every session on restart)"
        ) from exc


def _exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM as SystemExit (status 128 + signal), so that ``finally`` blocks still run."""
    raise SystemExit(128 + signum)


def app_from_env() -> Any:
    """The app as a worker builds it, from the environment ``serve`` set (a uvicorn factory)."""
    from ..aio import AsyncSessionStore
    from ..config import StoreConfig
    from . import AuthConfig, create_app

    url = os.environ[ENV_URL]
    config = StoreConfig(key_prefix=os.environ.get(ENV_PREFIX, "rs"))
    if os.environ.get(NO_AUTH_ENV) == "1":
        auth = AuthConfig(insecure_no_auth=True)
    else:
        auth = AuthConfig.from_env()
    pool = int(os.environ.get(ENV_POOL, "512"))
    tls: dict[str, Any] = (
        {"ssl_ca_certs": os.environ[ENV_CA_FILE]} if os.environ.get(ENV_CA_FILE) else {}
    )
    metrics = os.environ.get(ENV_METRICS) == "1"
    tracing = os.environ.get(ENV_TRACING) == "1"
    observer = _observer(metrics=metrics, tracing=tracing)
    return create_app(
        lambda: AsyncSessionStore.from_url(
            url, config=config, max_connections=pool, observer=observer, **tls
        ),
        auth,
        max_body_bytes=int(os.environ.get(ENV_MAX_BODY, str(2 * 1024 * 1024))),
        cors_origins=[o for o in os.environ.get(ENV_CORS, "").split(",") if o],
        metrics=metrics,
        tracing=tracing,
    )


def _observer(*, metrics: bool, tracing: bool) -> Any:
    """The service's store observer: Prometheus metrics and OpenTelemetry spans, as asked."""
    from ..observability import Observers

    chosen: list[Any] = []
    if metrics:
        from ..observability.metrics import PrometheusObserver

        chosen.append(PrometheusObserver())
    if tracing:
        from ..observability.tracing import TracingObserver

        chosen.append(TracingObserver())
    if not chosen:
        return None
    return chosen[0] if len(chosen) == 1 else Observers(*chosen)


@click.command()
@server_options
@click.option(
    "--embedded", is_flag=True, help="Start a throwaway redis-server to try it out (data is lost)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--jwt-secret", envvar="REDIS_SESSIONS_JWT_SECRET", help="HS256 shared secret.")
@click.option("--jwks-url", envvar="REDIS_SESSIONS_JWKS_URL", help="JWKS URL (RS256/ES256).")
@click.option(
    "--jwt-public-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key (RS256/ES256).",
)
@click.option("--jwt-audience", envvar="REDIS_SESSIONS_JWT_AUDIENCE", help="Required aud.")
@click.option("--jwt-issuer", envvar="REDIS_SESSIONS_JWT_ISSUER", help="Required iss.")
@click.option("--jwt-leeway", envvar="REDIS_SESSIONS_JWT_LEEWAY", type=float, default=None)
@click.option(
    "--admin-claim",
    envvar="REDIS_SESSIONS_ADMIN_CLAIM",
    help="claim=value that operator routes need (e.g. role=service_role).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Development only: no token checks, every request is user 'dev'.",
)
@click.option("--max-body-bytes", default=2 * 1024 * 1024, show_default=True, type=int)
@click.option(
    "--max-connections",
    default=512,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Redis connections per worker (a request waits for a free one).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="An origin whose browser pages may call the API (repeat for several; none by default).",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help="Prometheus metrics at /metrics (default: on when the metrics extra is installed).",
)
@click.option(
    "--tracing", is_flag=True, help="OpenTelemetry spans (the tracing extra; configure the SDK)."
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.pass_context
def serve(ctx: click.Context, /, **opts: Any) -> None:
    """Serve the session API over HTTP (uvicorn), every route behind a JWT."""
    insecure_no_auth: bool = opts["insecure_no_auth"]
    jwt_public_key_file: Path | None = opts["jwt_public_key_file"]
    try:
        import uvicorn

        from ._auth import AuthConfig, Authenticator
    except ImportError as exc:
        raise click.ClickException(
            f"serve needs the http extra: pip install 'redis-sessions[http]' ({exc})"
        ) from exc
    settings = ctx.ensure_object(Settings)
    settings.config()  # a bad prefix is a usage error before anything starts
    chosen = serve_url(settings, opts["embedded"])
    env: dict[str, str] = {
        ENV_PREFIX: settings.prefix,
        ENV_MAX_BODY: str(opts["max_body_bytes"]),
        ENV_POOL: str(opts["max_connections"]),
        ENV_CORS: ",".join(opts["cors_origins"]),
    }
    if insecure_no_auth:
        env[NO_AUTH_ENV] = "1"
    else:
        public_key = jwt_public_key_file.read_text() if jwt_public_key_file else None
        options: dict[str, Any] = {
            "secret": opts["jwt_secret"],
            "jwks_url": opts["jwks_url"],
            "public_key": public_key,
            "audience": opts["jwt_audience"],
            "issuer": opts["jwt_issuer"],
            "leeway": opts["jwt_leeway"],
            "admin_claim": opts["admin_claim"],
        }
        try:
            Authenticator(AuthConfig.from_env(**options))  # checks it all before any worker starts
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        names = {
            "secret": "REDIS_SESSIONS_JWT_SECRET",
            "jwks_url": "REDIS_SESSIONS_JWKS_URL",
            "public_key": "REDIS_SESSIONS_JWT_PUBLIC_KEY",
            "audience": "REDIS_SESSIONS_JWT_AUDIENCE",
            "issuer": "REDIS_SESSIONS_JWT_ISSUER",
            "leeway": "REDIS_SESSIONS_JWT_LEEWAY",
            "admin_claim": "REDIS_SESSIONS_ADMIN_CLAIM",
        }
        env.update({names[k]: str(v) for k, v in options.items() if v is not None})
    from ..embedded import EmbeddedRedis, RedisServerNotFound

    server = None
    if chosen is None:
        try:
            server = EmbeddedRedis().start()
        except (RedisServerNotFound, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from exc
        chosen = server.url
        click.secho(
            f"WARNING: serving on an EMBEDDED THROWAWAY redis-server ({server.binary.path}, "
            f"port {server.port}): every session is LOST when this command stops. "
            "Give --url or REDIS_SESSIONS_URL for a real one.",
            fg="red",
            bold=True,
            err=True,
        )
    env[ENV_URL] = chosen
    ca_file = settings.client_options().get("ssl_ca_certs")
    if ca_file:
        env[ENV_CA_FILE] = ca_file
    if insecure_no_auth:
        click.secho(
            "WARNING: --insecure-no-auth: tokens are NOT checked; every request acts as user "
            "'dev' with admin rights. Never expose this server.",
            fg="red",
            bold=True,
            err=True,
        )
    metrics = opts["metrics"]
    if metrics is None:
        metrics = importlib.util.find_spec("prometheus_client") is not None
    if metrics:
        env[ENV_METRICS] = "1"
        if opts["workers"] > 1:  # before any worker imports prometheus_client: one scrape for all
            from ..observability import prepare_multiprocess

            prepare_multiprocess()
    if opts["tracing"]:
        env[ENV_TRACING] = "1"
    os.environ.update(env)
    if server is not None:
        # uvicorn raises the signal it shut down on again once it is done: with the default
        # handler, SIGTERM would end the process here and leave the embedded server running
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "redis_sessions.http._cli:app_from_env",
            factory=True,
            host=opts["host"],
            port=opts["port"],
            workers=opts["workers"],
            access_log=opts["access_log"],
            proxy_headers=True,
            timeout_graceful_shutdown=10,
        )
    finally:
        if server is not None:
            server.stop()
