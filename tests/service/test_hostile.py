"""Hostile input to the HTTP service: ids and bodies built to break it, damage in Redis, an
unexpected error; each is a problem+json client error (or a 500 without details) that writes
nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("litestar", reason="needs the http extra: pip install '.[http]'")

from .support import Api
from .test_routes import problem


@pytest.mark.parametrize(
    "path",
    [
        "/sessions/not-a-uuid",
        "/sessions/..%2F..%2Fetc%2Fpasswd",
        "/sessions/" + "a" * 5000,
        "/sessions/%00",
        "/sessions/{u}%0d%0aX-Injected:1",
        "/sessions/' OR 1=1 --",
        "/sessions/{U}",  # upper-case UUID: the same id, still 404 when missing
    ],
)
def test_hostile_ids_answer_a_client_error(api: Api, path: str) -> None:
    u = uuid.uuid4()
    path = path.format(u=u, U=str(u).upper())
    reply = api.client.get(path, headers=api.alice)
    assert reply.status_code in (400, 404), reply.text
    problem(reply, reply.status_code)
    assert "x-injected" not in reply.headers


def test_stored_damage_is_reported_not_hidden(api: Api) -> None:
    import redis

    with api.store() as store:  # not through the app: its cache never saw the session
        sid = str(store.create_session("alice"))

    with redis.Redis.from_url(api.url) as raw:
        raw.hset(f"{api.prefix}:{{u:alice}}:s:{sid}", "c:session_goal", "{broken")
    result = api.client.get(f"/validateSessionContext?sessionId={sid}", headers=api.alice).json()
    assert result["valid"] is False and result["errors"]
    damaged = problem(api.client.get(f"/sessions/{sid}", headers=api.alice), 500)
    assert api.prefix not in str(damaged)  # no key names, no tracebacks
    assert api.client.delete(f"/sessions/{sid}", headers=api.alice).status_code == 204


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    problem(api.client.get("/nowhere", headers=api.alice), 404)
    problem(api.client.post("/healthz"), 405)
    problem(api.client.patch("/sessions", json={}, headers=api.alice), 405)


def test_an_unexpected_error_is_a_500_problem_without_details(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    store = api.client.app.state.store

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    store.list_user_sessions = broken
    reply = api.client.get("/sessions", headers=api.alice)
    body = problem(reply, 500)
    assert "secret internals" not in reply.text and "RuntimeError" not in reply.text
    assert body["detail"] == "internal error"
    assert "secret internals" in caplog.text  # logged for the operator


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"null", 400),
        (b'"a string"', 400),
        (b'{"context": {"high_cost_calls": NaN}}', 400),
        (b'{"context": {"high_cost_calls": 1e999}}', 400),
        (b'{"context": {"high_cost_calls": 1152921504606846976}}', 422),
        (b'{"context": {"last_event": ' + b'{"a": ' * 80 + b"1" + b"}" * 80 + b"}}", 422),
        (
            b'{"context": {"k' + b'": 1, "k'.join(str(i).encode() for i in range(2000)) + b'": 1}}',
            422,
        ),
        (b'{"context": {"session_goal": "\\u0000\\ud800"}}', 400),
        (b'{"folder_id": "../../x"}', 400),
        (b"\xff\xfe\x00", 400),
    ],
)
def test_hostile_bodies_are_refused_and_write_nothing(api: Api, body: bytes, status: int) -> None:
    reply = api.client.post(
        "/sessions", content=body, headers={**api.alice, "content-type": "application/json"}
    )
    problem(reply, status)
    with api.store() as store:
        assert store.list_user_sessions("alice") == []
