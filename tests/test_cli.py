from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_sessions import SessionStore, StoreConfig
from redis_sessions._cli_common import CLI_NO_ANSWER_BUDGET, ENV_URL
from redis_sessions.cli import cli, redact, redis_repr
from redis_sessions.embedded import EmbeddedRedis, free_port
from redis_sessions.samples import chat_turn, realistic_context

from .conftest import data_keys, delete_prefix
from .faultproxy import fault_proxy

ROOT = Path(__file__).resolve().parent.parent
SID = "6f1c2d3e-0000-4000-8000-000000000001"
#: every command that needs a server, with arguments that make it talk to one
DATA_COMMANDS: dict[str, list[str]] = {
    "list": ["list", "ada"],
    "show": ["show", "ada", SID],
    "keys": ["keys", "ada"],
    "delete": ["delete", "ada", SID],
    "check": ["check"],
    "sweep": ["sweep", "--dry-run"],
    "worker": ["worker", "--burst", "--queue", "q-cli-test"],
}
#: and ``demo``, which needs one only when it is given one
ALL_COMMANDS = {**DATA_COMMANDS, "demo": ["demo"]}


@pytest.fixture
def prefix() -> str:
    return f"cli{uuid.uuid4().hex[:8]}"


@pytest.fixture
def seeded(real_server: EmbeddedRedis, prefix: str) -> Iterator[tuple[str, str]]:
    with SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix)) as store:
        sid = store.create_session("ada", initial_context=realistic_context("ada"))
        for turn in range(1, 4):
            role, text, actions = chat_turn(turn)
            store.append_message(sid, "ada", role, text, whiteboard_actions=actions)
        yield real_server.url, str(sid)
        delete_prefix(store.client, prefix)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env or {ENV_URL: ""})
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
    assert re.search(r"cache: [1-9]\d* hits", out), out  # the demo shows the cache at work


