"""A small tutoring API on FastAPI with AsyncSessionStore.

    REDIS_URL=redis://localhost:6379/0 uvicorn examples.fastapi_app:app

The user comes from the ``X-User-Id`` header (stand-in for your auth). Store errors map to HTTP:
InvalidInput 422, SessionNotFound 404, VersionConflict 409, StoreUnavailable 503.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from redis_sessions import (
    AsyncSessionStore,
    InvalidInput,
    SessionNotFound,
    SessionStoreError,
    StoreUnavailable,
    VersionConflict,
)


class NewSession(BaseModel):
    folder_id: str | None = None
    goal: str | None = None


class NewMessage(BaseModel):
    role: str
    text: str
    whiteboard_actions: list[dict[str, Any]] | None = None


class QuizOutcome(BaseModel):
    topic: str
    outcome: str
    detail: str | None = None


def create_app(make_store: Callable[[], AsyncSessionStore]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = make_store()
        yield
        await app.state.store.aclose()

    app = FastAPI(title="tutoring sessions", lifespan=lifespan)
    statuses = {
        InvalidInput: 422,
        SessionNotFound: 404,
        VersionConflict: 409,
        StoreUnavailable: 503,
    }

    @app.exception_handler(SessionStoreError)
    async def store_error(request: Request, exc: SessionStoreError) -> JSONResponse:
        status = next((code for kind, code in statuses.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    def store_of(request: Request) -> AsyncSessionStore:
        store: AsyncSessionStore = request.app.state.store
        return store

    @app.post("/sessions", status_code=201)
    async def create(
        body: NewSession, request: Request, x_user_id: str = Header()
    ) -> dict[str, str]:
        initial = {"session_goal": body.goal} if body.goal else None
        sid = await store_of(request).create_session(x_user_id, body.folder_id, initial)
        return {"session_id": str(sid)}

    @app.get("/sessions")
    async def list_sessions(
        request: Request, x_user_id: str = Header(), limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        rows = await store_of(request).list_user_sessions(x_user_id, limit, offset)
        return [msgspec.to_builtins(row) for row in rows]

    @app.get("/sessions/{session_id}")
    async def get_context(
        session_id: str, request: Request, x_user_id: str = Header(), history: int = 0
    ) -> dict[str, Any]:
        ctx = await store_of(request).get_session_context(session_id, x_user_id, history=history)
        if ctx is None:
            raise HTTPException(404, "no such session")
        data: dict[str, Any] = msgspec.to_builtins(ctx)
        return data

    @app.post("/sessions/{session_id}/messages", status_code=201)
    async def append(
        session_id: str, body: NewMessage, request: Request, x_user_id: str = Header()
    ) -> dict[str, int]:
        turn = await store_of(request).append_message(
            session_id, x_user_id, body.role, body.text, whiteboard_actions=body.whiteboard_actions
        )
        return {"turn_no": turn}

    @app.post("/sessions/{session_id}/outcomes")
    async def record_outcome(
        session_id: str, body: QuizOutcome, request: Request, x_user_id: str = Header()
    ) -> dict[str, Any]:
        """Read, apply the mastery rule, write with expected_version; retry if someone else wrote."""
        store = store_of(request)
        for _ in range(5):
            session = await store.get_session(session_id, x_user_id)
            if session is None:
                raise HTTPException(404, "no such session")
            concept = session.context.user_model_state.record_outcome(
                body.topic, body.outcome, body.detail
            )
            try:
                await store.update_session_context(
                    session_id, x_user_id, session.context, expected_version=session.version
                )
            except VersionConflict:
                continue
            return {
                "mastery": concept.mastery,
                "confidence": concept.confidence,
                "mastered": concept.is_mastered,
            }
        raise HTTPException(409, "too much contention on this session, try again")

    @app.delete("/sessions/{session_id}", status_code=204)
    async def delete(session_id: str, request: Request, x_user_id: str = Header()) -> Response:
        if not await store_of(request).delete_session(session_id, x_user_id):
            raise HTTPException(404, "no such session")
        return Response(status_code=204)

    return app


def _default_store() -> AsyncSessionStore:
    return AsyncSessionStore.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))


app = create_app(_default_store)
