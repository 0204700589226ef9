"""Documentation that runs, and that stands on its own.

Every ```python block of README.md is run by Sybil, in order and in one namespace, as a reader would
paste them one after the other into one interpreter: a snippet that does not work fails the suite.
The snippets say ``redis://localhost:6379/0``; the test runs them on the test session's own
redis-server instead (each real one, see conftest.py), by replacing that one URL in the source just
before it is compiled. What a reader sees is what runs, but for the address, and nothing else can
reach another server: a block with any other address (or a Redis client built by hand) is refused
before it runs, and while README code runs every TCP connect to a port other than the private
server's is refused too. The README's keys go to a database of that server no other test uses
(its snippets use the default key prefix and run a sweep), which is emptied afterwards.

The FastAPI block only defines an app; after the blocks have run, the test serves requests to it
with FastAPI's TestClient, on the same private server; and a scrape to each of the metrics blocks'
mounts (FastAPI's and Litestar's), with each framework's test client.

A block is left out only by a Sybil directive in the README source, visible to anyone editing it,
with its reason: ``<!-- skip: next "why this block is not run" -->``. ```console blocks are not run
here (CI runs make lint, make test and make demo itself).

Sybil parses the README and evaluates each block; its pytest plugin is not used, since README.md lies
outside testpaths and the blocks must run once per real server (the parametrized ``real_server``
fixture), which a plugin item cannot be.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import SkipTest

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from litestar import Litestar
from litestar.testing import TestClient as LitestarClient
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from redis_sessions import SessionStore
from redis_sessions.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_URL = "redis://localhost:6379/0"  # the one address the snippets may use
README_DB = 9  # the database of the private server the README's snippets write to
# a create_session counted by the README's metrics block (1 or more: other tests count too)
CREATED_SAMPLE = re.compile(
    r'^redis_sessions_operations_total\{operation="create_session",outcome="ok"\} [1-9]',
    re.MULTILINE,
)


BLOCKS_MODULE = "readme_blocks"


class BlocksModule:
    """sys.modules' entry for the README's blocks (see test_readme_python_blocks_run_in_order)."""


class ConnectGuard:
    """An audit hook: while ``port`` is set, every TCP connect to another port is refused."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.refused: list[object] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect" or self.port is None:
            return
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2 and address[1] != self.port:
            self.refused.append(address)
            raise ConnectionRefusedError(f"README code may connect only to port {self.port}")

    @contextlib.contextmanager
    def only(self, port: int) -> Iterator[list[object]]:
        self.port, self.refused = port, []
        try:
            yield self.refused
        finally:
            self.port = None


connect_guard = ConnectGuard()
sys.addaudithook(connect_guard)  # audit hooks cannot be removed: inert while port is None


# A client built in a block would connect where the test cannot redirect it (redis.Redis() is
# localhost:6379): blocks get their server through README_URL only.
CLIENT_CLASSES = frozenset({"Redis", "StrictRedis", "RedisCluster"})
# String literals, and the literal parts of an f-string (tokens of their own from Python 3.12).
TEXT_TOKENS = frozenset({tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)})


def connection_problems(source: str) -> list[str]:
    """Why a block could reach a server other than the one the test gives it (empty: it cannot)."""
    problems = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in TEXT_TOKENS:
            try:
                text = str(ast.literal_eval(token.string))
            except (ValueError, SyntaxError):  # an f-string or a part of one: its text as written
                text = token.string
            if text != README_URL and re.search(r"://|localhost|6379", text):
                problems.append(f"line {token.start[0]}: {token.string} (use {README_URL!r})")
        elif token.type == tokenize.NAME and token.string in CLIENT_CLASSES:
            problems.append(
                f"line {token.start[0]}: a {token.string} client built in the block "
                f"(use SessionStore.from_url({README_URL!r}))"
            )
    return problems


