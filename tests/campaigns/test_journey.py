"""A triggered journey on a simulated clock: interest_shifted → send → wait → branch on a click → a second
message; the state rebuilds from the log alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from takt.campaigns.events import CAMPAIGN_ENROLLED, CAMPAIGN_STEP
from takt.campaigns.model import Branch, ExitIf, Send, Template, Trigger, Wait, WaitUntil
from takt.campaigns.orchestrator import in_holdout
from takt.campaigns.runs import Runs
from takt.events.model import Event
from tests.campaigns.world import Recorder, World, campaign, person_events
from tests.profiles.helpers import CONFIG, search

OCT = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
NOV = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)


def _msg(subject: str) -> dict[str, Template]:
    return {"email": Template({"subject": subject, "text": subject + ", {{ traits.firstName }}"})}


def _click(uid: str, at: datetime) -> Event:
    return Event(kind="track", message_id=f"click-{uid}", source="web", timestamp=at, received_at=at,
                 provenance="observed", user_id=uid, event="Email Link Clicked",
                 properties={"campaign": "ny-journey"})


def _world(tmp_path: Path) -> World:
    w = World(tmp_path, now=NOV, config=CONFIG)
    for uid in ("clicker", "ignorer"):
        w.add([*person_events(uid, at=OCT),
               *[search(100 + i, "beach hotels Krabi", OCT + timedelta(days=7 * i), user_id=uid,
                        message_id=f"k-{uid}-{i}") for i in range(4)]])
    return w


JOURNEY = (
    Send(),
    Wait(timedelta(days=2)),
    Branch('count(track "Email Link Clicked") >= 1',
           then=(Send(_msg("Your New York picks")),),
           otherwise=(ExitIf('trait.firstName = "Nobody"'), Send(_msg("Still thinking of New York?")))),
)


def test_interest_shifted_wait_branch_on_click_second_message(tmp_path: Path) -> None:
    w = _world(tmp_path)
    email = Recorder("email")
    orch = w.orchestrator([email])
    c = w.define(campaign("ny-journey", trigger=Trigger("event", event="interest_shifted",
                                                       where='top_interest = "destination:new-york"'),
                          steps=JOURNEY))
    c = w.define(replace(c, message=_msg("New York?")))
    orch.launch(c)
    # both shift to New York
    for uid in ("clicker", "ignorer"):
        w.add([search(200 + i, "flights to New York", NOV + timedelta(hours=i), user_id=uid,
                      message_id=f"n-{uid}-{i}") for i in range(5)])
    w.clock.now = NOV + timedelta(hours=6)
    orch.run_once()
    assert sorted(m.content["subject"] for m in email.sent) == ["New York?", "New York?"]
    w.clock.advance(days=1)
    w.add([_click("clicker", w.clock.now)])
    orch.run_once()
    assert len(email.sent) == 2  # still waiting
    w.clock.advance(days=1, hours=1)
    w.runner.catch_up()
    orch.run_once()
    by_person = {(m.profile_id, m.content["subject"]) for m in email.sent[2:]}
    subjects = sorted(s for _, s in by_person)
    assert subjects == ["Still thinking of New York?", "Your New York picks"], email.sent
    assert len({m.message_id for m in email.sent}) == 4
    # a second pass, and a fresh orchestrator replaying the log, send nothing more
    orch.run_once()
    again = w.orchestrator([email])
    again.run_once()
    assert len(email.sent) == 4
    runs = Runs()
    runs.apply_all(w.storage.log.read(0, limit=100_000))
    assert all(e.next is None for e in runs.of_campaign("ny-journey"))
    kinds = [s.event.kind for s in w.storage.log.read(0, limit=100_000)]
    assert kinds.count(CAMPAIGN_ENROLLED) == 2 and kinds.count(CAMPAIGN_STEP) >= 8
    w.close()


def test_wait_until_times_out_and_holdout_is_deterministic(tmp_path: Path) -> None:
    w = _world(tmp_path)
    email = Recorder("email")
    orch = w.orchestrator([email])
    steps = (WaitUntil('count(track "Email Link Clicked") >= 1', timedelta(days=3)), Send())
    orch.launch(w.define(campaign("patient", steps=steps)))
    orch.run_once()
    w.clock.advance(days=2)
    orch.run_once()
    assert email.sent == []
    w.clock.advance(days=1, minutes=1)
    orch.run_once()
    assert len(email.sent) == 2
    shares = [in_holdout("c", f"p{i}", 0.1) for i in range(5_000)]
    assert 0.08 < sum(shares) / len(shares) < 0.12
    assert shares == [in_holdout("c", f"p{i}", 0.1) for i in range(5_000)]
    w.close()


def test_a_scheduled_campaign_enrols_at_each_cron_time_in_its_time_zone(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.clock.now = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin
    email = Recorder("email")
    orch = w.orchestrator([email])
    orch.launch(w.define(campaign("weekly", trigger=Trigger("schedule", cron="0 9 * * MON",
                                                            timezone="Europe/Berlin"))))
    orch.run_once()
    assert email.sent == []  # 09:00 Berlin is 08:00 UTC: not yet
    w.clock.now = datetime(2026, 11, 9, 8, 0, 1, tzinfo=UTC)
    orch.run_once()
    assert len(email.sent) == 2
    w.clock.advance(days=7)
    orch.run_once()
    assert len(email.sent) == 2  # one enrolment per person and version: the next Monday enrols only newcomers
    w.close()


def test_segment_entered_enrols_whoever_enters_after_the_launch(tmp_path: Path) -> None:
    from takt.segments.live import SEGMENT_ENTERED, membership_event

    w = _world(tmp_path)
    email = Recorder("email")
    orch = w.orchestrator([email])
    pids = sorted(w.runner.projector.profiles())
    before = membership_event(SEGMENT_ENTERED, "vip", 1, pids[0], w.clock(), {"definition": "a"})
    w.add([before])  # entered before the launch: not a trigger
    orch.launch(w.define(campaign("vip-welcome", trigger=Trigger("segment_entered", segment="vip"))))
    w.add([membership_event(SEGMENT_ENTERED, "other", 1, pids[0], w.clock(), {"definition": "b"}),
           membership_event(SEGMENT_ENTERED, "vip", 1, pids[1], w.clock(), {"definition": "c"})])
    orch.run_once()
    assert [m.profile_id for m in email.sent] == [pids[1]]
    w.close()
