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


def _rules(code: str) -> str:
    code += ("\nfrom takt.events.model import known_kinds\nfrom takt.identity.extract import NO_IDENTITY_KINDS\n"
             "print(sorted(known_kinds()), sorted(NO_IDENTITY_KINDS))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", ["segment", "rebuild", "privacy", "export", "clv"])
def test_a_lazily_loaded_command_knows_the_kinds_and_identity_rules_the_server_knows(name: str) -> None:
    """Definitions are checked against the registered kinds, and identity skips the kinds takt derives: each
    command alone must register all of them (before the lazy group, importing every command did it)."""
    everything = _rules("import importlib\nimport takt.api.app\n"
                        f"for m in {[module for module, _ in PLUGINS.values()]!r}: importlib.import_module(m)")
    assert _rules(f"from takt.cli.main import load_plugin\nload_plugin({name!r})") == everything


def test_a_segment_count_imports_no_model_fitting_library(tmp_path) -> None:
    """``takt segment count`` needs clv("…") and score("…") registered, not the libraries that fit them
    (scipy and pandas cost about 2.5 s of imports; they load when a fit runs). pandas still comes in through
    pyarrow when the tables are derived from Python lists of datetimes."""
    ws = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "takt.cli.main", "init", str(ws)], check=True, capture_output=True,
                   timeout=120)
    _, loaded = _loaded("segment", "count", "-w", str(ws), 'trait.country = "DE"')
    assert "duckdb" in loaded  # the probe saw the command run
    assert not {"scipy", "lightgbm", "sklearn"} & set(loaded), loaded
