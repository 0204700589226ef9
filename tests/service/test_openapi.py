"""The app's own OpenAPI document: what it describes, and schemathesis run against it (bounded
examples, a valid token): no server error, no response outside the schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("litestar", reason="needs the http extra: pip install '.[http]'")
schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis (dev extra) is not installed"
)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from redis_sessions import AsyncSessionStore, StoreConfig  # noqa: E402
from redis_sessions.embedded import EmbeddedRedis  # noqa: E402
from redis_sessions.http import AuthConfig, create_app  # noqa: E402

from .support import ADMIN_CLAIM, SECRET, Api, bearer, token  # noqa: E402

PROTECTED_STATUSES = {"401", "503"}
DOCUMENTED = {"401", "403", "404", "409", "412", "413", "422", "503"}


def test_the_document_describes_every_route_and_error(api: Api) -> None:
    reply = api.client.get("/openapi.json")
    assert reply.status_code == 200
    doc = reply.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    expected = {
        ("post", "/sessions"),
        ("get", "/sessions"),
        ("get", "/sessions/{session_id}"),
        ("put", "/sessions/{session_id}"),
        ("patch", "/sessions/{session_id}"),
        ("delete", "/sessions/{session_id}"),
        ("post", "/sessions/{session_id}/end"),
        ("get", "/sessions/{session_id}/messages"),
        ("post", "/sessions/{session_id}/messages"),
        ("get", "/sessions/{session_id}/whiteboard_state_at_turn"),
        ("get", "/folders/{folder_id}"),
        ("put", "/folders/{folder_id}"),
        ("post", "/deleteSession"),
        ("get", "/listUserSessions"),
        ("post", "/cleanupExpiredSessions"),
        ("get", "/getFolderData"),
        ("get", "/validateSessionContext"),
        ("post", "/validateSessionContext"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    }
    found = {(method, path) for path, item in paths.items() for method in item}
    assert expected <= found, expected - found
    seen: set[str] = set()
    for path, item in paths.items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            seen |= statuses
            if path in ("/healthz", "/readyz"):
                assert not operation.get("security"), path
                continue
            assert operation["security"] == [{"BearerToken": []}], (method, path)
            assert statuses >= PROTECTED_STATUSES, (method, path, statuses)
            problem = operation["responses"]["401"]["content"]
            assert "application/problem+json" in problem
    assert seen >= DOCUMENTED
    assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert paths["/sessions/{session_id}"]["put"]["responses"].keys() >= {"412", "422", "409"}
    assert api.client.get("/docs").status_code == 200


HEADERS = bearer(token("schemathesis-user", exp_in=3600, role="service_role"))
EXAMPLES = 15  # per operation and mode: about 20 s in all


@pytest.fixture(scope="module")
def service_schema() -> Iterator[Any]:
    """The app on its own redis-server, loaded by schemathesis from its /openapi.json."""
    from schemathesis.config import SchemathesisConfig
    from schemathesis.python import asgi

    server = EmbeddedRedis().start()
    config = StoreConfig(key_prefix=f"st{uuid.uuid4().hex[:8]}")
    app = create_app(
        lambda: AsyncSessionStore.from_url(server.url, config=config),
        AuthConfig(secret=SECRET, admin_claim=ADMIN_CLAIM),
    )
    try:
        # a body over the size limit is refused with 413, before anything decodes it
        rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"]
        checks = SchemathesisConfig.from_dict(
            {"checks": {"negative_data_rejection": {"expected-statuses": rejected}}}
        )
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=checks)
    finally:
        asgi.shutdown_lifespans()  # closes the store while its Redis is still up
        server.stop()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    service_schema: Any, mode: str
) -> None:
    """Every operation, EXAMPLES generated requests each (schemathesis' pytest plugin is not
    used: it does not run on pytest 9), schemathesis' default checks on each response but
    ``positive_data_acceptance``: a context is described as a JSON object, and the store
    refuses what the schema cannot say (keys the model does not know, at any depth; a
    ``user_id`` that is not the caller), with 422 and the paths."""
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    failures: list[str] = []
    operations = 0
    for result in service_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=HEADERS, excluded_checks=[positive_data_acceptance])

        try:
            run()
        except Unsatisfiable:  # negative mode, an operation that takes nothing to break
            assert mode == "negative", operation.label
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
