"""An unsubscribe acknowledged while a throttled campaign is still sending stops every later message to that
person; every marketing email carries the RFC 8058 headers (a real SMTP server in this process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from takt.campaigns.unsubscribe_headers import one_click_headers
from takt.events.model import Event
from takt.policy.consent import CONSENT
from tests.campaigns.smtp_channel import TestSmtp
from tests.campaigns.test_crash import free_port
from tests.campaigns.world import World, campaign, person_events

PEOPLE = 20


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.on_message: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        if self.on_message is not None:
            self.on_message(len(self.messages))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def _withdrawal(uid: str, at: Any) -> Event:
    return Event(kind=CONSENT, message_id=f"unsub-{uid}", source="takt.unsubscribe", timestamp=at, received_at=at,
                 provenance="customer_provided", user_id=uid,
                 properties={"purpose": "marketing", "channel": "email", "contact_point": f"{uid}@example.com",
                             "status": "withdrawn", "actor": "customer",
                             "evidence": {"method": "unsubscribe_link"}})


def test_unsubscribe_while_a_throttled_campaign_sends_stops_later_messages(tmp_path: Path,
                                                                          smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    w = World(tmp_path)
    w.add([e for i in range(PEOPLE) for e in person_events(f"p{i:02d}")])
    last = max(w.runner.projector.profiles())
    target = next(i.partition(":")[2] for i in w.runner.projector.identity.clusters[last].identifiers
                  if i.startswith("user_id:"))
    acknowledged = threading.Event()

    def unsubscribe_after(n: int) -> None:
        if n == 3 and not acknowledged.is_set():
            # as POST /v1/unsubscribe/{token} does: the withdrawal is in the log and folded before the answer
            threading.Thread(target=lambda: (w.storage.log.append([_withdrawal(target, w.clock())]),
                                             w.runner.catch_up(), acknowledged.set())).start()

    sink.on_message = unsubscribe_after
    # one chunk: decided together before the first leaves, so the target's decision is taken again at its send
    orch = w.orchestrator([TestSmtp(port, per_message_s=0.05)], threads=1, chunk=PEOPLE,
                          headers=one_click_headers(w.storage, w.settings, "https://shop.example"))
    orch.launch(w.define(campaign("throttled")))
    orch.start(every_s=0.05)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if acknowledged.is_set() and len(sink.messages) >= PEOPLE - 1 and orch.run_once().sent == 0:
                break
            time.sleep(0.05)
    finally:
        orch.stop()
    recipients = [m["To"] for m in sink.messages]
    assert acknowledged.is_set()
    assert f"{target}@example.com" not in recipients
    assert len(recipients) == len(set(recipients)) == PEOPLE - 1
    for m in sink.messages:
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert m["List-Unsubscribe"].startswith("<https://shop.example/v1/unsubscribe/")
    statuses = orch.runs.status_of
    from takt.campaigns.model import message_id

    assert statuses(message_id("throttled", 1, "0", last)) == "skipped"
    w.close()
