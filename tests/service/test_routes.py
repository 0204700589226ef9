"""The HTTP service's routes, in-process on a real Redis: every route and status, two users
trying each other's ids, hostile ids and bodies, ETag / If-Match, the problem+json shape."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("litestar", reason="needs the http extra: pip install '.[http]'")

from .support import Api

PROBLEM = "application/problem+json"


def problem(reply: Any, status: int) -> dict[str, Any]:
    """Assert ``reply`` is a problem document with ``status``; return it."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM), reply.headers
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in reply.text
    return body


def test_create_read_and_etag(api: Api) -> None:
    reply = api.client.post(
        "/sessions", json={"context": {"session_goal": "Multiply matrices"}}, headers=api.alice
    )
    assert reply.status_code == 201
    sid = reply.json()["session_id"]
    assert reply.headers["location"] == f"/sessions/{sid}"
    got = api.client.get(f"/sessions/{sid}", headers=api.alice)
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    body = got.json()
    assert body["session_goal"] == "Multiply matrices"
    assert body["user_id"] == "alice"
    assert body["session_id"] == sid
    assert "history" not in body and "whiteboard_history" not in body  # lean
    with api.store() as store:
        assert store.get_session(sid, "alice").context.session_goal == "Multiply matrices"


def test_create_with_a_folder_copies_its_material(api: Api) -> None:
    folder_id = str(uuid.uuid4())
    put = api.client.put(
        f"/folders/{folder_id}",
        json={"name": "Linear algebra", "vector_store_id": "vs_1", "knowledge_base": "Matrices"},
        headers=api.alice,
    )
    assert put.status_code == 200, put.text
    assert put.json()["created_at"]
    sid = api.new_session(folder_id=folder_id)
    body = api.client.get(f"/sessions/{sid}", headers=api.alice).json()
    assert body["folder_id"] == folder_id
    assert body["vector_store_id"] == "vs_1"


def test_create_rejects_bad_bodies_and_writes_nothing(api: Api) -> None:
    unknown = api.client.post("/sessions", json={"goal": "x"}, headers=api.alice)
    assert "goal" in str(problem(unknown, 400)["errors"])
    bad = api.client.post("/sessions", json={"context": {"sesion_goal": "x"}}, headers=api.alice)
    errors = problem(bad, 422)["errors"]
    assert errors[0]["path"] == "$.sesion_goal"
    assert "session_goal" in errors[0]["message"]
    wrong_type = api.client.post(
        "/sessions", json={"context": {"high_cost_calls": "many"}}, headers=api.alice
    )
    assert problem(wrong_type, 422)["errors"][0]["path"] == "$.high_cost_calls"
    not_json = api.client.post(
        "/sessions",
        content=b"{not json",
        headers={**api.alice, "content-type": "application/json"},
    )
    problem(not_json, 400)
    array = api.client.post("/sessions", json=[1, 2], headers=api.alice)
    problem(array, 400)
    with api.store() as store:
        assert store.list_user_sessions("alice") == []


def test_list_newest_first_with_paging_and_a_capped_limit(api: Api) -> None:
    sids = [api.new_session(context={"session_goal": f"goal {i}"}) for i in range(3)]
    api.new_session(api.bob)
    listed = api.client.get("/sessions", headers=api.alice).json()["sessions"]
    assert [row["session_id"] for row in listed] == sids[::-1]
    assert listed[0]["session_goal"] == "goal 2"
    assert {row["user_id"] for row in listed} == {"alice"}
    page = api.client.get("/sessions?limit=1&offset=1", headers=api.alice).json()["sessions"]
    assert [row["session_id"] for row in page] == [sids[1]]
    capped = api.client.get("/sessions?limit=100000", headers=api.alice)
    assert capped.status_code == 200
    assert len(capped.json()["sessions"]) == 3
    for query in ("limit=-1", "offset=-5", "limit=abc", "offset=10001"):
        problem(api.client.get(f"/sessions?{query}", headers=api.alice), 400)
    compat = api.client.get("/listUserSessions?limit=2", headers=api.alice).json()["sessions"]
    assert [row["session_id"] for row in compat] == sids[::-1][:2]