def test_demo_keep_leaves_its_data_and_the_printed_commands_show_it(
    real_server: EmbeddedRedis, prefix: str
) -> None:
    code, out, err = run("demo", "--keep", "--url", real_server.url, "--prefix", prefix)
    assert code == 0, err
    assert "delete_session" not in out and "Kept:" in out
    commands = [line.strip() for line in out.splitlines() if line.strip().startswith("redis-cli")]
    assert len(commands) >= 5
    with SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix)) as store:
        kept = data_keys(store.client, prefix)
        records = [k for k in kept if b":s:" in k and not k.endswith((b":msgs", b":wb"))]
        assert len(records) == 2 and any(k.endswith(b":msgs") for k in kept)
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            pytest.skip("no redis-cli on PATH to run the printed commands with")
        hgetall = next(c for c in commands if "HGETALL" in c and ":msgs" not in c)
        shown = subprocess.run(
            ["sh", "-c", hgetall.replace("redis-cli", redis_cli, 1)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "session_goal" in shown and "Multiply matrices fluently" in shown
        store.client.delete(*store.client.scan_iter(match=f"{prefix}:*"))


def test_demo_keep_needs_a_server() -> None:
    code, _, err = run("demo", "--keep")
    assert code == 2 and "--url" in err and ENV_URL in err


@pytest.mark.parametrize("name", list(DATA_COMMANDS))
def test_data_commands_need_a_server_and_never_start_one(name: str) -> None:
    code, out, err = run(*DATA_COMMANDS[name])
    assert code == 2
    assert "--url" in err and ENV_URL in err and "Traceback" not in err + out
    assert "embedded" not in err + out and "consistent" not in out


def test_url_from_the_environment(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    code, out, err = run("list", "ada", "--prefix", prefix, env={ENV_URL: url})
    assert code == 0 and sid in out and "embedded" not in err


def test_server_options_go_before_or_after_the_subcommand(
    seeded: tuple[str, str], prefix: str
) -> None:
    url, sid = seeded
    before = run("--url", url, "--prefix", prefix, "list", "ada")
    after = run("list", "ada", "--url", url, "--prefix", prefix)
    mixed = run("--url", "redis://127.0.0.1:1/0", "list", "--url", url, "ada", "--prefix", prefix)
    assert before[0] == after[0] == mixed[0] == 0
    assert sid in before[1] and before[1] == after[1] == mixed[1]


def test_list_show_keys_delete(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    base = ["--url", url, "--prefix", prefix]
    code, out, _ = run("list", "ada", *base)
    header, row = out.splitlines()
    assert header.split() == [
        "SESSION",
        "VERSION",
        "LAST",
        "ACTIVE",
        "(UTC)",
        "ENDED",
        "(UTC)",
        "GOAL",
    ]
    assert code == 0 and row.startswith(sid) and "matrix multiplication" in row
    code, out, _ = run("show", "ada", sid, *base)
    assert code == 0 and "version 1" in out and "FIELD" in out and "CONCEPT" in out
    assert any(line.startswith("concept-00 ") for line in out.splitlines())
    code, out, _ = run("keys", "ada", *base)
    assert code == 0
    assert f"> HGETALL {prefix}:{{u:ada}}:s:{sid}" in out and f"{prefix}:{{u:ada}}:idx" in out
    code, out, _ = run("delete", "ada", sid, *base)
    assert code == 0 and "deleted" in out
    code, out, err = run("delete", "ada", sid, *base)
    assert code == 1 and "no session" in err
    code, out, _ = run("keys", "ada", *base)
    commands = [line for line in out.splitlines() if line.startswith(">")]
    assert commands and all(line.startswith(f"> GET {prefix}:{{u:ada}}:req:") for line in commands)
    assert "a write's reply, kept" in out  # only the replay keys of the writes are left


def test_reading_commands_print_json(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    base = ["--url", url, "--prefix", prefix]
    code, out, _ = run("list", "ada", "--json", *base)
    [row] = json.loads(out)
    assert code == 0 and row["session_id"] == sid and row["version"] == 1
    code, out, _ = run("show", "ada", sid, "--json", *base)
    data = json.loads(out)
    assert data["session_id"] == sid and data["context"]["latest_turn_no"] == 3
    code, out, _ = run("keys", "ada", "--json", *base)
    entries = {e["key"]: e for e in json.loads(out)}
    record = entries[f"{prefix}:{{u:ada}}:s:{sid}"]
    assert record["type"] == "hash" and record["value"]["user_id"] == "ada"
    index = entries[f"{prefix}:{{u:ada}}:idx"]
    assert index["type"] == "zset" and index["value"][0][0] == sid
    code, out, _ = run("check", "--json", *base)
    report = json.loads(out)
    assert code == 0 and report["problems"] == {} and report["scanned_keys"] >= 4
    code, out, _ = run("sweep", "--dry-run", "--json", "--max-age", "90s", *base)
    swept = json.loads(out)
    assert code == 0 and swept["dry_run"] is True and swept["deleted"] == 0
    code, out, _ = run("list", "nobody", "--json", *base)
    assert code == 0 and json.loads(out) == []


def test_limits_above_the_cap_say_so() -> None:
    code, _, err = run("list", "ada", "--limit", "500", "--url", "redis://127.0.0.1:1/0")
    assert code == 2 and "cap of 100" in err and "--offset" in err
    code, _, err = run("list", "ada", "--offset", "10001", "--url", "redis://127.0.0.1:1/0")
    assert code == 2 and "10000" in err


def test_show_missing_and_malformed_ids(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    code, _, err = run("--url", url, "--prefix", prefix, "show", "bob", sid)
    assert code == 1 and "no session" in err
    code, _, err = run("--url", url, "--prefix", prefix, "show", "ada", "not-a-uuid")
    assert code == 2 and "canonical UUID" in err


def _one_line(code: int, out: str, err: str) -> str:
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("name", list(ALL_COMMANDS))
@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://host:notaport", "nonsense"])
def test_bad_url_is_a_one_line_usage_error(name: str, url: str) -> None:
    code, out, err = run(*ALL_COMMANDS[name], "--url", url)
    assert code == 2 and "invalid Redis URL" in _one_line(code, out, err)


@pytest.mark.parametrize("name", list(ALL_COMMANDS))
def test_unreachable_server_is_a_one_line_error(name: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    code, out, err = run(*ALL_COMMANDS[name], "--url", url)
    line = _one_line(code, out, err)
    assert code == 1 and "cannot reach Redis" in line and "s3cret" not in err + out


@pytest.fixture(scope="module")
def password_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(extra_args=["--requirepass", "right-password"]) as server:
        yield server


@pytest.mark.parametrize("name", list(ALL_COMMANDS))
def test_wrong_password_is_a_one_line_error(name: str, password_server: EmbeddedRedis) -> None:
    url = f"redis://:wrong-password@127.0.0.1:{password_server.port}/0"
    code, out, err = run(*ALL_COMMANDS[name], "--url", url)
    line = _one_line(code, out, err)
    assert code == 1 and "refused the credentials" in line and "wrong-password" not in err + out


#: runs the command line in a process of its own, and reports how long the command took once
#: Python and the package were loaded (process start-up is not the command's doing)
TIMED = (
    "import atexit, sys, time\n"
    "from redis_sessions.cli import cli\n"
    "started = time.monotonic()\n"
    "atexit.register(lambda: print(f'ELAPSED {time.monotonic() - started:.3f}', file=sys.stderr))\n"
    "cli(prog_name='redis-sessions')\n"
)


def test_a_server_that_never_answers_fails_every_command_within_the_budget() -> None:
    """Through a proxy that accepts connections and blackholes them: each command, in its own
    process (all at once), gives one line and exit 1 within the README's budget."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV_URL: ""}
    with EmbeddedRedis() as server, fault_proxy(server.url) as proxy:
        proxy.blackhole()
        processes = {
            name: subprocess.Popen(
                [sys.executable, "-c", TIMED, *args, "--url", proxy.url],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, args in ALL_COMMANDS.items()
        }
        for name, process in processes.items():
            out, err = process.communicate(timeout=60)
            *lines, timing = err.strip().splitlines()
            elapsed = float(timing.removeprefix("ELAPSED "))
            line = _one_line(process.returncode, out, "\n".join(lines))
            assert process.returncode == 1, (name, err)
            assert "did not answer within" in line, (name, line)
            assert elapsed < CLI_NO_ANSWER_BUDGET + 2, (name, elapsed)  # + a busy machine


def test_bad_prefix_is_a_usage_error() -> None:
    code, _, err = run("--url", "redis://127.0.0.1:1/0", "--prefix", "a{b}", "list", "ada")
    assert code == 2 and "prefix" in err


def test_redis_repr_matches_redis_cli_escaping() -> None:
    assert redis_repr(b'a"b\\c\nd\x01\xc3\xbc') == '"a\\"b\\\\c\\nd\\x01\\xc3\\xbc"'
    assert redis_repr(b"x" * 200, width=5) == '"xxxxx"...'
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"


def test_check_json_reports_what_is_left_and_exits_1(seeded: tuple[str, str], prefix: str) -> None:
    url, sid = seeded
    with SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix)) as store:
        store.client.zrem(store.keyspace.index("ada"), sid)
    code, out, _ = run("check", "--json", "--url", url, "--prefix", prefix)
    report = json.loads(out)
    assert (
        code == 1
        and report["problems"] == {"unindexed": 1}
        and report["left"] == report["problems"]
    )
    assert any(sid in example for example in report["examples"])
    code, out, _ = run("check", "--repair", "--json", "--url", url, "--prefix", prefix)
    report = json.loads(out)
    assert code == 0 and report["repaired"] == {"unindexed": 1} and report["left"] == {}
