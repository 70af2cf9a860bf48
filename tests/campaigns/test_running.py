"""The orchestrator beside a following profile runner: a trigger event appended to the log is sent on the
orchestrator's own thread without anyone calling it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.model import Trigger
from takt.campaigns.running import attach
from takt.events.model import Event
from tests.campaigns.world import Recorder, World, campaign, person_events


def test_a_trigger_event_in_the_live_log_is_sent_by_the_running_orchestrator(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(person_events("ann"))
    rec = Recorder("email")
    c = w.define(campaign("welcome", trigger=Trigger("event", event="Signed Up")))
    w.runner.start()
    orch = attach(w.storage, w.runner, w.settings, Deliveries({"email": rec}),
                  lambda n, v: w.campaigns.get((n, v)), lambda n: c, w.clock, every_s=0.05)
    try:
        orch.launch(c)
        at = w.clock() + timedelta(seconds=1)
        w.storage.log.append([Event(kind="track", message_id="su-1", source="web", timestamp=at, received_at=at,
                                    user_id="ann", event="Signed Up")])
        w.runner.notify()
        deadline = time.monotonic() + 20
        while not rec.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m.contact_point for m in rec.sent] == ["ann@example.com"]
    finally:
        orch.stop()
        w.runner.stop()
        w.close()