def test_put_replaces_the_context_and_answers_the_new_etag(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "old", "high_cost_calls": 2})
    reply = api.client.put(
        f"/sessions/{sid}",
        json={"session_goal": "new", "history": [{"role": "user", "content": "dropped"}]},
        headers=api.alice,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"2"'
    assert reply.json()["session_goal"] == "new"
    got = api.client.get(f"/sessions/{sid}", headers=api.alice)
    assert got.headers["etag"] == '"2"'
    assert "high_cost_calls" not in got.json()  # the whole context was replaced
    with api.store() as store:
        session = store.get_session(sid, "alice")
        assert session.version == 2
        assert session.context.history == []


def test_if_match_guards_put_and_patch(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "v1"})
    first = api.client.put(
        f"/sessions/{sid}", json={"session_goal": "v2"}, headers={**api.alice, "If-Match": '"1"'}
    )
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    stale = api.client.put(
        f"/sessions/{sid}", json={"session_goal": "lost"}, headers={**api.alice, "If-Match": '"1"'}
    )
    assert problem(stale, 412)
    assert stale.headers["etag"] == '"2"'
    stale_patch = api.client.patch(
        f"/sessions/{sid}", json={"session_goal": "lost"}, headers={**api.alice, "If-Match": '"1"'}
    )
    problem(stale_patch, 412)
    garbage = api.client.patch(
        f"/sessions/{sid}", json={"session_goal": "lost"}, headers={**api.alice, "If-Match": "xyz"}
    )
    problem(garbage, 412)
    with api.store() as store:
        assert store.get_session(sid, "alice").context.session_goal == "v2"
        assert store.get_session(sid, "alice").version == 2
    for tag, version in (('W/"2"', 3), ('"1", "3"', 4), ("*", 5)):
        ok = api.client.patch(
            f"/sessions/{sid}",
            json={"high_cost_calls": version},
            headers={**api.alice, "If-Match": tag},
        )
        assert ok.status_code == 200, (tag, ok.text)
        assert ok.headers["etag"] == f'"{version}"'


def test_patch_is_a_json_merge_patch(api: Api) -> None:
    sid = api.new_session(
        context={
            "session_goal": "goal",
            "interaction_mode": "chat_only",
            "user_model_state": {"current_topic": "Matrices", "overall_progress": 0.5},
        }
    )
    reply = api.client.patch(
        f"/sessions/{sid}",
        json={
            "session_goal": None,
            "interaction_mode": None,
            "user_model_state": {"overall_progress": 0.75, "current_topic": None},
            "last_event": {"kind": "quiz"},
        },
        headers=api.alice,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"2"'
    with api.store() as store:
        ctx = store.get_session(sid, "alice").context
    assert ctx.session_goal is None
    assert ctx.interaction_mode == "chat_and_whiteboard"  # null: back to the default
    assert ctx.user_model_state.overall_progress == 0.75
    assert ctx.user_model_state.current_topic is None
    assert ctx.last_event == {"kind": "quiz"}


def test_patch_and_put_reject_invalid_results_and_write_nothing(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "keep"})
    cases = [
        (
            "patch",
            {"user_model_state": {"overall_progress": "lots"}},
            "$.user_model_state.overall_progress",
        ),
        ("patch", {"sesion_goal": "x"}, "$.sesion_goal"),
        ("patch", {"user_id": "bob"}, "$.user_id"),
        ("put", {"user_id": "bob"}, "$.user_id"),
        ("put", {"session_id": str(uuid.uuid4())}, "$.session_id"),
        ("put", {"interaction_mode": "shouting"}, "$.interaction_mode"),
    ]
    for method, body, path in cases:
        reply = api.client.request(method.upper(), f"/sessions/{sid}", json=body, headers=api.alice)
        errors = problem(reply, 422)["errors"]
        assert path in [e["path"] for e in errors], (body, errors)
    problem(api.client.put(f"/sessions/{sid}", json=[1], headers=api.alice), 400)
    with api.store() as store:
        session = store.get_session(sid, "alice")
    assert session.version == 1 and session.context.session_goal == "keep"


def test_two_users_cannot_reach_each_others_sessions(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "alice's"})
    api.client.post(
        f"/sessions/{sid}/messages", json={"role": "user", "text": "hi"}, headers=api.alice
    )
    missing = str(uuid.uuid4())
    for target in (sid, missing):
        attempts = [
            api.client.get(f"/sessions/{target}", headers=api.bob),
            api.client.put(f"/sessions/{target}", json={"session_goal": "bob"}, headers=api.bob),
            api.client.patch(f"/sessions/{target}", json={"session_goal": "bob"}, headers=api.bob),
            api.client.delete(f"/sessions/{target}", headers=api.bob),
            api.client.post(f"/sessions/{target}/end", headers=api.bob),
            api.client.get(f"/sessions/{target}/messages", headers=api.bob),
            api.client.post(
                f"/sessions/{target}/messages", json={"role": "user", "text": "x"}, headers=api.bob
            ),
            api.client.get(f"/sessions/{target}/whiteboard_state_at_turn", headers=api.bob),
            api.client.get(f"/validateSessionContext?sessionId={target}", headers=api.bob),
        ]
        # a foreign id answers exactly as a missing one
        assert [(r.status_code, r.json()) for r in attempts] == [
            (404, {"title": "Not Found", "status": 404, "detail": "no such session"})
        ] * len(attempts)
        compat = api.client.post("/deleteSession", json={"sessionId": target}, headers=api.bob)
        assert compat.json() == {"deleted": False}
    assert api.client.get("/sessions", headers=api.bob).json() == {"sessions": []}
    with api.store() as store:
        session = store.get_session(sid, "alice")
        assert session.context.session_goal == "alice's" and session.ended_at is None
        assert [m.text for m in store.get_messages(sid, "alice")] == ["hi"]


