"""Realistic tutoring data for the demo, the benchmarks and the tests (pure, deterministic)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from .models import (
    FocusObjective,
    LearningObjective,
    LessonPlan,
    LessonSection,
    QuizQuestion,
    TutorContext,
    UserConceptMastery,
    UserModelState,
)

KNOWLEDGE_BASE = """Linear algebra study pack.

KEY CONCEPTS:
- Vectors
- Matrices
- Linear transformations
- Eigenvalues
CONCEPT DETAILS:
Vectors are arrows with magnitude and direction; matrices act on them.

KEY TERMS GLOSSARY:
Scalar: a single number
Span: all linear combinations of a set of vectors
Basis: a linearly independent spanning set

FILES:
chapter1.pdf
chapter2.pdf
FILE METADATA:
chapter1.pdf: 12 pages
"""

_EPOCH = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def lesson_plan(sections: int = 4) -> LessonPlan:
    """A realistic lesson plan (4 sections) for the demo, the tests and the benchmarks."""
    return LessonPlan(
        title="Linear algebra from scratch",
        description="Vectors, matrices and the maps between them, built up by worked examples.",
        target_audience="first-year undergraduates",
        prerequisites=["high-school algebra", "coordinate geometry"],
        sections=[
            LessonSection(
                title=f"Section {i + 1}: {topic}",
                objectives=[
                    LearningObjective(
                        title=f"Understand {topic.lower()}",
                        description=f"Explain and apply {topic.lower()} in two dimensions.",
                        priority=j + 1,
                    )
                    for j in range(3)
                ],
                estimated_duration_minutes=25,
                concepts_to_cover=[f"{topic} concept {k}" for k in range(4)],
                prerequisites=[] if i == 0 else [f"Section {i}"],
                is_optional=i == sections - 1,
            )
            for i, topic in enumerate(
                ["Vectors", "Matrices", "Transformations", "Eigenvalues", "Determinants", "Bases"][
                    :sections
                ]
            )
        ],
        total_estimated_duration_minutes=25 * sections,
        additional_resources=["https://example.org/linear-algebra-notes"],
    )


def realistic_context(
    user_id: str = "learner-1", session_id: str | uuid.UUID | None = None, *, concepts: int = 30
) -> TutorContext:
    """A mid-lesson context: a lesson plan with sections, ``concepts`` concepts, a quiz question."""
    state = UserModelState(
        concepts={
            f"concept-{i:02d}": UserConceptMastery(
                alpha=1 + i % 7,
                beta=1 + i % 3,
                last_interaction_outcome="correct" if i % 2 else "incorrect",
                attempts=i % 9,
                confusion_points=[f"mixes up concept-{i:02d} with its inverse"]
                if i % 4 == 0
                else [],
                last_accessed=(_EPOCH + dt.timedelta(minutes=i)).isoformat(),
            )
            for i in range(concepts)
        },
        overall_progress=0.42,
        current_topic="concept-07",
        current_topic_segment_index=2,
        preferred_interaction_style="socratic",
        session_summary_notes=["Learner prefers visual explanations."],
        current_section_objectives=[
            LearningObjective(title="Multiply matrices", description="By hand, 2x2", priority=1)
        ],
    )
    sid = uuid.UUID(str(session_id)) if session_id is not None else uuid.uuid4()
    return TutorContext(
        state="quizzing",
        user_id=user_id,
        session_id=sid,
        session_goal="Understand matrix multiplication well enough to pass the midterm",
        uploaded_file_paths=["uploads/chapter1.pdf"],
        lesson_plan=lesson_plan(),
        current_quiz_question=QuizQuestion(
            question="What is the product of [[1,2],[3,4]] and the identity matrix?",
            options=["[[1,2],[3,4]]", "[[1,0],[0,1]]", "[[2,2],[3,5]]", "It is undefined"],
            correct_answer_index=0,
            explanation="Multiplying by the identity leaves a matrix unchanged.",
            difficulty="easy",
            related_section="Section 2: Matrices",
        ),
        current_focus_objective=FocusObjective(
            topic="Matrices",
            learning_goal="Multiply 2x2 matrices fluently",
            priority=1,
            relevant_concepts=["concept-07", "concept-08"],
            target_mastery=0.85,
        ),
        user_model_state=state,
        last_interaction_summary="Learner answered two matrix questions, one correctly.",
        current_teaching_topic="Matrices",
        last_pedagogical_action="asked",
        last_event={"type": "quiz_answer", "index": 2},
        high_cost_calls=1,
    )


def whiteboard_batch(turn: int) -> list[dict[str, Any]]:
    """One batch of whiteboard actions, as an assistant turn draws it."""
    return [
        {"type": "CLEAR_BOARD"}
        if turn % 10 == 0
        else {"type": "HIGHLIGHT_OBJECT", "id": f"m{turn}"},
        {
            "type": "ADD_OBJECTS",
            "objects": [
                {
                    "id": f"m{turn}-{k}",
                    "kind": "text",
                    "text": f"step {k}",
                    "xPct": 10 + k * 5,
                    "yPct": 20,
                    "widthPct": 30,
                    "heightPct": 8,
                }
                for k in range(3)
            ],
        },
    ]


def chat_turn(turn: int) -> tuple[str, str, list[dict[str, Any]] | None]:
    """(role, text, whiteboard actions) of turn ``turn``: users talk, the assistant calls tools."""
    if turn % 2:
        return (
            "user",
            f"I think the answer to question {turn} is the first option, because...",
            None,
        )
    call = {
        "name": "draw_and_explain",
        "args": {
            "topic": "Matrices",
            "step": turn,
            "explanation": "Row times column, summed. " * 4,
        },
    }
    return "assistant", json.dumps(call), whiteboard_batch(turn)
