"""kill -9 of the sending process in the middle of a 2,000-person campaign, then a restart (issue 14, Done
when): nobody receives two copies, everyone never attempted receives one, unknown outcomes ≤ messages in
flight at the kill. The messages go through a real SMTP server in this process (aiosmtpd)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from takt.campaigns.runs import Runs
from takt.storage.duckdb import DuckDBStorage
from tests.campaigns import crash_child
from tests.campaigns.world import T0, person_events

PEOPLE = 2_000


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        text = envelope.content.decode("utf8", errors="replace")
        mid = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.lower().startswith("message-id:")), "")
        with self.lock:
            self.received.extend((rcpt, mid) for rcpt in envelope.rcpt_tos)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(path: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", crash_child.__name__, str(path), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_campaign_then_restart_sends_each_message_at_most_once(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    storage = DuckDBStorage(path)
    events = [e for i in range(PEOPLE) for e in person_events(f"p{i:04d}", at=T0)]
    storage.log.append(events)
    storage.close()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = _child(path, port)
        deadline = time.monotonic() + 300
        while len(sink.received) < PEOPLE // 4 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = len(sink.received)
        assert 0 < at_kill < PEOPLE
        second = _child(path, port)
        out, err = second.communicate(timeout=600)
        assert second.returncode == 0, err
    finally:
        controller.stop()

    per_person = Counter(rcpt for rcpt, _ in sink.received)
    assert max(per_person.values()) == 1, [p for p, n in per_person.items() if n > 1][:5]
    assert len({mid for _, mid in sink.received}) == len(sink.received)
    storage = DuckDBStorage(path)
    runs = Runs()
    runs.apply_all(storage.log.read(0, limit=1_000_000))
    storage.close()
    statuses = Counter(runs.status_of(m) for m in runs.messages)
    unknown = statuses["unknown"]
    assert unknown <= crash_child.CHUNK, statuses
    # everyone never attempted before the kill got one: all but the unknowns received exactly one message
    assert len(per_person) >= PEOPLE - unknown
    assert statuses["sent"] + unknown == PEOPLE, statuses
    assert all(e.next is None for e in runs.of_campaign("crash"))