def test_folders_are_per_user(api: Api) -> None:
    folder_id = str(uuid.uuid4())
    put = api.client.put(f"/folders/{folder_id}", json={"name": "Algebra"}, headers=api.alice)
    assert put.status_code == 200
    assert api.client.get(f"/folders/{folder_id}", headers=api.alice).json()["name"] == "Algebra"
    compat = api.client.get(f"/getFolderData?folderId={folder_id}", headers=api.alice)
    assert compat.status_code == 200 and compat.json()["id"] == folder_id
    problem(api.client.get(f"/folders/{folder_id}", headers=api.bob), 404)
    problem(api.client.get(f"/getFolderData?folderId={folder_id}", headers=api.bob), 404)
    problem(api.client.get(f"/getFolderData?folderId={uuid.uuid4()}", headers=api.alice), 404)
    problem(api.client.get("/getFolderData?folderId=not-a-uuid", headers=api.alice), 422)
    problem(api.client.get("/getFolderData", headers=api.alice), 400)
    problem(
        api.client.put(
            f"/folders/{folder_id}", json={"name": "x", "owner": "bob"}, headers=api.alice
        ),
        400,
    )
    problem(api.client.put(f"/folders/{folder_id}", json={"name": ""}, headers=api.alice), 400)


def test_delete_and_end(api: Api) -> None:
    sid = api.new_session()
    ended = api.client.post(f"/sessions/{sid}/end", headers=api.alice)
    assert ended.status_code == 200 and ended.json() == {"session_id": sid, "ended": True}
    row = api.client.get("/sessions", headers=api.alice).json()["sessions"][0]
    assert row["ended_at"] is not None
    gone = api.client.delete(f"/sessions/{sid}", headers=api.alice)
    assert gone.status_code == 204 and gone.content == b""
    problem(api.client.delete(f"/sessions/{sid}", headers=api.alice), 404)
    problem(api.client.post(f"/sessions/{sid}/end", headers=api.alice), 404)
    other = api.new_session()
    assert api.client.post(
        "/deleteSession", json={"sessionId": other}, headers=api.alice
    ).json() == {"deleted": True}
    assert api.client.post(
        "/deleteSession", json={"sessionId": other}, headers=api.alice
    ).json() == {"deleted": False}
    problem(api.client.post("/deleteSession", json={"session_id": other}, headers=api.alice), 400)
    problem(
        api.client.post("/deleteSession", json={"sessionId": "../../etc"}, headers=api.alice), 422
    )
    with api.store() as store:
        assert store.list_user_sessions("alice") == []


def test_messages_and_the_whiteboard(api: Api) -> None:
    sid = api.new_session()
    url = f"/sessions/{sid}/messages"
    assert api.client.get(url, headers=api.alice).json() == {"messages": []}
    turns = []
    for i in range(1, 6):
        body: dict[str, Any] = {"role": "user" if i % 2 else "assistant", "text": f"turn {i}"}
        if i % 2 == 0:
            body["payload"] = {"tool": "draw"}
            body["whiteboard_actions"] = [{"type": "ADD", "n": i}]
        reply = api.client.post(url, json=body, headers=api.alice)
        assert reply.status_code == 201, reply.text
        turns.append(reply.json()["turn_no"])
    assert turns == [1, 2, 3, 4, 5]
    messages = api.client.get(url, headers=api.alice).json()["messages"]
    assert [m["text"] for m in messages] == [f"turn {i}" for i in range(1, 6)]
    assert messages[1]["payload"] == {"tool": "draw"}
    assert messages[1]["whiteboard_snapshot_index"] == 2
    page = api.client.get(f"{url}?before_turn_no=4&limit=2", headers=api.alice).json()["messages"]
    assert [m["turn_no"] for m in page] == [2, 3]
    assert len(api.client.get(f"{url}?limit=5000", headers=api.alice).json()["messages"]) == 5
    board = f"/sessions/{sid}/whiteboard_state_at_turn"
    assert api.client.get(board, headers=api.alice).json() == {
        "actions": [{"type": "ADD", "n": 2}, {"type": "ADD", "n": 4}]
    }
    assert api.client.get(f"{board}?target_snapshot_index=3", headers=api.alice).json() == {
        "actions": [{"type": "ADD", "n": 2}]
    }
    for bad in (
        {"role": "robot", "text": "x"},
        {"text": "x"},
        {"role": "user", "text": "x", "extra": 1},
    ):
        problem(api.client.post(url, json=bad, headers=api.alice), 400)
    problem(api.client.get(f"{url}?before_turn_no=-1", headers=api.alice), 400)
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    problem(
        api.client.post(
            url, json={"role": "user", "text": "x", "payload": deep}, headers=api.alice
        ),
        422,
    )
    with api.store() as store:
        assert len(store.get_messages(sid, "alice")) == 5


