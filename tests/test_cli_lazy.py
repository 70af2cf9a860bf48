"""``takt --help`` imports no command module's heavy dependencies (issue 13): the group is lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from takt.cli.main import PLUGINS, load_plugin

HEAVY = ("scipy", "lightgbm", "duckdb", "pandas", "pyarrow", "psycopg", "sklearn", "uvicorn", "starlette")

_PROBE = """
import sys
from takt.cli.main import main
try:
    main(sys.argv[1:], prog_name="takt")
except SystemExit:
    pass
print("LOADED " + " ".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> tuple[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], capture_output=True,
                          text=True, timeout=120)
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED")][-1]
    return proc.stdout, line.split()[1:]


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("events", "--help")])
def test_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    out, loaded = _loaded(*args)
    assert "Usage" in out or "version" in out
    assert loaded == [], f"takt {' '.join(args)} imported {loaded}"


def test_help_lists_every_command_with_its_own_short_help() -> None:
    out, _ = _loaded("--help")
    for name, (_module, short) in PLUGINS.items():
        cmd = load_plugin(name)
        assert cmd.name == name
        assert cmd.get_short_help_str(limit=80) == short, f"PLUGINS[{name!r}] help is out of date"
        assert name in out


def _kinds(*modules: str) -> set[str]:
    code = ("import importlib, sys\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            "from takt.events.model import known_kinds\n"
            "print(' '.join(sorted(known_kinds())))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_a_lazily_loaded_segment_command_knows_every_kind_the_server_knows() -> None:
    """Definitions are checked against the registered kinds: `takt segment` alone must register all of them
    (before the lazy group, importing every plugin did it by accident)."""
    everything = _kinds("takt.api.app", *(module for module, _ in PLUGINS.values()))
    assert _kinds("takt.cli.segment") == everything
