"""A test that cannot run is never silently absent: the run ends with the skips counted by reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_skips_are_counted_by_reason_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / "test_some.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(3))\n"
        "def test_cluster(i):\n"
        "    pytest.skip('no cluster binary here')\n"
        "def test_old():\n"
        "    pytest.skip('the server is too old')\n"
        "def test_runs():\n"
        "    pass\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_some.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    section = out[out.index("skipped tests by reason") :]
    lines = [line.split(None, 1) for line in section.splitlines()[1:] if line.strip()][:3]
    assert lines == [
        ["3", "no cluster binary here"],
        ["1", "the server is too old"],
        ["4", "skipped in all"],
    ]
