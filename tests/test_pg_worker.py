"""PostgreSQL deployment: `takt serve` beside `takt worker`, as real processes.

The worker holding the leases folds the log and publishes each chunk to the profile store; a serving process
(``server.fold = auto``) never folds while a worker runs: it reads the published state from the store, and a
read of one's own write waits until the store's position reaches it. A standby worker takes over when the
leader dies; a server that folded while no worker ran hands over when one starts.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import TAKT, TaktServer, Workspace, basic_auth, clean_env, make_workspace

DEADLINE_S = 60.0
NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0).isoformat()
"""Decisions are asked for today at noon (outside quiet hours whenever the test runs)."""


class Worker:
    """One ``takt worker`` process."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.log_path = workspace.path / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*TAKT, "worker", "-w", str(self.workspace.path)], stdout=log,
                                         stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while text not in self.log():
            assert self.proc is not None
            assert self.proc.poll() is None, f"takt worker exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"takt worker never said {text!r}:\n{self.log()}"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def call(server: TaktServer, method: str, path: str, key: str, body: Any = None,
         basic: bool = False) -> tuple[int, Any]:
    headers = basic_auth(key) if basic else {"Authorization": f"Bearer {key}"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"null")


def health(server: TaktServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def identify_and_read(server: TaktServer, ws: Workspace, user: str) -> dict[str, Any]:
    """Write through the server, then read the profile at once (read your writes: no retry here)."""
    status, body = call(server, "POST", "/v1/identify", ws.write_key, basic=True,
                        body={"userId": user, "traits": {"email": f"{user}@example.com", "first_name": user}})
    assert status == 200, body
    q = urllib.parse.urlencode({"identifier": f"email:{user}@example.com"})
    status, profile = call(server, "GET", f"/v1/profiles?{q}", ws.admin_key)
    assert status == 200, profile
    assert profile["traits"]["first_name"]["value"] == user
    assert f"user_id:{user}" in profile["identifiers"]
    return profile  # type: ignore[no-any-return]


def consent_and_decide(server: TaktServer, ws: Workspace, user: str, status_: str) -> dict[str, Any]:
    status, body = call(server, "POST", "/v1/consent", ws.admin_key, body={
        "profile": f"user_id:{user}", "purpose": "marketing", "channel": "email",
        "contact_point": f"{user}@example.com", "status": status_,
        "evidence": {"method": "double_opt_in", "notice_version": "2026-03"}})
    assert status == 200, body
    status, decision = call(server, "POST", "/v1/decide", ws.admin_key,
                            body={"profile": f"user_id:{user}", "intent": "marketing", "channels": ["email"],
                                  "at": NOON})
    assert status == 200, decision
    return decision  # type: ignore[no-any-return]


def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_a_served_workspace_with_a_worker_reads_published_state_and_the_standby_takes_over(
        tmp_path: Path, pg_url: str) -> None:
    ws = make_workspace(tmp_path / "ws", database_url=pg_url)
    first, second = Worker(ws, "first"), Worker(ws, "second")
    first.start().wait_for("leader")
    server = TaktServer(ws)
    try:
        server.start()
        assert health(server)["projection"] == {"folds": False, "folded": 0}
        for i in range(5):
            identify_and_read(server, ws, f"u{i}")
        granted = consent_and_decide(server, ws, "u0", "granted")
        assert granted["allowed"] is True and granted["channel"] == "email", granted["reasons"]
        withdrawn = consent_and_decide(server, ws, "u0", "withdrawn")
        assert withdrawn["allowed"] is False, withdrawn
        assert health(server)["projection"]["folded"] == 0  # every read came from the worker's publication

        second.start().wait_for("standby")
        first.kill()  # a crash: PostgreSQL drops its session and its leases
        second.wait_for("leader")
        profile = identify_and_read(server, ws, "after-failover")
        assert profile["traits"]["email"]["value"] == "after-failover@example.com"
        assert consent_and_decide(server, ws, "after-failover", "granted")["allowed"] is True
        h = health(server)
        assert h["projection"] == {"folds": False, "folded": 0}
        assert h["profiles_position"] <= h["log_head"]
    finally:
        server.stop()
        first.kill()
        second.stop()


@pytest.mark.timeout(300)
def test_a_lone_server_folds_and_hands_over_to_a_worker_that_starts(tmp_path: Path, pg_url: str) -> None:
    ws = make_workspace(tmp_path / "ws", database_url=pg_url)
    worker = Worker(ws, "late")
    server = TaktServer(ws)
    try:
        server.start()
        identify_and_read(server, ws, "early")  # a new user's single server folds by itself
        assert health(server)["projection"]["folds"] is True
        worker.start().wait_for("leader")
        wait_until(lambda: health(server)["projection"]["folds"] is False, "the server never handed over")
        folded = health(server)["projection"]["folded"]
        identify_and_read(server, ws, "late-user")
        assert identify_and_read(server, ws, "early")["traits"]["email"]["value"] == "early@example.com"
        assert health(server)["projection"]["folded"] == folded  # nothing folded here since the handover
        worker.stop()  # no worker any more: the server takes the folding back
        wait_until(lambda: health(server)["projection"]["folds"] is True, "the server never took over")
        identify_and_read(server, ws, "alone-again")
    finally:
        server.stop()
        worker.kill()
