"""A real ``takt serve`` subprocess on a fresh workspace, driven only through the command line.

``make_workspace`` runs ``takt init`` and ``takt keys create`` (parsing the printed secrets);
``TaktServer`` starts ``takt serve`` on a free loopback port, waits for ``/health`` and stops it with SIGTERM
(then SIGKILL) or kills it outright; ``export_events`` reads the whole log with ``takt events export``
(for DuckDB only once the server is stopped: DuckDB allows one process per file).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _takt_command() -> list[str]:
    """The installed ``takt`` console script next to this interpreter (as a user runs it)."""
    script = Path(sys.executable).parent / "takt"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from takt.cli.main import main; main()"]


TAKT = _takt_command()
START_DEADLINE = 60.0  # seconds a start may take before it is reported as failed (a bound, not a check)
STOP_GRACE = 15.0


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without TAKT_* settings (so nothing overrides the workspace's own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def takt(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run the takt CLI; return its stdout, raising with its output if it fails."""
    proc = subprocess.run([*TAKT, *args], capture_output=True, text=True, env=clean_env(env), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"takt {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@dataclass
class Workspace:
    path: Path
    write_key: str
    admin_key: str
    source: str
    provenance: str
    database_url: str | None = None


def create_key(path: Path, kind: str, name: str, provenance: str | None = None, trust: str = "server") -> str:
    """A key through the CLI. A write key is a ``server`` key unless ``trust="public"`` (the CLI's own default
    is public: these tests speak for the company unless they say they are a browser)."""
    args = ["keys", "create", "-w", str(path), "--kind", kind, "--name", name]
    if provenance:
        args += ["--provenance", provenance]
    if kind == "write":
        args += ["--trust", trust]
    out = takt(*args).strip().splitlines()
    # "created … key …", "secret (shown once, store it now):", then the secret alone on the last line
    assert len(out) >= 3 and out[-2].startswith("secret"), out
    secret = out[-1].strip()
    assert secret.startswith({"write": "tk_w_", "read": "tk_r_", "admin": "tk_a_"}[kind]), secret
    return secret


_TEMPLATES: dict[tuple[str, str], Workspace] = {}


def make_workspace(path: Path, database_url: str | None = None, source: str = "website",
                   provenance: str = "customer_provided", trust: str = "server") -> Workspace:
    """``takt init`` plus a write key (for ``source``) and an admin key, all through the CLI.

    A DuckDB workspace is made through the CLI once per test process and kind of key, then copied (the CLI's
    start-up dominates otherwise); a PostgreSQL one is always made afresh."""
    if database_url is None:
        key = (source, provenance, trust)
        if key not in _TEMPLATES:
            root = Path(tempfile.mkdtemp(prefix="takt-test-template-"))
            atexit.register(shutil.rmtree, root, True)
            _TEMPLATES[key] = _create_workspace(root / "ws", None, source, provenance, trust)
        tpl = _TEMPLATES[key]
        shutil.copytree(tpl.path, path, ignore=shutil.ignore_patterns("serve.*"))
        return dataclasses.replace(tpl, path=path)
    return _create_workspace(path, database_url, source, provenance, trust)


def _create_workspace(path: Path, database_url: str | None, source: str, provenance: str,
                      trust: str = "server") -> Workspace:
    args = ["init", str(path)]
    if database_url:
        args += ["--database-url", database_url]
    takt(*args)
    write_key = create_key(path, "write", source, provenance, trust)
    admin_key = create_key(path, "admin", "ops")
    return Workspace(path, write_key, admin_key, source, provenance, database_url)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic_auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class ServerError(RuntimeError):
    pass


class TaktServer:
    """One ``takt serve`` process. Restartable: ``start`` again after ``stop``/``kill`` reuses the port."""

    def __init__(self, workspace: Workspace, port: int | None = None, env: dict[str, str] | None = None):
        self.workspace = workspace
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = workspace.path / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self) -> TaktServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for attempt in range(3):
            try:
                self._spawn()
                return self
            except ServerError as e:
                # A free port can be taken between choosing and binding it: choose another.
                if "address already in use" in str(e).lower() and attempt < 2:
                    self.port = free_port()
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*TAKT, "serve", "-w", str(self.workspace.path), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=clean_env(self.env), start_new_session=True,
            )
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"takt serve exited with {self.proc.returncode} while starting:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("status") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"takt serve did not become healthy within {START_DEADLINE}s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL: a crash, nothing flushed or closed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(STOP_GRACE)

    def __enter__(self) -> TaktServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- a small HTTP client ----
    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"null")


def export_events(workspace: Workspace) -> list[dict[str, Any]]:
    """The whole log, through ``takt events export`` (stop a DuckDB workspace's server first)."""
    out = takt("events", "export", "-w", str(workspace.path), "--after", "0", timeout=300)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
