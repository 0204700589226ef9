"""Shared pieces of the HTTP service tests: an app served in-process by Litestar's test client,
and tokens (the fixtures are in conftest.py).

The app makes its store itself (a factory) so that the store lives on the test client's event
loop; tests check what Redis holds through a sync store on the same server and prefix.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import redis
from litestar.testing import TestClient

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.http import AuthConfig, create_app

SECRET = "http-tests-shared-secret-" + "0123456789abcdef" * 3
ADMIN_CLAIM = "role=service_role"


def token(
    sub: str | None = "alice",
    *,
    key: Any = SECRET,
    alg: str = "HS256",
    exp_in: float | None = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed JWT for ``sub`` (``exp`` ``exp_in`` seconds from now unless None)."""
    payload: dict[str, Any] = dict(claims)
    if sub is not None:
        payload["sub"] = sub
    if exp_in is not None:
        payload["exp"] = int(time.time() + exp_in)
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def bearer(tok: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {tok}"}


class Api:
    """A test client on the app plus what the tests need around it."""

    def __init__(self, client: TestClient[Any], url: str, prefix: str) -> None:
        self.client = client
        self.url = url
        self.prefix = prefix
        self.alice = bearer(token("alice"))
        self.bob = bearer(token("bob"))
        self.admin = bearer(token("ops", role="service_role"))

    def store(self) -> SessionStore:
        """A sync store on the same data (to check what Redis holds)."""
        return SessionStore.from_url(
            self.url, config=StoreConfig(key_prefix=self.prefix, invalidation=False, cache_size=0)
        )

    def new_session(self, headers: dict[str, str] | None = None, **body: Any) -> str:
        reply = self.client.post("/sessions", json=body, headers=headers or self.alice)
        assert reply.status_code == 201, reply.text
        sid: str = reply.json()["session_id"]
        return sid


@contextlib.contextmanager
def serving(url: str, auth: AuthConfig | None = None, **options: Any) -> Iterator[Api]:
    """The app on a store under a fresh prefix of ``url``, served in-process; keys deleted after."""
    prefix = f"h{uuid.uuid4().hex[:10]}"
    config = StoreConfig(key_prefix=prefix)
    auth = auth or AuthConfig(secret=SECRET, admin_claim=ADMIN_CLAIM)
    app = create_app(lambda: AsyncSessionStore.from_url(url, config=config), auth, **options)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, url, prefix)
    finally:
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as raw:
            keys = list(raw.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                raw.delete(*keys)
