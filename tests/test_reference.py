"""The lean context the store writes validates against the reference field lists (via a pydantic
transcription written from the reference text, tests/reference_models.py)."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from pydantic import TypeAdapter

from redis_sessions import SessionStore, TutorContext
from redis_sessions.codec import lean_json
from redis_sessions.samples import chat_turn, realistic_context

from . import reference_models as ref


def stored_lean_json(store: SessionStore, user: str, sid: str) -> bytes:
    return lean_json(store.client.hgetall(store._core.keys.session(user, sid)))


@pytest.mark.parametrize("which", ["default", "realistic", "after-turns"])
def test_stored_lean_context_validates_against_reference(store: SessionStore, which: str) -> None:
    initial = None if which == "default" else realistic_context("alice")
    sid = store.create_session("alice", initial_context=initial)
    if which == "after-turns":
        for turn in range(1, 5):
            role, text, actions = chat_turn(turn)
            store.append_message(sid, "alice", role, text, whiteboard_actions=actions)
    blob = stored_lean_json(store, "alice", sid)
    parsed = ref.TutorContext.model_validate_json(blob)
    ours = store.get_session_context(sid, "alice")
    assert ours is not None
    # what Redis holds means exactly what the store hands out
    assert parsed == ref.TutorContext.model_validate_json(msgspec.json.encode(ours))
    assert parsed.history == [] and parsed.whiteboard_history == []
    if which != "default":
        assert parsed.lesson_plan is not None and len(parsed.user_model_state.concepts) == 30


def test_reference_and_our_models_agree_field_for_field() -> None:
    """Same field names, same defaults, same required set, at every level of the schema."""
    pairs = [
        (TutorContext, ref.TutorContext),
    ]
    import redis_sessions.models as ours

    for name in [
        "UserModelState",
        "UserConceptMastery",
        "AnalysisResult",
        "LessonPlan",
        "LessonSection",
        "LearningObjective",
        "QuizQuestion",
        "FocusObjective",
    ]:
        pairs.append((getattr(ours, name), getattr(ref, name)))
    for our_cls, ref_cls in pairs:
        our_fields = {f.name: f for f in msgspec.structs.fields(our_cls)}
        assert list(our_fields) == list(ref_cls.model_fields), our_cls
        for name, field in ref_cls.model_fields.items():
            mine = our_fields[name]
            assert mine.required == field.is_required(), (our_cls, name)
            if not field.is_required():
                default = (
                    mine.default
                    if mine.default_factory is msgspec.NODEFAULT
                    else mine.default_factory()
                )
                adapter = TypeAdapter(field.annotation)
                ours_as_ref = adapter.validate_json(msgspec.json.encode(default))
                reference = field.get_default(call_default_factory=True)
                assert adapter.dump_python(ours_as_ref, mode="json") == adapter.dump_python(
                    reference, mode="json"
                ), (our_cls, name)


def test_reference_data_reads_back_unchanged() -> None:
    """A record written by the original pydantic backend decodes into our models losslessly."""
    original = ref.TutorContext(
        user_id="u",
        session_id=uuid.uuid4(),
        user_model_state=ref.UserModelState(
            concepts={"a": ref.UserConceptMastery(alpha=3, beta=2)}
        ),
    )
    blob = original.model_dump_json().encode()
    ours = msgspec.json.decode(blob, type=TutorContext)
    assert ref.TutorContext.model_validate_json(msgspec.json.encode(ours)) == original
