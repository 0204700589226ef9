"""The tutoring context, as msgspec Structs faithful to the original backend's pydantic models.

Field names, types and defaults follow those models' field lists one for one (the original models are
transcribed in ``tests/reference_models.py``), so the lean JSON the store writes still validates against
them. Every Struct uses ``omit_defaults`` so that defaults never reach the encoded bytes, and ignores
unknown fields so that records written by a newer schema still read (input is strict: ``validation``
refuses unknown keys in mappings and JSON).
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Annotated, Any, Final, Literal

import msgspec

from .exceptions import InvalidInput

__all__ = [
    "AnalysisResult",
    "FocusObjective",
    "LearningObjective",
    "LessonPlan",
    "LessonSection",
    "Outcome",
    "QuizQuestion",
    "TutorContext",
    "UserConceptMastery",
    "UserModelState",
]

InteractionMode = Literal["chat_only", "chat_and_whiteboard"]
PedagogicalAction = Literal["explained", "asked", "evaluated", "remediated"]
InteractionStyle = Literal["explanatory", "quiz_heavy", "socratic"]
PendingInteraction = Literal["checking_question", "summary_prompt"]
Outcome = Literal["correct", "incorrect", "unsure", "clarification_needed", "explained"]

OUTCOMES: Final[frozenset[str]] = frozenset(
    ("correct", "incorrect", "unsure", "clarification_needed", "explained")
)
#: The largest integer every layer holds exactly: Lua's doubles inside the scripts, JavaScript and
#: other JSON readers (Number.MAX_SAFE_INTEGER). Integer fields refuse anything beyond +-it.
MAX_SAFE_INT: Final = 2**53 - 1
SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
#: JSON has no NaN or infinity (msgspec would write them as null): float fields hold finite values.
#: The bounds refuse both (NaN fails every comparison) wherever msgspec decodes or converts.
MAX_FLOAT: Final = sys.float_info.max
FiniteFloat = Annotated[float, msgspec.Meta(ge=-MAX_FLOAT, le=MAX_FLOAT)]

MASTERY_THRESHOLD: Final = 0.8
CONFIDENCE_THRESHOLD: Final = 5


class _Model(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Base of the context models: keyword-only, defaults left out of the encoded bytes."""


class _Leaf(_Model, gc=False):
    """Base of the models whose every field holds typed data (text, numbers, lists of those, other
    leaves), with no free-form (``Any``) value: their instances are not tracked by Python's cycle
    collector. Decoding a context makes dozens of them (30 concepts, the lesson plan's sections and
    objectives), and tracking them cost 8% of a cache hit's decode (10.3 against 9.5 µs).

    Nothing valid can make a cycle through them: only a value of the wrong type put in a field (a
    concept into its own ``confusion_points``, say), which the store refuses to write, could; such a
    cycle would not be collected. TutorContext and UserModelState, whose free-form fields may hold
    anything an app puts there, are tracked as usual."""


