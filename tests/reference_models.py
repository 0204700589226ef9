"""The original backend's tutoring-context models (pydantic v2), transcribed here; used only by tests.

They are written from the original models' field lists (names, types, defaults), independently of
redis_sessions.models, so that a test can prove the lean JSON the store writes still validates against
the original field lists.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class UserConceptMastery(_Strict):
    alpha: int = 1
    beta: int = 1
    last_interaction_outcome: str | None = None
    attempts: int = 0
    confusion_points: list[str] = []
    last_accessed: str | None = None


class LearningObjective(_Strict):
    title: str
    description: str
    priority: int


class LessonSection(_Strict):
    title: str
    objectives: list[LearningObjective]
    estimated_duration_minutes: int
    concepts_to_cover: list[str]
    prerequisites: list[str] = []
    is_optional: bool


class LessonPlan(_Strict):
    title: str
    description: str
    target_audience: str
    prerequisites: list[str]
    sections: list[LessonSection]
    total_estimated_duration_minutes: int
    additional_resources: list[str] = []


class QuizQuestion(_Strict):
    question: str
    options: list[str]
    correct_answer_index: int
    explanation: str
    difficulty: str
    related_section: str


class FocusObjective(_Strict):
    topic: str
    learning_goal: str
    priority: int
    relevant_concepts: list[str] = []
    suggested_approach: str | None = None
    target_mastery: float
    initial_difficulty: str | None = None


class AnalysisResult(_Strict):
    analysis_text: str
    key_concepts: list[str] = []
    key_terms: dict[str, str] = {}
    file_names: list[str] = []
    vector_store_id: str


class UserModelState(_Strict):
    concepts: dict[str, UserConceptMastery] = {}
    overall_progress: float = 0.0
    current_topic: str | None = None
    current_topic_segment_index: int = 0
    learning_pace_factor: float = 1.0
    preferred_interaction_style: Literal["explanatory", "quiz_heavy", "socratic"] | None = None
    session_summary_notes: list[str] = []
    current_section_objectives: list[LearningObjective] = []
    mastered_objectives_current_section: list[str] = []
    pending_interaction_type: Literal["checking_question", "summary_prompt"] | None = None
    pending_interaction_details: dict | None = None


class TutorContext(_Strict):
    state: str | None = None
    user_id: str
    session_id: UUID
    folder_id: UUID | None = None
    vector_store_id: str | None = None
    session_goal: str | None = None
    interaction_mode: Literal["chat_only", "chat_and_whiteboard"] = "chat_and_whiteboard"
    uploaded_file_paths: list[str] = []
    analysis_result: AnalysisResult | None = None
    knowledge_base_path: str | None = None
    lesson_plan: LessonPlan | None = None
    current_quiz_question: QuizQuestion | None = None
    current_focus_objective: FocusObjective | None = None
    user_model_state: UserModelState = UserModelState()
    last_interaction_summary: str | None = None
    current_teaching_topic: str | None = None
    whiteboard_history: list[list[dict]] = []
    history: list[dict] = []
    last_pedagogical_action: Literal["explained", "asked", "evaluated", "remediated"] | None = None
    last_event: dict | None = None
    pending_interaction_type: str | None = None
    high_cost_calls: int = 0
    max_high_cost_calls: int = 3
    latest_turn_no: int = 0
    latest_snapshot_index: int = 0
