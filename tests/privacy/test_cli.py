"""takt privacy export|erase|compact and takt audit, on DuckDB and PostgreSQL workspaces."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from takt import workspace as ws_mod
from takt.cli.main import main
from takt.privacy.crypto import is_erased
from tests.factories import ev

EMAIL = "cli.person@example.com"


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


@pytest.fixture(params=["duckdb", "postgres"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ws_mod.Workspace:
    monkeypatch.setenv("TAKT_KEY_DIR", str(tmp_path / "keys"))
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    ws = ws_mod.init(tmp_path / "ws", database_url=url)
    with ws.open_storage() as storage:
        storage.log.append([ev(1, user_id="cli-1", kind="identify", traits={"email": EMAIL, "name": "Cli Person"}),
                            ev(2, user_id="cli-1", properties={"sku": "A-1"}),
                            ev(3, user_id="cli-2", kind="identify", traits={"email": "keep@example.com"})])
    return ws


def test_export_then_erase_then_audit(workspace: ws_mod.Workspace, tmp_path: Path) -> None:
    w = str(workspace.path)
    out = tmp_path / "export.json"
    code, text = _run("privacy", "export", f"email:{EMAIL}", "-w", w, "-o", str(out))
    assert code == 0, text
    doc = orjson.loads(out.read_bytes())
    assert [e["messageId"] for e in doc["events"]] == ["m-1", "m-2"]
    assert doc["profile"]["id"] == doc["profile_id"]

    code, text = _run("privacy", "erase", f"email:{EMAIL}", "-w", w)
    assert code != 0 and "--yes" in text  # nothing happens without confirmation
    code, text = _run("privacy", "export", f"email:{EMAIL}", "-w", w, "-o", str(out))
    assert code == 0

    code, text = _run("privacy", "erase", f"email:{EMAIL}", "-w", w, "--yes")
    assert code == 0, text
    assert "2 events redacted, 1 key destroyed" in text
    with workspace.open_storage() as storage:
        events = storage.log.read()
        assert [is_erased(e.event) for e in events] == [True, True, False]
        assert EMAIL not in str([e.event for e in events])
    code, text = _run("privacy", "export", f"email:{EMAIL}", "-w", w)
    assert code != 0 and "no profile" in text
    code, text = _run("privacy", "erase", f"email:{EMAIL}", "-w", w, "--yes")
    assert code == 0 and "nothing to erase" in text

    code, text = _run("audit", "-w", w, "--json")
    assert code == 0, text
    rows = [orjson.loads(line) for line in text.splitlines()]
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("privacy.erase", "not_found"), ("privacy.erase", "requested"), ("privacy.export", "not_found"),
        ("privacy.erase", "erased"), ("privacy.erase", "requested"), ("privacy.export", "ok"), ("privacy.export", "ok")]
    assert all(r["key_id"].startswith("cli:") for r in rows)
    assert EMAIL not in text


def test_compact_is_for_duckdb(workspace: ws_mod.Workspace) -> None:
    code, text = _run("privacy", "compact", "-w", str(workspace.path))
    if workspace.backend == "duckdb":
        assert code == 0 and "rewrote" in text
        with workspace.open_storage() as storage:
            assert storage.log.count() == 3
    else:
        assert code != 0 and "VACUUM" in text


def test_exports_from_the_shell_are_audited(workspace: ws_mod.Workspace, tmp_path: Path) -> None:
    w = str(workspace.path)
    code, text = _run("events", "export", "-w", w, "-o", str(tmp_path / "events.jsonl"))
    assert code == 0, text
    code, text = _run("segment", "members", "trait.email exists", "-w", w)
    assert code == 0, text
    wanted = [("segment.members", None), ("events.export", None)]
    if workspace.backend == "duckdb":  # (export parquet runs on DuckDB)
        code, text = _run("export", "parquet", str(tmp_path / "pq"), "-w", w)
        assert code == 0, text
        wanted.insert(0, ("workspace.export", None))
    code, text = _run("audit", "-w", w, "--json")
    rows = [orjson.loads(line) for line in text.splitlines()]
    assert [(r["action"], r["subject"]) for r in rows] == wanted
    assert all(r["key_id"].startswith("cli:") for r in rows)


def test_reads_from_the_shell_are_audited(workspace: ws_mod.Workspace) -> None:
    w = str(workspace.path)
    code, text = _run("profiles", "show", f"email:{EMAIL}", "-w", w)
    assert code == 0 and EMAIL in text, text
    code, text = _run("events", "tail", "--no-follow", "-w", w)
    assert code == 0 and EMAIL in text, text
    code, text = _run("audit", "-w", w, "--json")
    rows = [orjson.loads(line) for line in text.splitlines()]
    assert [r["action"] for r in rows] == ["events.read", "profile.read"]
    assert rows[1]["subject"].startswith("p_") and EMAIL not in text
