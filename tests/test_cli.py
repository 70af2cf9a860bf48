"""The command line around the log and the projections."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from click.testing import CliRunner

from takt.cli.main import main
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def test_init_keys_events_rebuild_and_show(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    code, out = run("init", ws)
    assert code == 0 and "workspace ready" in out
    code, out = run("keys", "create", "-w", ws, "--kind", "write", "--name", "web", "--provenance", "customer_provided")
    assert code == 0 and out.strip().splitlines()[-1].startswith("tk_w_")
    code, out = run("keys", "list", "-w", ws)
    assert "web" in out and "tk_w_" not in out.replace(out.split()[0], "")
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    s.log.append([ev(0, kind="identify", user_id="u1", traits={"email": "u1@example.com"}),
                  ev(1, user_id="u1", properties={"interests": ["category:outdoor"]})])
    s.close()
    assert run("events", "count", "-w", ws) == (0, "2\n")
    code, out = run("events", "export", "-w", ws, "--after", "0")
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert [x["messageId"] for x in lines] == ["m-0", "m-1"] and all(x["position"] >= 1 for x in lines)
    code, out = run("rebuild", "-w", ws)
    assert code == 0 and "rebuilt 1 profiles from 2 events" in out
    code, out = run("profiles", "show", "-w", ws, "email:u1@example.com", "--json")
    assert code == 0
    body = json.loads(out)
    assert "user_id:u1" in body["identifiers"] and body["interests"][0]["key"] == "category:outdoor"
    code, out = run("profiles", "show", "-w", ws, "email:nobody@example.com")
    assert code == 2 and "no profile" in out


def test_revoke_and_errors_without_stack_traces(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    run("init", ws)
    run("keys", "create", "-w", ws, "--kind", "read", "--name", "r")
    code, out = run("keys", "revoke", "-w", ws, "r")
    assert code == 0 and "revoked" in out
    code, out = run("keys", "revoke", "-w", ws, "missing")
    assert code == 2 and "error: no key" in out
    code, out = run("events", "count", "-w", str(tmp_path / "nowhere"))
    assert code == 2 and "not a takt workspace" in out and "Traceback" not in out


def test_locked_workspace_says_who_holds_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    ws = tmp_path / "ws"
    run("init", str(ws))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(60)", str(ws / "takt.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        code, out = run("events", "count", "-w", str(ws))
        assert code == 2 and "held by" in out and "Traceback" not in out
        (ws / "serve.json").write_text(json.dumps({"pid": holder.pid, "url": "http://127.0.0.1:9"}))
        code, out = run("events", "count", "-w", str(ws))
        assert code == 2 and "--api http://127.0.0.1:9" in out
    finally:
        holder.kill()
        holder.wait()


def test_worker_once_catches_up_and_saves_a_snapshot(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    run("init", ws)
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    s.log.append([ev(0, kind="identify", user_id="w1", traits={"email": "w1@example.com"})])
    s.close()
    code, out = run("worker", "-w", ws, "--once")
    assert code == 0 and "leader" in out and "applied 1 events" in out
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    try:
        assert s.profiles.position() == s.log.head()  # the profile store reflects the whole log
    finally:
        s.close()
