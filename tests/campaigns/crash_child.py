"""The sending process of the crash test: opens the workspace, launches the campaign unless it is launched,
and runs the orchestrator until nothing is due. Run as ``python -m tests.campaigns.crash_child PATH PORT``."""

from __future__ import annotations

import sys
from pathlib import Path

from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.orchestrator import Orchestrator
from takt.clock import FixedClock
from takt.policy.config import PolicySettings
from takt.policy.suppression_store import suppression_key
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from tests.campaigns.smtp_channel import TestSmtp
from tests.campaigns.world import T0, campaign

THREADS = 4
CHUNK = 32
"""Messages claimed together: the most that can be in flight at a kill."""


def main(path: str, port: int) -> None:
    storage = DuckDBStorage(Path(path))
    settings = load(None, env={})
    clock = FixedClock(T0)
    runner = ProfileRunner(storage, ProfileConfig.from_settings(settings), clock)
    runner.catch_up()
    c = campaign("crash", message={"email": {"subject": "Hi", "text": "Hi {{ traits.firstName }}"}})
    policy = PolicySettings.from_settings(settings, suppression_key(storage))
    orch = Orchestrator(storage, runner, Deliveries({"email": TestSmtp(port)}), policy,
                        lambda n, v: c if (n, v) == (c.name, c.version) else None, clock, threads=THREADS,
                        chunk=CHUNK)
    orch.refresh()
    if "crash" not in orch.runs.runs:
        orch.launch(c)
    print("started", flush=True)
    while True:
        r = orch.run_once()
        if not (r.sent or r.enrolled or r.advanced or r.skipped or r.unknown or r.failed):
            break
    orch.stop()
    storage.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
