"""The FastAPI example, driven through FastAPI's TestClient on a real redis-server."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from examples.fastapi_app import create_app
from redis_sessions import AsyncSessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis, free_port


def test_a_tutoring_turn_over_http(real_server: EmbeddedRedis) -> None:
    prefix = f"api{uuid.uuid4().hex[:6]}"
    app = create_app(
        lambda: AsyncSessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
    )
    ada, bob = {"X-User-Id": "ada"}, {"X-User-Id": "bob"}
    with TestClient(app) as http:
        created = http.post("/sessions", json={"goal": "matrices"}, headers=ada)
        assert created.status_code == 201
        sid = created.json()["session_id"]
        assert http.post(
            f"/sessions/{sid}/messages", headers=ada, json={"role": "user", "text": "hi"}
        ).json() == {"turn_no": 1}
        drawn = http.post(
            f"/sessions/{sid}/messages",
            headers=ada,
            json={
                "role": "assistant",
                "text": "look",
                "whiteboard_actions": [{"type": "CLEAR_BOARD"}],
            },
        )
        assert drawn.json() == {"turn_no": 2}
        for _ in range(4):
            result = http.post(
                f"/sessions/{sid}/outcomes",
                headers=ada,
                json={"topic": "matrices", "outcome": "correct"},
            ).json()
        assert result["mastered"] is True and result["confidence"] == 6
        ctx = http.get(f"/sessions/{sid}", params={"history": 5}, headers=ada).json()
        assert ctx["session_goal"] == "matrices" and len(ctx["history"]) == 2
        assert ctx["whiteboard_history"] == [[{"type": "CLEAR_BOARD"}]]
        assert ctx["user_model_state"]["concepts"]["matrices"]["alpha"] == 5
        assert [r["session_id"] for r in http.get("/sessions", headers=ada).json()] == [sid]
        # another user: the session does not exist for them
        assert http.get(f"/sessions/{sid}", headers=bob).status_code == 404
        assert (
            http.post(
                f"/sessions/{sid}/messages", headers=bob, json={"role": "user", "text": "x"}
            ).status_code
            == 404
        )
        assert http.delete(f"/sessions/{sid}", headers=bob).status_code == 404
        # bad input is a 422 that names the problem
        bad = http.post(
            f"/sessions/{sid}/outcomes", headers=ada, json={"topic": "matrices", "outcome": "great"}
        )
        assert bad.status_code == 422 and "unknown outcome" in bad.json()["detail"]
        assert http.get("/sessions/not-a-uuid", headers=ada).status_code == 422
        assert http.delete(f"/sessions/{sid}", headers=ada).status_code == 204
        assert http.get(f"/sessions/{sid}", headers=ada).status_code == 404


def test_redis_down_is_a_503() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with TestClient(create_app(lambda: AsyncSessionStore.from_url(url))) as http:
        response = http.get(f"/sessions/{uuid.uuid4()}", headers={"X-User-Id": "ada"})
    assert response.status_code == 503 and response.json()["error"] == "StoreUnavailable"
