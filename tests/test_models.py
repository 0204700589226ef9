from __future__ import annotations

import datetime as dt
import gc
import uuid
import weakref
from typing import Any

import msgspec
import pytest

from redis_sessions import InvalidInput, TutorContext, UserConceptMastery, UserModelState

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def test_mastery_is_the_beta_mean_and_confidence_the_evidence() -> None:
    c = UserConceptMastery(alpha=9, beta=1)
    assert c.mastery == 0.9 and c.confidence == 10 and c.is_mastered
    assert not UserConceptMastery(alpha=4, beta=0 + 1).is_mastered  # 0.8 is not > 0.8
    assert not UserConceptMastery(alpha=4, beta=0).is_mastered  # confidence 4 < 5
    assert UserConceptMastery(alpha=5, beta=0).is_mastered


def test_update_rule() -> None:
    state = UserModelState()
    state.record_outcome("algebra", "correct", now=NOW)
    state.record_outcome("algebra", "incorrect", "sign errors", now=NOW)
    state.record_outcome("algebra", "incorrect", "sign errors", now=NOW)
    state.record_outcome("algebra", "unsure", now=NOW)
    state.record_outcome("algebra", "explained", now=NOW)
    c = state.concepts["algebra"]
    assert (c.alpha, c.beta, c.attempts) == (2, 3, 5)
    assert c.confusion_points == ["sign errors"]
    assert c.last_interaction_outcome == "explained" and c.last_accessed == NOW.isoformat()
    state.record_outcome("geometry", "clarification_needed", now=NOW)
    assert state.current_topic == "geometry"
    assert (state.concepts["geometry"].alpha, state.concepts["geometry"].attempts) == (1, 1)


def test_reaching_mastery() -> None:
    state = UserModelState()
    for _ in range(3):
        assert not state.record_outcome("x", "correct", now=NOW).is_mastered
    assert state.record_outcome("x", "correct", now=NOW).is_mastered  # 5/6 > 0.8, confidence 6


def test_unknown_outcome_changes_nothing() -> None:
    state = UserModelState()
    with pytest.raises(InvalidInput):
        state.record_outcome("algebra", "great")
    assert state.concepts == {} and state.current_topic is None
    with pytest.raises(InvalidInput):
        state.record_outcome("algebra", "correct", now=dt.datetime(2026, 1, 1))  # naive


def test_defaults_stay_out_of_the_encoded_bytes() -> None:
    sid = uuid.uuid4()
    ctx = TutorContext(user_id="u", session_id=sid)
    assert msgspec.json.decode(msgspec.json.encode(ctx)) == {
        "user_id": "u",
        "session_id": str(sid),
        "user_model_state": {},
    }


def test_default_lists_are_not_shared() -> None:
    a, b = UserModelState(), UserModelState()
    a.session_summary_notes.append("x")
    assert b.session_summary_notes == []


def test_only_models_without_free_form_fields_escape_the_cycle_collector() -> None:
    """The leaf models (typed data only) are not tracked by the cycle collector, which made 8% of
    a cache hit's decode; the two with free-form fields are, so a cycle an app makes through
    those (a value that points back at its context) is still freed."""
    from redis_sessions.samples import realistic_context

    ctx = msgspec.msgpack.decode(msgspec.msgpack.encode(realistic_context("u")), type=TutorContext)
    assert ctx.lesson_plan is not None and ctx.current_quiz_question is not None
    leaves = [
        *ctx.user_model_state.concepts.values(),
        ctx.lesson_plan,
        *ctx.lesson_plan.sections,
        *(o for s in ctx.lesson_plan.sections for o in s.objectives),
        ctx.current_quiz_question,
    ]
    assert len(leaves) > 30 and not any(gc.is_tracked(leaf) for leaf in leaves)
    assert gc.is_tracked(ctx) and gc.is_tracked(ctx.user_model_state)

    class Marker:
        pass

    marker = Marker()
    gone = weakref.ref(marker)
    ctx.user_model_state.pending_interaction_details = {"context": ctx, "marker": marker}
    del ctx, leaves, marker
    gc.collect()
    assert gone() is None


def test_listing_rows_escape_the_cycle_collector_and_sessions_do_not() -> None:
    """A SessionInfo (frozen; ids, times, numbers, text) can be in no cycle and is not tracked; a
    Session holds a context, whose free-form fields may point back at it, and is."""
    from redis_sessions import Session, SessionInfo

    now = dt.datetime.now(dt.timezone.utc)
    meta: dict[str, Any] = {
        "session_id": uuid.uuid4(),
        "user_id": "u",
        "folder_id": None,
        "created_at": now,
        "updated_at": now,
        "ended_at": None,
        "version": 1,
    }
    assert not gc.is_tracked(SessionInfo(**meta, session_goal="derivatives"))
    context = TutorContext(user_id="u", session_id=meta["session_id"])
    assert gc.is_tracked(Session(**meta, context=context))
