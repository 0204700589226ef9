"""The public surface: exact exports, typing marker, Lua scripts registered, contracted, shipped."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

import redis_sessions
from redis_sessions.scripts import ScriptName, script_file

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = {
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
    "StoreConfig",
    "StoreStats",
    "StoreBusy",
    "StoreClosed",
    "StoreUnavailable",
    "TutorContext",
    "UserConceptMastery",
    "UserModelState",
    "ValidationResult",
    "VersionConflict",
    "WrongEventLoop",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(redis_sessions.__all__) == PUBLIC
    assert len(redis_sessions.__all__) == len(PUBLIC)
    for name in PUBLIC:
        assert getattr(redis_sessions, name) is not None


def test_every_exception_derives_from_the_base() -> None:
    from redis_sessions import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), redis_sessions.SessionStoreError)
        assert name in (exceptions.__doc__ or "")


def test_package_is_typed() -> None:
    assert (resources.files("redis_sessions") / "py.typed").is_file()


def test_every_script_file_is_registered_and_the_reverse() -> None:
    files = {p.stem for p in (ROOT / "lua").glob("*.lua")} - {"_lib"}
    assert files == {name.value for name in ScriptName}


@pytest.mark.parametrize("name", list(ScriptName), ids=[n.value for n in ScriptName])
def test_script_starts_with_its_contract_and_names_its_inputs(name: ScriptName) -> None:
    lines = script_file(name).splitlines()
    header = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)
    assert re.search(r"^-- KEYS\[1\] = ", text, re.M), "contract must describe KEYS[1]"
    uses_argv = "ARGV" in "\n".join(lines[len(header) :])
    assert not uses_argv or re.search(r"^-- ARGV\[1(\.\.)?\]", text, re.M)
    assert re.search(r"^-- Returns", text, re.M)
    continued = False  # inside a `local a, b =` that goes on to the next line
    for line in lines[len(header) :]:
        code = line.split("--")[0].rstrip()
        starts_local = code.lstrip().startswith("local ")
        if re.search(r"\b(KEYS|ARGV)\[", code):
            # KEYS/ARGV are read once into named locals (or copied in a loop over #ARGV)
            named = starts_local or continued
            assert named or re.search(r"ARGV\[i( \+ 1)?\]", code), line
        continued = (starts_local or continued) and code.endswith(("=", ","))


def test_built_wheel_ships_the_lua_scripts(tmp_path: Path) -> None:
    """Build sdist, then the wheel from it (as pip does), and look inside."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stem in [*(n.value for n in ScriptName), "_lib"]:
        assert f"redis_sessions/lua/{stem}.lua" in names
    assert "redis_sessions/py.typed" in names
    for module in ("__init__", "jobs", "cron_config", "schedule", "runner"):
        assert f"redis_sessions/worker/{module}.py" in names
    # nothing else lands in site-packages: no top-level `workers` (or any other) package
    top_level = {name.split("/")[0] for name in names}
    dist_info = {n for n in top_level if n.endswith(".dist-info")}
    assert top_level - dist_info == {"redis_sessions"}, top_level
    [info] = dist_info
    record = zipfile.ZipFile(wheel).read(f"{info}/RECORD").decode()
    assert {line.split("/")[0] for line in record.splitlines()} - dist_info == {"redis_sessions"}


def test_the_core_never_imports_the_agent_frameworks() -> None:
    """The integrations are optional extras: ``import redis_sessions`` loads none of them."""
    code = (
        "import sys, redis_sessions, redis_sessions.store, redis_sessions.aio; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('agents', 'openai') "
        "or m.startswith(('google.adk', 'google.genai', 'redis_sessions.integrations'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"
