"""Bearer-token authentication of the HTTP service: HS256, RS256 and ES256 (a PEM key, a JWKS
served by a local HTTP server), and every way a token can be wrong (401 with WWW-Authenticate),
the admin claim (403), and the no-auth development mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("litestar", reason="needs the http extra: pip install '.[http]'")

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.http import AuthConfig

from .support import SECRET, Api, bearer, serving, token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(key: Any, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        data["alg"] = "RS256"
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        data["alg"] = "ES256"
    data.update(kid=kid, use="sig")
    return data


class JwksServer:
    """A tiny HTTP server answering its ``keys`` as a JWKS, counting the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def status(api: Api, headers: dict[str, str], path: str = "/sessions") -> int:
    reply = api.client.get(path, headers=headers)
    if reply.status_code == 401:
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert reply.headers["content-type"].startswith("application/problem+json")
    return reply.status_code


def hs256_by_hand(payload: dict[str, Any], key: bytes, header: dict[str, Any]) -> str:
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64(signature)


def test_hs256_and_every_broken_token(api: Api) -> None:
    now = int(time.time())
    good = token("alice")
    assert status(api, bearer(good)) == 200
    head, body, signature = good.split(".")
    forged_body = _b64(json.dumps({"sub": "bob", "exp": now + 300}).encode())
    unsigned = jwt.encode({"sub": "alice", "exp": now + 300}, None, algorithm="none")
    cases = {
        "no header": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": "Basic YWxpY2U6cGFzcw=="},
        "token without scheme": {"Authorization": good},
        "garbage": bearer("not.a.jwt"),
        "two parts": bearer(f"{head}.{body}"),
        "expired": bearer(token("alice", exp_in=-120)),
        "not yet valid": bearer(token("alice", nbf=now + 120)),
        "no exp": bearer(token("alice", exp_in=None)),
        "other secret": bearer(token("alice", key="another-secret-of-enough-length-012345")),
        "tampered payload": bearer(f"{head}.{forged_body}.{signature}"),
        "signature stripped": bearer(f"{head}.{body}."),
        "alg none": bearer(unsigned),
        "alg None by hand": bearer(_b64(b'{"alg":"None","typ":"JWT"}') + "." + body + "."),
        "HS512": bearer(token("alice", alg="HS512")),
        "no sub": bearer(token(None)),
        "empty sub": bearer(token("")),
        "numeric sub": bearer(jwt.encode({"sub": 42, "exp": now + 300}, SECRET, algorithm="HS256")),
    }
    for name, headers in cases.items():
        assert status(api, headers) == 401, name
    assert status(api, bearer(token("alice", exp_in=-10))) == 200  # within the 30 s leeway


def test_no_route_takes_the_user_from_the_request(api: Api) -> None:
    sid = api.new_session()  # alice's
    for extra in ({"X-User-Id": "alice"}, {"X-User": "alice"}):
        reply = api.client.get(f"/sessions/{sid}", headers={**api.bob, **extra})
        assert reply.status_code == 404
    listed = api.client.get("/sessions?user_id=alice&userId=alice", headers=api.bob)
    assert listed.status_code == 400  # a parameter no route takes is refused, never ignored
    assert [e["path"] for e in listed.json()["errors"]] == ["userId", "user_id"]
    assert api.client.get("/sessions", headers=api.bob).json() == {"sessions": []}


def test_audience_and_issuer_when_configured(http_redis: EmbeddedRedis) -> None:
    auth = AuthConfig(
        secret=SECRET, audience="authenticated", issuer="https://x.supabase.co/auth/v1"
    )
    with serving(http_redis.url, auth) as api:
        iss = "https://x.supabase.co/auth/v1"
        assert status(api, bearer(token("a", aud="authenticated", iss=iss))) == 200
        assert status(api, bearer(token("a", aud=["other", "authenticated"], iss=iss))) == 200
        assert status(api, bearer(token("a", iss=iss))) == 401  # no aud
        assert status(api, bearer(token("a", aud="anon", iss=iss))) == 401
        assert status(api, bearer(token("a", aud="authenticated"))) == 401  # no iss
        assert status(api, bearer(token("a", aud="authenticated", iss="https://evil"))) == 401


