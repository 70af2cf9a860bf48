"""Progress goes to standard error, so piped and --json output stays clean (issue 12.8)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from takt.cli.main import main
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev

BAR = "━"


def _ws(tmp_path: Path) -> str:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(main, ["init", str(ws)]).exit_code == 0
    s = DuckDBStorage(ws / "takt.duckdb")
    s.log.append([ev(i, kind="identify", user_id=f"u{i}", traits={"email": f"u{i}@example.com"}) for i in range(5)])
    s.close()
    return str(ws)


def test_rebuild_import_and_export_keep_stdout_free_of_progress(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    rows = tmp_path / "customers.csv"
    rows.write_text("crm_id,email\nc1,c1@example.com\nc2,c2@example.com\n", encoding="utf-8")
    for args in (["rebuild", "-w", ws], ["import", "customers", str(rows), "-w", ws],
                 ["export", "parquet", str(tmp_path / "out"), "-w", ws]):
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert BAR not in r.stdout, f"takt {' '.join(args)} printed progress on stdout: {r.stdout!r}"
