"""Check that the public API is fully typed and documented, as type checkers and editors see it.

    python scripts/verifytypes.py       (part of `make lint`)

Installs the package (no dependencies) into a temporary folder, as a user's site-packages would hold
it, and runs ``basedpyright --verifytypes redis_sessions --ignoreexternal`` on it with this virtualenv
active (the editable install of a checkout is not what users import). Fails unless the type
completeness score is 100% and no public function or class lacks a docstring. ``--ignoreexternal``:
types that come from redis-py or click are theirs to complete, not ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    venv = Path(sys.prefix)
    with tempfile.TemporaryDirectory() as target:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                target,
                ".",
            ],
            cwd=ROOT,
            check=True,
        )
        env = {
            **os.environ,
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": target,
        }
        done = subprocess.run(
            [
                str(venv / "bin" / "basedpyright"),
                "--verifytypes",
                "redis_sessions",
                "--ignoreexternal",
                "--outputjson",
            ],
            cwd=target,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    report = json.loads(done.stdout)["typeCompleteness"]
    score = report["completenessScore"]
    undocumented = report["missingFunctionDocStringCount"] + report["missingClassDocStringCount"]
    print(
        f"verifytypes: {score:.1%} complete, {report['exportedSymbolCounts']}, "
        f"{undocumented} public functions or classes without a docstring"
    )
    if score < 1 or undocumented:
        for symbol in report["symbols"]:
            for diagnostic in symbol.get("diagnostics") or []:
                print(f"  {symbol['name']}: {diagnostic['message']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
