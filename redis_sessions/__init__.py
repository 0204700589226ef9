"""redis-sessions: a Redis-native session store for AI tutoring backends."""

from __future__ import annotations

from ._corebase import StoreStats
from .aio import AsyncSessionStore
from .config import StoreConfig
from .exceptions import (
    BackendError,
    CorruptData,
    InvalidInput,
    SessionNotFound,
    SessionStoreError,
    StoreBusy,
    StoreClosed,
    StoreUnavailable,
    VersionConflict,
    WrongEventLoop,
)
from .models import (
    AnalysisResult,
    FocusObjective,
    LearningObjective,
    LessonPlan,
    LessonSection,
    QuizQuestion,
    TutorContext,
    UserConceptMastery,
    UserModelState,
)
from .records import Folder, Message, Session, SessionInfo, ValidationResult
from .restore import FolderRestore, SessionRestore
from .store import SessionStore

__version__ = "0.1.0"

__all__ = [
    "AnalysisResult",
    "AsyncSessionStore",
    "BackendError",
    "CorruptData",
    "FocusObjective",
    "Folder",
    "FolderRestore",
    "InvalidInput",
    "LearningObjective",
    "LessonPlan",
    "LessonSection",
    "Message",
    "QuizQuestion",
    "Session",
    "SessionInfo",
    "SessionNotFound",
    "SessionRestore",
    "SessionStore",
    "SessionStoreError",
    "StoreBusy",
    "StoreClosed",
    "StoreConfig",
    "StoreStats",
    "StoreUnavailable",
    "TutorContext",
    "UserConceptMastery",
    "UserModelState",
    "ValidationResult",
    "VersionConflict",
    "WrongEventLoop",
]