def test_pem_public_key_rs256_and_algorithm_confusion(http_redis: EmbeddedRedis) -> None:
    key = rsa_key()
    public_pem = pem(key)
    with serving(http_redis.url, AuthConfig(public_key=public_pem)) as api:
        assert status(api, bearer(token("alice", key=key, alg="RS256"))) == 200
        # HS256 with the public key as the HMAC secret: the classic confusion attack
        now = int(time.time())
        confused = hs256_by_hand(
            {"sub": "alice", "exp": now + 300}, public_pem.encode(), {"alg": "HS256", "typ": "JWT"}
        )
        assert status(api, bearer(confused)) == 401
        # RS256 header over an HMAC signature made with the public key
        relabelled = hs256_by_hand(
            {"sub": "alice", "exp": now + 300}, public_pem.encode(), {"alg": "RS256", "typ": "JWT"}
        )
        assert status(api, bearer(relabelled)) == 401
        assert status(api, bearer(token("alice", key=rsa_key(), alg="RS256"))) == 401  # other key
        assert status(api, bearer(token("alice", key=ec_key(), alg="ES256"))) == 401  # wrong kind
        assert status(api, bearer(token("alice"))) == 401  # HS256: no secret configured


def test_pem_public_key_es256(http_redis: EmbeddedRedis) -> None:
    key = ec_key()
    with serving(http_redis.url, AuthConfig(public_key=pem(key))) as api:
        assert status(api, bearer(token("alice", key=key, alg="ES256"))) == 200
        assert status(api, bearer(token("alice", key=ec_key(), alg="ES256"))) == 401
        p384 = ec.generate_private_key(ec.SECP384R1())
        assert status(api, bearer(token("alice", key=p384, alg="ES384"))) == 401


def test_jwks_rs256_es256_rotation_and_rate_limit(
    http_redis: EmbeddedRedis, jwks_server: JwksServer
) -> None:
    rsa1, ec1, rsa2 = rsa_key(), ec_key(), rsa_key()
    jwks_server.keys = [jwk(rsa1, "rsa-1"), jwk(ec1, "ec-1")]
    auth = AuthConfig(jwks_url=jwks_server.url, jwks_min_refresh=60)
    with serving(http_redis.url, auth) as api:
        assert (
            status(api, bearer(token("alice", key=rsa1, alg="RS256", headers={"kid": "rsa-1"})))
            == 200
        )
        assert (
            status(api, bearer(token("alice", key=ec1, alg="ES256", headers={"kid": "ec-1"})))
            == 200
        )
        assert jwks_server.fetches == 1  # cached
        # a key id claiming the other key's kind, a forged key under a known kid
        assert (
            status(api, bearer(token("alice", key=ec1, alg="ES256", headers={"kid": "rsa-1"})))
            == 401
        )
        assert (
            status(
                api, bearer(token("alice", key=rsa_key(), alg="RS256", headers={"kid": "rsa-1"}))
            )
            == 401
        )
        # unknown kids: at most one fetch per jwks_min_refresh, however many arrive
        for i in range(20):
            forged = token("alice", key=rsa_key(), alg="RS256", headers={"kid": f"nope-{i}"})
            assert status(api, bearer(forged)) == 401
        assert jwks_server.fetches == 1  # fetched less than 60 s ago: not again
        assert status(api, bearer(token("alice", key=rsa1, alg="RS256"))) == 401  # no kid, 2 keys

    # rotation: a token signed with a key published after the first fetch is accepted once the
    # interval has passed (refreshed on its unknown kid)
    auth = AuthConfig(jwks_url=jwks_server.url, jwks_min_refresh=0.2)
    with serving(http_redis.url, auth) as api:
        before = jwks_server.fetches
        assert (
            status(api, bearer(token("alice", key=rsa1, alg="RS256", headers={"kid": "rsa-1"})))
            == 200
        )
        jwks_server.keys.append(jwk(rsa2, "rsa-2"))
        time.sleep(0.25)
        assert (
            status(api, bearer(token("alice", key=rsa2, alg="RS256", headers={"kid": "rsa-2"})))
            == 200
        )
        assert jwks_server.fetches == before + 2
        assert status(api, bearer(token("alice"))) == 401  # HS256 with only a JWKS configured


