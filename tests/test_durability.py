"""Crash durability: sustained batch traffic at a live ``takt serve`` that is killed with SIGKILL several times
and restarted on the same workspace. Clients retry every unacknowledged batch with the same messageIds until
it is acknowledged. Afterwards every acknowledged event is in the log exactly once, and nothing else is."""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
import urllib.error
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.support.server import TaktServer, basic_auth, export_events, make_workspace

CLIENTS = 3
BATCH = 100
KILLS = 4
DEADLINE = 150.0  # seconds: a bound on the whole run so a hang fails instead of waiting forever

_PG_BACKEND = bool(os.environ.get("TAKT_TEST_POSTGRES_URL")) and (
    Path(__file__).resolve().parents[1] / "src" / "takt" / "storage" / "postgres.py").exists()
BACKENDS = ["duckdb", *(["postgres"] if _PG_BACKEND else [])]


class Traffic:
    """Client threads sending batches; each batch is retried (same messageIds) until acknowledged."""

    def __init__(self, server: TaktServer, seed: int):
        self.server = server
        self.headers = {**basic_auth(server.workspace.write_key), "Content-Type": "application/json"}
        self.lock = threading.Lock()
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.retries = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.deadline = time.monotonic() + DEADLINE
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self._client, args=(c,), name=f"client-{c}", daemon=True)
                        for c in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _client(self, cid: int) -> None:
        seq = 0
        while not self.stop.is_set() and not self.errors:
            ids = [f"c{cid}-b{seq}-e{i}" for i in range(BATCH)]
            body = orjson.dumps({"batch": [
                {"type": "track", "userId": f"user-{cid}-{i % 7}", "event": "Durable", "messageId": mid,
                 "properties": {"client": cid, "batch": seq, "i": i}} for i, mid in enumerate(ids)]})
            with self.lock:
                self.sent.extend(ids)
            if not self._deliver(body):
                return
            with self.lock:
                self.acked.extend(ids)
            seq += 1

    def _deliver(self, body: bytes) -> bool:
        """Send until acknowledged; False on a refusal (a test failure) or past the deadline."""
        attempt = 0
        while time.monotonic() < self.deadline:
            if attempt:
                with self.lock:
                    self.retries += 1
                time.sleep(min(0.02 * attempt, 0.2))
            attempt += 1
            try:
                status, answer = self.server.post("/v1/batch", body, self.headers, timeout=15)
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
                continue  # down, restarting, or the connection died with the server: retry
            if status == 200 and answer == {"success": True}:
                return True
            if status in (429, 503):
                continue
            self.errors.append(f"unexpected answer {status}: {answer}")
            return False
        self.errors.append("deadline passed with a batch still unacknowledged")
        return False

    def wait_for_acks(self, more: int) -> None:
        """Block until ``more`` further events are acknowledged (progress, not time)."""
        target = self.acked_count() + more
        while self.acked_count() < target:
            assert not self.errors, self.errors
            assert time.monotonic() < self.deadline, "no progress before the deadline"
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(max(1.0, self.deadline - time.monotonic()))
            assert not t.is_alive(), "a client is stuck"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_events_survive_sigkill(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    ws = make_workspace(tmp_path / "ws", database_url=database_url)
    seed = random.randrange(1 << 30)
    print(f"durability seed {seed}")
    server = TaktServer(ws).start()
    traffic = Traffic(server, seed)
    traffic.start()
    try:
        for _ in range(KILLS):
            # Kill at a random moment once traffic is flowing: mid-request, mid-commit, between batches.
            traffic.wait_for_acks(traffic.rng.randrange(1, 8) * BATCH)
            time.sleep(traffic.rng.uniform(0.0, 0.3))
            server.kill()
            time.sleep(traffic.rng.uniform(0.0, 0.2))
            server.start()
        traffic.wait_for_acks(3 * CLIENTS * BATCH)  # it keeps working after the last restart
        traffic.finish()
    finally:
        traffic.stop.set()
        server.stop()
    assert not traffic.errors, traffic.errors
    assert server.starts >= KILLS + 1

    log = export_events(ws)
    counts = Counter(r["messageId"] for r in log)
    twice = [m for m, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} messageIds stored more than once, e.g. {twice[:5]}"
    missing = set(traffic.acked) - set(counts)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert set(counts) == set(traffic.sent), "the log holds events that were never sent"
    assert len(log) == len(set(traffic.sent)) == len(traffic.acked)
    assert all(r["source"] == ws.source and r["type"] == "track" for r in log)
    print(f"{len(log)} events, {server.starts} starts, {traffic.retries} retried requests")
