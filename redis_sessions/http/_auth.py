"""Bearer-token authentication: JWTs signed with HS256 (a shared secret) or RS256/ES256 (a PEM
public key, or keys from a JWKS URL, cached and refreshed on an unknown ``kid``).

The user is the token's ``sub`` and nothing else. ``alg: none``, an algorithm the configuration
does not allow, a key of the wrong type for the token's algorithm (HS256 signed with a public key:
algorithm confusion), a bad signature, an expired or not-yet-valid token, a wrong audience or
issuer: all answer 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._problems import RETRY_AFTER, HTTPProblem

__all__ = ["AuthConfig"]

log = logging.getLogger("redis_sessions.http")

ASYMMETRIC = {"RS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey}
JwksFetcher = Callable[[str], bytes]
VERIFIED_CACHE = 10_000  # tokens whose signature was checked: PyJWT takes ~100 us per token


def _fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as reply:
        body: bytes = reply.read(1_000_000)
        return body


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """How the service checks bearer tokens. Give ``secret`` (HS256), ``public_key`` (a PEM public
    key, RS256 or ES256) or ``jwks_url`` (RS256/ES256 keys by ``kid``); a secret may be combined
    with one of the others, each key checking only the algorithms of its kind.

    ``audience`` and ``issuer`` are checked when set (Supabase: audience ``authenticated``).
    ``leeway`` is the clock skew allowed on ``exp`` and ``nbf``, in seconds. ``admin_claim``
    (``claim=value``, e.g. ``role=service_role``; a dotted claim name walks nested objects, a list
    claim must contain the value) marks tokens allowed on operator routes. ``insecure_no_auth``
    turns authentication off (development only: every request is ``dev_user``, an admin).
    ``jwks_fetcher(url) -> bytes`` replaces the HTTP fetch (tests); the key set is fetched again
    after ``jwks_max_age`` seconds, or on an unknown ``kid`` at most every ``jwks_min_refresh``.
    """

    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 30.0
    admin_claim: str | None = None
    insecure_no_auth: bool = False
    dev_user: str = "dev"
    jwks_fetcher: JwksFetcher | None = None
    jwks_min_refresh: float = 30.0
    jwks_max_age: float = 600.0

    def __post_init__(self) -> None:
        if not self.insecure_no_auth and not (self.secret or self.public_key or self.jwks_url):
            raise ValueError(
                "authentication needs a JWT secret, a public key or a JWKS URL "
                "(or insecure_no_auth for development)"
            )
        if self.public_key and self.jwks_url:
            raise ValueError("give a public key or a JWKS URL, not both")
        if self.admin_claim is not None and "=" not in self.admin_claim:
            raise ValueError(f"admin claim {self.admin_claim!r} is not claim=value")
        if self.leeway < 0:
            raise ValueError("leeway must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AuthConfig:
        """The configuration from ``REDIS_SESSIONS_JWT_SECRET``, ``REDIS_SESSIONS_JWT_PUBLIC_KEY``
        (PEM text), ``REDIS_SESSIONS_JWKS_URL``, ``REDIS_SESSIONS_JWT_AUDIENCE``,
        ``REDIS_SESSIONS_JWT_ISSUER``, ``REDIS_SESSIONS_JWT_LEEWAY`` and
        ``REDIS_SESSIONS_ADMIN_CLAIM``; ``overrides`` that are not None win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "secret": env.get("REDIS_SESSIONS_JWT_SECRET") or None,
            "public_key": env.get("REDIS_SESSIONS_JWT_PUBLIC_KEY") or None,
            "jwks_url": env.get("REDIS_SESSIONS_JWKS_URL") or None,
            "audience": env.get("REDIS_SESSIONS_JWT_AUDIENCE") or None,
            "issuer": env.get("REDIS_SESSIONS_JWT_ISSUER") or None,
            "admin_claim": env.get("REDIS_SESSIONS_ADMIN_CLAIM") or None,
        }
        if env.get("REDIS_SESSIONS_JWT_LEEWAY"):
            values["leeway"] = float(env["REDIS_SESSIONS_JWT_LEEWAY"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject (None on an operator token without one)."""

    user_id: str | None
    is_admin: bool


def unauthorized(reason: str) -> HTTPProblem:
    """401 with the challenge RFC 6750 asks for."""
    challenge = 'Bearer realm="redis-sessions"'
    if reason != "missing bearer token":
        challenge += ', error="invalid_token"'
    return HTTPProblem(401, reason, headers={"WWW-Authenticate": challenge})


class _Jwks:
    """The key set of a JWKS URL, by ``kid``: fetched on first use, again after ``max_age``, and on
    an unknown ``kid`` at most every ``min_refresh`` seconds (a flood of forged kids costs one
    fetch per interval). One fetch at a time, in a thread."""

    def __init__(self, config: AuthConfig) -> None:
        assert config.jwks_url is not None
        self.url = config.jwks_url
        self.fetch = config.jwks_fetcher or _fetch_url
        self.min_refresh = config.jwks_min_refresh
        self.max_age = config.jwks_max_age
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self.fetched_at: float | None = None
        self.fetches = 0
        self.lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = self.fetched_at is None or now - self.fetched_at > self.max_age
        if stale or (kid not in self.keys and now - (self.fetched_at or 0) >= self.min_refresh):
            async with self.lock:
                if self.fetched_at is None or self.fetched_at < now:
                    await self._refresh()
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    async def _refresh(self) -> None:
        self.fetches += 1
        try:
            raw = await asyncio.to_thread(self.fetch, self.url)
            document = json.loads(raw)
            entries = document["keys"]
        except Exception as exc:
            log.warning("cannot fetch the JWKS at %s: %s", self.url, exc)
            if self.fetched_at is None:
                raise HTTPProblem(
                    503, "the signing keys cannot be fetched", headers={"Retry-After": RETRY_AFTER}
                ) from exc
            self.fetched_at = time.monotonic()  # keep the old keys; try again after min_refresh
            return
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in entries if isinstance(entries, list) else []:
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError as exc:
                log.info("JWKS key %r skipped: %s", entry.get("kid"), exc)
                continue
            if entry.get("use", "sig") == "sig":
                keys[entry.get("kid")] = key
        self.keys = keys
        self.fetched_at = time.monotonic()


class Authenticator:
    """Checks a request's ``Authorization`` header against an :class:`AuthConfig`."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.public_key = None
        if config.public_key:
            loaded = load_pem_public_key(config.public_key.encode())
            if not isinstance(loaded, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
                raise ValueError("the public key must be an RSA or EC key")
            self.public_key = loaded
        self.jwks = _Jwks(config) if config.jwks_url else None
        self._verified: dict[str, tuple[dict[str, Any], float, float | None]] = {}
        self.admin: tuple[list[str], str] | None = None
        if config.admin_claim:
            name, _, value = config.admin_claim.partition("=")
            self.admin = (name.strip().split("."), value.strip())

    async def principal(self, authorization: str | None) -> Principal:
        """The caller of a request with this ``Authorization`` header, or HTTPProblem 401."""
        if self.config.insecure_no_auth:
            return Principal(self.config.dev_user, True)
        if not authorization:
            raise unauthorized("missing bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header is not 'Bearer <token>'")
        claims = await self.claims(token.strip())
        sub = claims.get("sub")
        user = sub if isinstance(sub, str) and sub else None
        return Principal(user, self._is_admin(claims))

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``, or HTTPProblem 401.

        A token verified once is remembered (up to VERIFIED_CACHE tokens, until its ``exp``):
        its signature, audience and issuer are not checked again, its ``exp`` and ``nbf`` are.
        """
        cached = self._verified.get(token)
        if cached is not None:
            known, expires, not_before = cached
            now = time.time()
            leeway = self.config.leeway
            if now <= expires + leeway and (not_before is None or now >= not_before - leeway):
                return known
            del self._verified[token]
        claims = await self._verify(token)
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, (int, float)) and (nbf is None or isinstance(nbf, (int, float))):
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.pop(next(iter(self._verified)))  # the oldest
            self._verified[token] = (claims, float(exp), None if nbf is None else float(nbf))
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.config.secret:
            key = self.config.secret
        elif alg in ASYMMETRIC and (self.public_key is not None or self.jwks is not None):
            key = await self._public_key(alg, header.get("kid"))
        else:
            raise unauthorized(f"tokens signed with {alg!r} are not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp"], "verify_aud": self.config.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid token: {exc}") from exc
        return claims

    async def _public_key(self, alg: str, kid: Any) -> Any:
        if self.public_key is not None:
            key: Any = self.public_key
        else:
            assert self.jwks is not None
            jwk = await self.jwks.key(kid if isinstance(kid, str) else None)
            if jwk is None:
                raise unauthorized("the token's key id is not in the key set")
            if jwk.algorithm_name != alg:
                raise unauthorized(f"key {kid!r} is not for {alg}")
            key = jwk.key
        if not isinstance(key, ASYMMETRIC[alg]):
            raise unauthorized(f"the key is not a key for {alg}")
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1":
            raise unauthorized("ES256 needs a P-256 key")
        return key

    def _is_admin(self, claims: Mapping[str, Any]) -> bool:
        if self.admin is None:
            return False
        path, value = self.admin
        found: Any = claims
        for part in path:
            found = found.get(part) if isinstance(found, Mapping) else None
        if isinstance(found, list):
            return value in found
        return isinstance(found, str) and found == value
