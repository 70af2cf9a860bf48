"""The set-up scripts' logic (issue 12.12): the demo installs only what it needs, with progress; the throwaway
PostgreSQL keeps its files where the ``postgres`` user can reach them wherever the clone lives."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls"
if [ "$1 $2 $3" = "-m pip install" ] && [ "$4" = "--progress-bar" ]; then
  echo "Obtaining file:///x"
  echo "Collecting duckdb>=1.2 (from takt==0.1.0)"
  echo "  Downloading duckdb-1.2.0-cp311-manylinux.whl (20.1 MB)"
  echo "Requirement already satisfied: numpy in ./x"
  echo "Installing collected packages: duckdb, takt"
  echo "Successfully installed duckdb-1.2.0 takt-0.1.0"
fi
exit 0
"""


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", clone / "scripts" / "setup")
    shutil.copy(ROOT / "scripts" / "pg", clone / "scripts" / "pg")
    (clone / "pyproject.toml").write_text("[project]\n")
    venv = clone / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(FAKE_PYTHON)
    (venv / "python").chmod(0o755)
    return clone


def _setup(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(clone / "scripts" / "setup"), *args], capture_output=True, text=True, check=True)


def _installs(clone: Path) -> list[str]:
    calls = (clone / ".venv" / "calls").read_text().splitlines() if (clone / ".venv" / "calls").exists() else []
    (clone / ".venv" / "calls").unlink(missing_ok=True)
    return [c.split()[-1] for c in calls if c.startswith("-m pip install --progress-bar")]


def test_the_demo_installs_only_the_runtime_and_shows_progress(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    out = _setup(clone, "demo")
    assert _installs(clone) == ["."]  # no [dev,spark]
    assert "collecting duckdb" in out.stderr and "downloading duckdb-1.2.0" in out.stderr and "(20.1 MB)" in out.stderr
    assert "Requirement already satisfied" not in out.stderr
    _setup(clone, "demo")
    assert _installs(clone) == []  # done once
    # the checks need everything: installed once, and then the demo needs nothing more
    _setup(clone)
    assert _installs(clone) == [".[dev,spark]"]
    _setup(clone, "demo")
    _setup(clone)
    assert _installs(clone) == []


def test_a_changed_pyproject_installs_again(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    _setup(clone)
    _installs(clone)
    stamp = clone / ".venv" / ".takt-installed-dev"
    os.utime(stamp, (1, 1))
    _setup(clone)
    assert _installs(clone) == [".[dev,spark]"]


def test_scripts_demo_and_check_use_the_right_set_up() -> None:
    assert "scripts/setup demo\n" in (ROOT / "scripts" / "demo").read_text()
    assert "scripts/setup\n" in (ROOT / "scripts" / "check").read_text()


def _pg_dir(clone: Path, uid: int = 0) -> Path:
    """Where ``scripts/pg`` keeps the server's files when run by ``uid`` (the rule only: nothing starts)."""
    out = subprocess.run([str(clone / "scripts" / "pg"), "dir"], capture_output=True, text=True, check=True,
                         env={**os.environ, "TAKT_PG_UID": str(uid)})
    return Path(out.stdout.strip())


def test_as_root_the_server_files_live_outside_the_clone_one_place_per_clone(tmp_path: Path) -> None:
    one = _clone(tmp_path / "a")
    two = _clone(tmp_path / "b")
    d1, d2 = _pg_dir(one), _pg_dir(two)
    assert d1 != d2 and d1 == _pg_dir(one)  # per clone, and stable (stop finds what start made)
    assert not d1.is_relative_to(tmp_path) and d1.parent == Path("/var/tmp")
    # a clone whose .cache/pg already holds a server keeps it
    (one / ".cache" / "pg" / "data").mkdir(parents=True)
    (one / ".cache" / "pg" / "data" / "PG_VERSION").write_text("15\n")
    assert _pg_dir(one) == one / ".cache" / "pg"


def test_as_a_user_the_server_files_live_in_the_clone(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    assert _pg_dir(clone, uid=1000) == clone / ".cache" / "pg"