class UserConceptMastery(_Leaf, kw_only=True):
    """A Beta(alpha, beta) belief about how well the learner knows one concept."""

    alpha: SafeInt = 1
    beta: SafeInt = 1
    last_interaction_outcome: str | None = None
    attempts: SafeInt = 0
    confusion_points: list[str] = []
    last_accessed: str | None = None  # ISO-8601 UTC timestamp

    @property
    def mastery(self) -> float:
        """Posterior mean ``alpha / (alpha + beta)``."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def confidence(self) -> int:
        """Evidence count ``alpha + beta``."""
        return self.alpha + self.beta

    @property
    def is_mastered(self) -> bool:
        """Mastered when mastery > 0.8 and confidence >= 5."""
        return self.mastery > MASTERY_THRESHOLD and self.confidence >= CONFIDENCE_THRESHOLD

    def apply_outcome(
        self, outcome: str, detail: str | None = None, *, now: dt.datetime | None = None
    ) -> None:
        """Update the belief for one outcome (the reference's update rule).

        correct: alpha += 1; incorrect: beta += 1 and ``detail`` joins confusion_points once;
        unsure / clarification_needed / explained: evidence unchanged. Every outcome counts an
        attempt and sets ``last_interaction_outcome`` and ``last_accessed`` (``now``, UTC).
        """
        if outcome not in OUTCOMES:
            raise InvalidInput(f"unknown outcome {outcome!r}; expected one of {sorted(OUTCOMES)}")
        moment = _utc(now)
        if outcome == "correct":
            self.alpha += 1
        elif outcome == "incorrect":
            self.beta += 1
            if detail and detail not in self.confusion_points:
                self.confusion_points.append(detail)
        self.attempts += 1
        self.last_interaction_outcome = outcome
        self.last_accessed = moment.isoformat()


class LearningObjective(_Leaf, kw_only=True):
    """One thing the learner should be able to do after a section, with its priority."""

    title: str
    description: str
    priority: SafeInt


class LessonSection(_Leaf, kw_only=True):
    """A section of the lesson plan: its objectives, concepts and estimated time."""

    title: str
    objectives: list[LearningObjective]
    estimated_duration_minutes: SafeInt
    concepts_to_cover: list[str]
    prerequisites: list[str] = []
    is_optional: bool


class LessonPlan(_Leaf, kw_only=True):
    """The plan the planner agent made for the session: its sections, in teaching order."""

    title: str
    description: str
    target_audience: str
    prerequisites: list[str]
    sections: list[LessonSection]
    total_estimated_duration_minutes: SafeInt
    additional_resources: list[str] = []


class QuizQuestion(_Leaf, kw_only=True):
    """A multiple-choice question put to the learner, with its answer and explanation."""

    question: str
    options: list[str]
    correct_answer_index: SafeInt
    explanation: str
    difficulty: str
    related_section: str


class FocusObjective(_Leaf, kw_only=True):
    """What the tutor works on right now: a topic, a goal and the concepts it touches."""

    topic: str
    learning_goal: str
    priority: SafeInt
    relevant_concepts: list[str] = []
    suggested_approach: str | None = None
    target_mastery: FiniteFloat
    initial_difficulty: str | None = None


class AnalysisResult(_Leaf, kw_only=True):
    """What the analysis of a folder's material found: text, key concepts and terms, files."""

    analysis_text: str
    key_concepts: list[str] = []
    key_terms: dict[str, str] = {}
    file_names: list[str] = []
    vector_store_id: str


class UserModelState(_Model, kw_only=True):
    """What the tutor believes about the learner: mastery per concept, pace, current topic and
    the interaction it is waiting for."""

    concepts: dict[str, UserConceptMastery] = {}
    overall_progress: FiniteFloat = 0.0
    current_topic: str | None = None
    current_topic_segment_index: SafeInt = 0
    learning_pace_factor: FiniteFloat = 1.0
    preferred_interaction_style: InteractionStyle | None = None
    session_summary_notes: list[str] = []
    current_section_objectives: list[LearningObjective] = []
    mastered_objectives_current_section: list[str] = []
    pending_interaction_type: PendingInteraction | None = None
    pending_interaction_details: dict[str, Any] | None = None

    def record_outcome(
        self,
        topic: str,
        outcome: str,
        detail: str | None = None,
        *,
        now: dt.datetime | None = None,
    ) -> UserConceptMastery:
        """Apply an outcome on ``topic`` (creating its entry at the defaults) and make it current.

        Returns the updated concept entry. Raises InvalidInput for an unknown outcome, changing nothing.
        """
        if not isinstance(topic, str) or not topic:
            raise InvalidInput("topic must be a non-empty str")
        concept = self.concepts.get(topic)
        fresh = concept is None
        if concept is None:
            concept = UserConceptMastery()
        concept.apply_outcome(outcome, detail, now=now)
        if fresh:
            self.concepts[topic] = concept
        self.current_topic = topic
        return concept


class TutorContext(_Model, kw_only=True):
    """The whole tutoring context of one session.

    ``history`` and ``whiteboard_history`` are bulky: the store never writes them into the session
    record. They are kept as per-session messages and whiteboard snapshots (``append_message``) and
    filled back on read with ``get_session_context(..., history=N)``.
    """

    state: str | None = None
    user_id: str
    session_id: uuid.UUID
    folder_id: uuid.UUID | None = None
    vector_store_id: str | None = None
    session_goal: str | None = None
    interaction_mode: InteractionMode = "chat_and_whiteboard"
    uploaded_file_paths: list[str] = []
    analysis_result: AnalysisResult | None = None
    knowledge_base_path: str | None = None
    lesson_plan: LessonPlan | None = None
    current_quiz_question: QuizQuestion | None = None
    current_focus_objective: FocusObjective | None = None
    user_model_state: UserModelState = msgspec.field(default_factory=UserModelState)
    last_interaction_summary: str | None = None
    current_teaching_topic: str | None = None
    whiteboard_history: list[list[dict[str, Any]]] = []
    history: list[dict[str, Any]] = []
    last_pedagogical_action: PedagogicalAction | None = None
    last_event: dict[str, Any] | None = None
    pending_interaction_type: str | None = None
    high_cost_calls: SafeInt = 0
    max_high_cost_calls: SafeInt = 3
    latest_turn_no: SafeInt = 0
    latest_snapshot_index: SafeInt = 0


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        raise InvalidInput("now must be a timezone-aware datetime")
    return now.astimezone(dt.timezone.utc)
