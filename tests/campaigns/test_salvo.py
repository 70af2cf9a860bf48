"""The salvo story (issue 14): one message on the channel the person prefers, and a weekly budget that holds
across three campaigns, each skip with its reason codes recorded in the log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from takt.campaigns.events import CAMPAIGN_STEP
from takt.campaigns.model import Send, Wait
from takt.policy.messages import MESSAGE
from tests.campaigns.world import ALL, Recorder, World, campaign, person_events


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def _channels() -> list[Recorder]:
    return [Recorder(n) for n in ("email", "sms", "phone", "push", "in_app")]


def test_a_five_channel_campaign_sends_one_message_on_the_preferred_channel(world: World) -> None:
    world.add(person_events("ada", phone=True, preferred="sms",
                            consent_on=("email", "sms", "phone", "push", "in_app")))
    chans = _channels()
    orch = world.orchestrator(chans)
    orch.launch(world.define(campaign("salvo", channels=("email", "push", "sms", "phone", "in_app"), message=ALL)))
    report = orch.run_once()
    orch.run_once()  # a second pass sends nothing more
    sent = [(c.name, m) for c in chans for m in c.sent]
    assert [name for name, _ in sent] == ["sms"], report
    assert sent[0][1].content == {"text": "Hi Ada"}
    attempted = [s.event.properties for s in world.storage.log.read(0) if s.event.kind == MESSAGE]
    assert [(p["status"], p["channel"]) for p in attempted] == [("attempted", "sms"), ("sent", "sms")]


def test_without_a_preference_the_first_usable_channel_in_the_fixed_order_and_one_click_headers(
        world: World) -> None:
    world.add(person_events("bea", phone=True, consent_on=("email", "sms")))
    chans = _channels()
    orch = world.orchestrator(chans, headers=lambda pid, ch, cp: {"List-Unsubscribe": f"<https://x/{pid}>",
                                                                  "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    orch.launch(world.define(campaign("salvo", channels=("sms", "email"), message=ALL)))
    orch.run_once()
    (email,) = chans[0].sent
    assert not chans[1].sent
    assert email.contact_point == "bea@example.com"
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.headers["List-Unsubscribe"].startswith("<https://x/")


def test_three_campaigns_in_one_week_share_the_budget_priority_decides_and_skips_have_reasons(
        world: World) -> None:
    world.add(person_events("ada", consent_on=("email",)))
    email = Recorder("email")
    orch = world.orchestrator([email])
    steps = (Send(), Wait(timedelta(days=1)), Send(), Wait(timedelta(days=1)), Send(), Wait(timedelta(days=1)),
             Send(), Wait(timedelta(days=1)), Send())
    for name, prio in (("low", 10), ("high", 90), ("mid", 50)):
        orch.launch(world.define(campaign(name, priority=prio, steps=steps)))
    for _ in range(6):  # a week of daily passes
        world.runner.catch_up()
        orch.run_once()
        world.clock.advance(days=1)
    assert [m.campaign for m in email.sent] == ["high", "high", "high"]  # 1 a day, 3 a week (the defaults)
    skips = [s.event.properties for s in world.storage.log.read(0)
             if s.event.kind == CAMPAIGN_STEP and s.event.properties["outcome"] == "skipped"]
    assert {p["campaign"] for p in skips} == {"low", "mid", "high"}
    assert all(p["reasons"] for p in skips)
    first_day = {p["campaign"]: p["reasons"] for p in skips if p["step"] == "0"}
    assert first_day == {"low": ["daily_limit"], "mid": ["daily_limit"]}
    assert any("budget_exhausted" in p["reasons"] for p in skips)


def test_quiet_hours_defer_the_send_to_their_end_even_when_another_channel_is_unusable(world: World) -> None:
    world.add(person_events("cem", consent_on=("email",)))  # no phone: sms is unusable for other reasons
    email = Recorder("email")
    orch = world.orchestrator([email, Recorder("sms")])
    world.clock.now = world.clock.now.replace(hour=22, minute=30)  # quiet from 21:00 to 08:00 UTC
    orch.launch(world.define(campaign("late", channels=("email", "sms"), message=ALL)))
    report = orch.run_once()
    assert report.deferred == 1 and report.skipped == 0 and email.sent == []
    world.clock.now = world.clock.now.replace(hour=23)
    orch.run_once()
    assert email.sent == []
    world.clock.advance(hours=9, minutes=5)  # 08:05 the next morning
    orch.run_once()
    assert [m.contact_point for m in email.sent] == ["cem@example.com"]


def test_pause_during_a_slow_pass_stops_its_further_chunks_and_resume_sends_the_rest(world: World) -> None:
    import threading
    import time

    world.add([e for i in range(40) for e in person_events(f"q{i:02d}")])
    email = Recorder("email", before_send=lambda m: time.sleep(0.03))
    orch = world.orchestrator([email], threads=1, chunk=4)
    orch.launch(world.define(campaign("slow")))
    passing = threading.Thread(target=orch.run_once)
    passing.start()
    while len(email.sent) < 5:
        time.sleep(0.005)
    assert orch.control("slow", "pause").status == "paused"  # returns once the pass let go
    passing.join()
    paused_at = len(email.sent)
    assert paused_at < 40
    orch.run_once()
    assert len(email.sent) == paused_at  # paused: nothing moves
    orch.control("slow", "resume")
    orch.run_once()
    assert sorted(m.profile_id for m in email.sent) == sorted(set(m.profile_id for m in email.sent))
    assert len(email.sent) == 40
