from __future__ import annotations

import json
import uuid

import pytest

from redis_sessions import SessionStore, TutorContext
from redis_sessions.samples import realistic_context
from redis_sessions.validation import validate_context

SID = "8c7e3a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f"


def test_every_problem_is_reported_with_its_path() -> None:
    data = {
        "session_id": "not-a-uuid",
        "interaction_mode": "video",
        "high_cost_calls": "3",
        "user_model_state": {"concepts": {"algebra": {"alpha": "x", "confusion_points": [1]}}},
        "lesson_plan": {
            "title": "t",
            "description": "d",
            "target_audience": "a",
            "prerequisites": [],
            "sections": [
                {
                    "title": "s",
                    "objectives": [{"title": "o", "description": "d"}],
                    "estimated_duration_minutes": 5,
                    "concepts_to_cover": [],
                    "is_optional": "no",
                }
            ],
            "total_estimated_duration_minutes": 5,
        },
        "history": "not a list",
    }
    result = validate_context(data)
    assert not result.valid and result.context is None
    assert sorted(result.errors) == sorted(
        [
            "$.user_id: required field is missing",
            '$.session_id: expected uuid, got "not-a-uuid"',
            '$.interaction_mode: expected "chat_and_whiteboard" | "chat_only", got "video"',
            "$.high_cost_calls: expected int, got str",
            '$.user_model_state.concepts["algebra"].alpha: expected int, got str',
            '$.user_model_state.concepts["algebra"].confusion_points[0]: expected str, got int',
            "$.lesson_plan.sections[0].objectives[0].priority: required field is missing",
            "$.lesson_plan.sections[0].is_optional: expected bool, got str",
            "$.history: expected array, got str",
        ]
    )


@pytest.mark.parametrize("form", ["bytes", "str", "mapping", "struct"])
def test_valid_input_in_every_form_normalizes(form: str) -> None:
    ctx = realistic_context("alice", SID)
    data: object = {
        "bytes": lambda: json.dumps({"user_id": "alice", "session_id": SID}).encode(),
        "str": lambda: json.dumps({"user_id": "alice", "session_id": SID}),
        "mapping": lambda: {"user_id": "alice", "session_id": uuid.UUID(SID)},
        "struct": lambda: ctx,
    }[form]()
    result = validate_context(data)
    assert result.valid and result.errors == []
    expected = ctx if form == "struct" else TutorContext(user_id="alice", session_id=uuid.UUID(SID))
    assert result.context == expected


@pytest.mark.parametrize("data", [b"{not json", "[1, 2", 42, None, ["a"]])
def test_not_a_context_at_all(data: object) -> None:
    result = validate_context(data)
    assert not result.valid and len(result.errors) == 1 and result.errors[0].startswith("$")


def test_optional_and_union_members() -> None:
    ok = validate_context(
        {"user_id": "u", "session_id": SID, "folder_id": None, "last_event": {"a": [1]}}
    )
    assert ok.valid
    bad = validate_context(
        {"user_id": "u", "session_id": SID, "last_pedagogical_action": "shouted"}
    )
    assert bad.errors == [
        '$.last_pedagogical_action: expected "asked" | "evaluated" | "explained" | "remediated", got "shouted"'
    ]
    floats = validate_context(
        {"user_id": "u", "session_id": SID, "user_model_state": {"overall_progress": 1}}
    )
    assert floats.valid and floats.context is not None
    assert floats.context.user_model_state.overall_progress == 1.0
    boolean = validate_context({"user_id": "u", "session_id": SID, "latest_turn_no": True})
    assert boolean.errors == ["$.latest_turn_no: expected int, got bool"]


def test_store_validation_checks_the_size_limit(store: SessionStore) -> None:
    big = {"user_id": "u", "session_id": SID, "session_goal": "x" * (2 * 1024 * 1024)}
    result = store.validate_session_context(big)
    assert not result.valid and "max_context_bytes" in result.errors[0]
    # history is not part of the lean record, so it does not count against the limit
    bulky = {
        "user_id": "u",
        "session_id": SID,
        "history": [{"role": "user", "content": "x" * 2_000_000}],
    }
    assert store.validate_session_context(bulky).valid
