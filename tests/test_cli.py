from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from redis_sessions import SessionStore, StoreConfig
from redis_sessions.cli import cli, redact, redis_repr
from redis_sessions.embedded import EmbeddedRedis, free_port
from redis_sessions.samples import chat_turn, realistic_context

from .conftest import data_keys


@pytest.fixture
def prefix() -> str:
    return f"cli{uuid.uuid4().hex[:8]}"


@pytest.fixture
def seeded(real_server: EmbeddedRedis, prefix: str) -> tuple[str, str]:
    with SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix)) as store:
        sid = store.create_session("ada", initial_context=realistic_context("ada"))
        for turn in range(1, 4):
            role, text, actions = chat_turn(turn)
            store.append_message(sid, "ada", role, text, whiteboard_actions=actions)
    return real_server.url, str(sid)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env or {"REDIS_URL": ""})
    return result.exit_code, result.stdout, result.stderr


def test_demo_on_a_given_server_cleans_up(real_server: EmbeddedRedis, prefix: str) -> None:
    code, out, err = run("--url", real_server.url, "--prefix", prefix, "demo")
    assert code == 0, err
    for step in (
        "== 1.",
        "== 4.",
        "MASTERED",
        "> HGETALL",
        ":msgs",
        ":wb",
        "delete_session -> True",
    ):
        assert step in out
    assert "embedded" not in err
    with SessionStore.from_url(real_server.url) as store:
        assert data_keys(store.client, prefix) == set()


def test_demo_without_server_starts_an_embedded_one() -> None:
    code, out, err = run("demo")
    assert code == 0, err
    assert "embedded throwaway redis-server" in err and "== 8." in out


def test_redis_url_from_environment(
    real_server: EmbeddedRedis, seeded: tuple[str, str], prefix: str
) -> None:
    code, out, err = run("--prefix", prefix, "list", "ada", env={"REDIS_URL": real_server.url})
    assert code == 0 and seeded[1] in out and "embedded" not in err


def test_list_show_keys_delete(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    code, out, _ = run("--url", url, "--prefix", prefix, "list", "ada")
    assert code == 0 and sid in out and "matrix multiplication" in out
    code, out, _ = run("--url", url, "--prefix", prefix, "show", "ada", sid)
    assert code == 0 and "version 1" in out and "mastery concept-00" in out
    code, out, _ = run("--url", url, "--prefix", prefix, "show", "--json", "ada", sid)
    data = json.loads(out)
    assert data["session_id"] == sid and data["context"]["latest_turn_no"] == 3
    code, out, _ = run("--url", url, "--prefix", prefix, "keys", "ada")
    assert code == 0
    assert f"> HGETALL {prefix}:{{u:ada}}:s:{sid}" in out and f"{prefix}:{{u:ada}}:idx" in out
    code, out, _ = run("--url", url, "--prefix", prefix, "delete", "ada", sid)
    assert code == 0 and "deleted" in out
    code, out, err = run("--url", url, "--prefix", prefix, "delete", "ada", sid)
    assert code == 1 and "no session" in err
    code, out, _ = run("--url", url, "--prefix", prefix, "keys", "ada")
    commands = [line for line in out.splitlines() if line.startswith(">")]
    assert commands and all(line.startswith(f"> GET {prefix}:{{u:ada}}:req:") for line in commands)
    assert "a write's reply, kept" in out  # only the replay keys of the writes are left


def test_show_missing_and_malformed_ids(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    code, _, err = run("--url", url, "--prefix", prefix, "show", "bob", sid)
    assert code == 1 and "no session" in err
    code, _, err = run("--url", url, "--prefix", prefix, "show", "ada", "not-a-uuid")
    assert code == 2 and "canonical UUID" in err


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://host:notaport", "nonsense"])
def test_bad_url_is_a_one_line_usage_error(url: str) -> None:
    code, out, err = run("--url", url, "list", "ada")
    assert code == 2 and "invalid Redis URL" in err and "Traceback" not in err + out


def test_unreachable_server_is_a_one_line_error() -> None:
    code, out, err = run("--url", f"redis://:s3cret@127.0.0.1:{free_port()}/0", "list", "ada")
    assert code == 1 and "cannot reach Redis" in err and "s3cret" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_bad_prefix_is_a_usage_error() -> None:
    code, _, err = run("--url", "redis://127.0.0.1:1/0", "--prefix", "a{b}", "list", "ada")
    assert code == 2 and "prefix" in err


def test_redis_repr_matches_redis_cli_escaping() -> None:
    assert redis_repr(b'a"b\\c\nd\x01\xc3\xbc') == '"a\\"b\\\\c\\nd\\x01\\xc3\\xbc"'
    assert redis_repr(b"x" * 200, width=5) == '"xxxxx"...'
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