def test_idempotency_key_applies_a_write_once(api: Api) -> None:
    sid = api.new_session()
    headers = {**api.alice, "Idempotency-Key": "turn-1"}
    body = {"role": "user", "text": "once"}
    first = api.client.post(f"/sessions/{sid}/messages", json=body, headers=headers)
    again = api.client.post(f"/sessions/{sid}/messages", json=body, headers=headers)
    assert first.json() == again.json() == {"turn_no": 1}
    with api.store() as store:
        assert [m.text for m in store.get_messages(sid, "alice")] == ["once"]
    problem(
        api.client.post(
            f"/sessions/{sid}/messages",
            json=body,
            headers={**api.alice, "Idempotency-Key": "bad key!"},
        ),
        400,
    )


def test_validate_session_context(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "ok"})
    stored = api.client.get(f"/validateSessionContext?sessionId={sid}", headers=api.alice)
    assert stored.json() == {"valid": True, "errors": []}
    problem(
        api.client.get(f"/validateSessionContext?sessionId={uuid.uuid4()}", headers=api.alice), 404
    )
    body = {"user_id": "alice", "session_id": sid, "high_cost_calls": "x", "sesion_goal": 1}
    checked = api.client.post("/validateSessionContext", json=body, headers=api.alice)
    assert checked.status_code == 200
    result = checked.json()
    assert result["valid"] is False
    assert any(e.startswith("$.high_cost_calls") for e in result["errors"])
    assert any(e.startswith("$.sesion_goal") for e in result["errors"])
    fine = api.client.post(
        "/validateSessionContext", json={"user_id": "a", "session_id": sid}, headers=api.alice
    )
    assert fine.json() == {"valid": True, "errors": []}


def test_cleanup_needs_the_admin_claim(api: Api) -> None:
    sid = api.new_session()
    problem(api.client.post("/cleanupExpiredSessions", json={}, headers=api.alice), 403)
    problem(
        api.client.post("/cleanupExpiredSessions", json={"maxAgeMs": 0}, headers=api.admin), 400
    )
    kept = api.client.post(
        "/cleanupExpiredSessions", json={"maxAgeMs": 3_600_000}, headers=api.admin
    )
    assert kept.status_code == 200 and kept.json() == {"deleted": 0}
    import time

    time.sleep(0.01)
    swept = api.client.post("/cleanupExpiredSessions", json={"maxAgeMs": 1}, headers=api.admin)
    assert swept.json() == {"deleted": 1}
    no_body = api.client.post("/cleanupExpiredSessions", headers=api.admin)
    assert no_body.json() == {"deleted": 0}
    problem(api.client.get(f"/sessions/{sid}", headers=api.alice), 404)


def test_put_with_if_match_is_decided_by_redis_not_by_a_cached_read(api: Api) -> None:
    sid = api.new_session(context={"session_goal": "v1"})
    assert api.client.get(f"/sessions/{sid}", headers=api.alice).headers["etag"] == '"1"'
    with api.store() as other:  # another process, whose write the app has not heard of
        session = other.get_session(sid, "alice")
        session.context.session_goal = "v2"
        assert other.update_session_context(sid, "alice", session.context, expected_version=1)
    reply = api.client.put(
        f"/sessions/{sid}", json={"session_goal": "v3"}, headers={**api.alice, "If-Match": '"2"'}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"3"'
    stale = api.client.put(
        f"/sessions/{sid}", json={"session_goal": "lost"}, headers={**api.alice, "If-Match": '"2"'}
    )
    assert stale.status_code == 412 and stale.headers["etag"] == '"3"'
    with api.store() as other:
        assert other.get_session(sid, "alice").context.session_goal == "v3"
