"""``redis-sessions serve``: the HTTP service on uvicorn.

litestar and uvicorn are imported inside the command, so the rest of the command line works
without the ``http`` extra. Workers get their configuration through the environment
(``REDIS_SESSIONS_*``) and build the app with :func:`app_from_env` (a uvicorn app factory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

NO_AUTH_ENV = "REDIS_SESSIONS_INSECURE_NO_AUTH"
ENV_URL = "REDIS_SESSIONS_URL"
ENV_PREFIX = "REDIS_SESSIONS_PREFIX"
ENV_MAX_BODY = "REDIS_SESSIONS_MAX_BODY_BYTES"
ENV_POOL = "REDIS_SESSIONS_MAX_CONNECTIONS"
ENV_CORS = "REDIS_SESSIONS_CORS_ORIGINS"


def serve_url(url: str | None, group_url: str | None, embedded: bool) -> str | None:
    """The Redis URL to serve: ``--url``/``$REDIS_SESSIONS_URL``, else the group's ``--url``;
    None means the embedded server, which needs ``--embedded``. (The URL rule of ``serve``, in
    one place.)"""
    chosen = url or group_url
    if chosen and embedded:
        raise click.UsageError("--embedded starts a throwaway server: give it or a URL, not both")
    if chosen is None and not embedded:
        raise click.UsageError(
            "serve needs a Redis URL: --url or REDIS_SESSIONS_URL (a service on a throwaway "
            "server loses every session on restart; --embedded starts one to try it out)"
        )
    return chosen


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
    return create_app(
        lambda: AsyncSessionStore.from_url(url, config=config, max_connections=pool),
        auth,
        max_body_bytes=int(os.environ.get(ENV_MAX_BODY, str(2 * 1024 * 1024))),
        cors_origins=[o for o in os.environ.get(ENV_CORS, "").split(",") if o],
    )


@click.command()
@click.option("--url", envvar=ENV_URL, default=None, help="Redis URL (or $REDIS_SESSIONS_URL).")
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
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.pass_context
def serve(ctx: click.Context, /, **opts: Any) -> None:
    """Serve the session API over HTTP (uvicorn), every route behind a JWT."""
    url: str | None = opts["url"]
    insecure_no_auth: bool = opts["insecure_no_auth"]
    jwt_public_key_file: Path | None = opts["jwt_public_key_file"]
    try:
        import uvicorn

        from ._auth import AuthConfig, Authenticator
    except ImportError as exc:
        raise click.ClickException(
            f"serve needs the http extra: pip install 'redis-sessions[http]' ({exc})"
        ) from exc
    group = ctx.obj
    prefix = getattr(group, "prefix", "rs")
    chosen = serve_url(url, getattr(group, "url", None), opts["embedded"])
    env: dict[str, str] = {
        ENV_PREFIX: prefix,
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
    if insecure_no_auth:
        click.secho(
            "WARNING: --insecure-no-auth: tokens are NOT checked; every request acts as user "
            "'dev' with admin rights. Never expose this server.",
            fg="red",
            bold=True,
            err=True,
        )
    os.environ.update(env)
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
