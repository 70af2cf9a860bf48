"""`takt keys`: write keys' trust, identity verification's secret, keys managed through a running server
(--api), a held workspace pointing to --api, and files readable by their owner only."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.storage.duckdb import DuckDBStorage
from takt.workspace import verification_secret_path


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def test_write_keys_are_public_unless_asked_to_be_server(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    run("init", ws)
    code, out = run("keys", "create", "-w", ws, "--kind", "write", "--name", "web")
    assert code == 0 and "trust public" in out and "claims" in out
    code, out = run("keys", "create", "-w", ws, "--kind", "write", "--name", "crm", "--trust", "server",
                    "--provenance", "crm_import")
    assert code == 0 and "trust server" in out
    code, out = run("keys", "create", "-w", ws, "--kind", "read", "--name", "r", "--trust", "server")
    assert code == 2 and "trust" in out and "Traceback" not in out
    code, out = run("keys", "list", "-w", ws, "--json")
    assert {k["name"]: k["trust"] for k in json.loads(out)} == {"web": "public", "crm": "server"}
    code, out = run("keys", "list", "-w", ws)
    assert "trust=public" in out and "trust=server" in out and "tk_w_" not in out


def test_the_verification_secret_is_made_at_init_and_printed_only_on_request(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, out = run("init", str(ws))
    path = verification_secret_path(str(ws / "takt.duckdb"))
    assert path.exists() and path.read_text() not in out
    code, out = run("keys", "verification-secret", "-w", str(ws))
    assert code == 0 and out.strip() == path.read_text().strip() and out.startswith("tk_v_")


def test_workspace_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("init", str(ws))[0] == 0
    run("keys", "create", "-w", str(ws), "--kind", "admin", "--name", "ops")
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
    for name in ("takt.toml", "takt.duckdb", "takt.duckdb.master-key", "takt.duckdb.verification-secret"):
        assert stat.S_IMODE((ws / name).stat().st_mode) == 0o600, name


def test_a_held_workspace_says_to_manage_keys_through_the_api(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run("init", str(ws))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(60)", str(ws / "takt.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        code, out = run("keys", "list", "-w", str(ws))
        assert code == 2 and "--api" in out and "admin key" in out and "Traceback" not in out
        (ws / "serve.json").write_text(json.dumps({"pid": holder.pid, "url": "http://127.0.0.1:9"}))
        code, out = run("keys", "create", "-w", str(ws), "--kind", "read", "--name", "r")
        assert code == 2 and "--api http://127.0.0.1:9 --key KEY" in out and "admin key" in out
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def server(tmp_path: Path, clock) -> Iterator[tuple[str, str, DuckDBStorage]]:
    import uvicorn

    from takt.api.app import create_app
    from takt.settings import load

    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, admin = storage.keys.create("admin", "ops", now=clock())
    app = create_app(storage, load(None, env={}), clock)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if srv.started:
                break
            time.sleep(0.05)
        assert srv.started
        yield f"http://127.0.0.1:{port}", admin.reveal(), storage
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        storage.close()


def test_keys_through_a_running_server(server) -> None:
    url, admin, storage = server
    api = ["--api", url, "--key", admin]
    code, out = run("keys", "create", *api, "--kind", "write", "--name", "web", "--provenance", "customer_provided")
    assert code == 0 and "trust public" in out, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("tk_w_")
    code, out = run("keys", "create", *api, "--kind", "write", "--name", "crm", "--trust", "server")
    assert code == 0 and "trust server" in out
    assert {k.name: k.trust for k in storage.keys.list()} == {"ops": None, "web": "public", "crm": "server"}
    code, out = run("keys", "list", *api, "--json")
    assert code == 0 and {k["name"] for k in json.loads(out)} == {"ops", "web", "crm"} and secret not in out
    code, out = run("keys", "revoke", *api, "web")
    assert code == 0 and "revoked write key" in out
    assert [k.active for k in storage.keys.list() if k.name == "web"] == [False]
    code, out = run("keys", "revoke", *api, "nope")
    assert code == 2 and "no key" in out
    code, out = run("keys", "create", *api, "--kind", "read", "--name", "r", "--trust", "public")
    assert code == 2 and "400" in out and "trust" in out
    code, out = run("keys", "list", "--api", url, "--key", "tk_a_wrong")
    assert code == 2 and "401" in out
    code, out = run("keys", "list", "--api", url)
    assert code == 2 and "--key" in out