def test_jwks_with_an_injected_fetcher_and_a_secret_beside_it(http_redis: EmbeddedRedis) -> None:
    key = ec_key()
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return json.dumps({"keys": [jwk(key, "k")]}).encode()

    auth = AuthConfig(secret=SECRET, jwks_url="https://example.invalid/jwks", jwks_fetcher=fetch)
    with serving(http_redis.url, auth) as api:
        assert (
            status(api, bearer(token("alice", key=key, alg="ES256", headers={"kid": "k"}))) == 200
        )
        assert status(api, bearer(token("alice"))) == 200  # HS256 still checked by the secret
        assert calls == ["https://example.invalid/jwks"]


def test_jwks_unreachable_is_503_not_401(http_redis: EmbeddedRedis) -> None:
    def fetch(url: str) -> bytes:
        raise OSError("connection refused")

    auth = AuthConfig(jwks_url="https://example.invalid/jwks", jwks_fetcher=fetch)
    with serving(http_redis.url, auth) as api:
        reply = api.client.get(
            "/sessions",
            headers=bearer(token("alice", key=rsa_key(), alg="RS256", headers={"kid": "k"})),
        )
        assert reply.status_code == 503
        assert reply.headers["retry-after"]


def test_admin_claim(http_redis: EmbeddedRedis) -> None:
    for claim, good, bad in [
        ("role=service_role", {"role": "service_role"}, {"role": "authenticated"}),
        ("app_metadata.role=admin", {"app_metadata": {"role": "admin"}}, {"app_metadata": {}}),
        ("roles=ops", {"roles": ["reader", "ops"]}, {"roles": ["reader"]}),
    ]:
        with serving(http_redis.url, AuthConfig(secret=SECRET, admin_claim=claim)) as api:
            ok = api.client.post("/cleanupExpiredSessions", headers=bearer(token(None, **good)))
            assert ok.status_code == 200, (claim, ok.text)
            denied = api.client.post("/cleanupExpiredSessions", headers=bearer(token("u", **bad)))
            assert denied.status_code == 403, claim
            assert denied.headers["content-type"].startswith("application/problem+json")
            assert api.client.post("/cleanupExpiredSessions").status_code == 401
            # an operator token without sub is no user
            assert status(api, bearer(token(None, **good))) == 401
    with serving(http_redis.url, AuthConfig(secret=SECRET)) as api:  # no admin claim: nobody
        denied = api.client.post(
            "/cleanupExpiredSessions", headers=bearer(token("u", role="service_role"))
        )
        assert denied.status_code == 403


def test_health_routes_need_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_no_auth_mode_is_explicit_and_loud(
    http_redis: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(http_redis.url, AuthConfig(insecure_no_auth=True)) as api:
        created = api.client.post("/sessions", json={})
        assert created.status_code == 201
        listed = api.client.get("/sessions").json()["sessions"]
        assert [row["user_id"] for row in listed] == ["dev"]
    assert "authentication is OFF" in capsys.readouterr().err


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="secret"):
        AuthConfig()
    with pytest.raises(ValueError, match="claim=value"):
        AuthConfig(secret=SECRET, admin_claim="service_role")
    with pytest.raises(ValueError, match="not both"):
        AuthConfig(public_key="x", jwks_url="https://x")
    env = {
        "REDIS_SESSIONS_JWT_SECRET": "s",
        "REDIS_SESSIONS_JWT_AUDIENCE": "authenticated",
        "REDIS_SESSIONS_ADMIN_CLAIM": "role=service_role",
        "REDIS_SESSIONS_JWT_LEEWAY": "5",
    }
    config = AuthConfig.from_env(env)
    assert (config.secret, config.audience, config.admin_claim, config.leeway) == (
        "s",
        "authenticated",
        "role=service_role",
        5.0,
    )
    assert AuthConfig.from_env(env, secret="other").secret == "other"