class OnPrivateServer:
    """Sybil evaluator: runs a python block with README_URL replaced by ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, example: Example) -> None:
        source = str(example.parsed)
        problems = connection_problems(source)
        assert not problems, f"README.md line {example.line} could reach another server: {problems}"
        padding = "\n" * (example.line + example.parsed.line_offset)  # README.md's line numbers
        # dont_inherit: not this module's `from __future__ import annotations` (a reader's
        # interpreter evaluates annotations, and Litestar resolves a handler's by them)
        code = compile(
            padding + source.replace(README_URL, self.url), example.path, "exec", dont_inherit=True
        )
        exec(code, example.namespace)


def readme_examples(url: str = README_URL) -> list[Example]:
    sybil = Sybil(parsers=[CodeBlockParser("python", OnPrivateServer(url)), SkipParser()])
    return list(sybil.parse(README))


def python_blocks(examples: list[Example]) -> list[Example]:
    return [e for e in examples if isinstance(e.region.evaluator, OnPrivateServer)]


def test_every_python_block_is_run_or_skipped_with_a_reason() -> None:
    examples = readme_examples()
    fences = re.findall(r"^```python\s*$", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(python_blocks(examples)) == len(fences) >= 4
    for example in examples:
        if not isinstance(example.region.evaluator, OnPrivateServer):
            action, reason = example.parsed
            assert action == "end" or (reason and reason.strip()), (
                f"README.md line {example.line}: a skip directive needs its reason, "
                '<!-- skip: next "why" -->'
            )


def test_python_blocks_connect_only_through_the_readme_url() -> None:
    for example in python_blocks(readme_examples()):
        assert connection_problems(str(example.parsed)) == [], f"README.md line {example.line}"


def test_readme_python_blocks_run_in_order(real_server: EmbeddedRedis) -> None:
    url = f"redis://127.0.0.1:{real_server.port}/{README_DB}"
    examples = readme_examples(url)
    namespace = examples[0].namespace
    # A reader's blocks run in __main__, a module: what they define is found through sys.modules
    # (Litestar resolves a handler's annotations so). Here a stand-in whose attributes are the
    # blocks' namespace itself, live.
    main = BlocksModule()
    main.__dict__ = namespace
    namespace["__name__"] = BLOCKS_MODULE
    sys.modules[BLOCKS_MODULE] = main  # type: ignore[assignment]
    with connect_guard.only(real_server.port) as refused:
        try:
            for example in examples:
                try:
                    example.evaluate()
                except SkipTest:  # skipped by a directive in the README, with its reason
                    continue

            # The FastAPI block defines an app: serve it a request for a session that exists, and
            # one from another user, to whom it does not.
            def litestar_app() -> Litestar:
                found = namespace.get("litestar_app")
                assert isinstance(found, Litestar), "the Litestar block no longer defines it"
                return found

            app = namespace.get("app")
            assert isinstance(app, FastAPI), "the README's FastAPI block no longer defines `app`"
            with SessionStore.from_url(url) as store:
                sid = store.create_session("ada", initial_context={"session_goal": "Matrices"})
                store.append_message(sid, "ada", "user", "How do I multiply matrices?")
            with TestClient(app) as http:
                got = http.get(f"/sessions/{sid}", params={"user_id": "ada"})
                assert got.status_code == 200, got.text
                assert got.json()["session_goal"] == "Matrices"
                history = [m["content"] for m in got.json()["history"]]
                assert history == ["How do I multiply matrices?"]
                assert http.get(f"/sessions/{sid}", params={"user_id": "bob"}).status_code == 404
            # The metrics blocks: FastAPI's and Litestar's mounts serve a scrape of the default
            # registry, which counts the FastAPI block's create_session (and the one above is not
            # observed: counted by neither)
            for client in (TestClient(namespace["metrics_api"]), LitestarClient(litestar_app())):
                with client as scraper:
                    scraped = scraper.get("/metrics/")
                    assert scraped.status_code == 200, scraped.text
                    assert CREATED_SAMPLE.search(scraped.text), scraped.text[:2000]
        finally:
            for value in list(namespace.values()):
                if isinstance(value, SessionStore):
                    value.close()
            with redis.Redis.from_url(url) as admin:
                admin.flushdb()
            del sys.modules[BLOCKS_MODULE]
    assert refused == [], "README code tried to connect to another server"


def test_no_reference_outside_the_repository() -> None:
    """No tracked file points at files outside the repository (a reader has only the repository)."""
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist): nothing tracked to check")
    # Spelled in pieces so that this file, tracked too, does not match itself.
    outside = ["../" + "shared", "shared" + "/reference"]
    found = []
    for name in tracked.decode().split("\0"):
        path = ROOT / name
        if not name or path.is_symlink() or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            found += [f"{name}:{lineno}: {needle}" for needle in outside if needle in line]
    assert found == []
