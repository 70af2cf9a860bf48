"""The campaign orchestrator: enrols people when a campaign's trigger fires, walks them through its steps on the
injected clock, and sends each message exactly once or not at all, through ``decide`` at the moment it leaves.

**State from the log.** Everything it knows is :class:`~takt.campaigns.runs.Runs`, folded from the log
(:mod:`takt.campaigns.events`); :meth:`Orchestrator.refresh` reads what was appended since. A restart replays
the log and continues.

**One pass** (:meth:`Orchestrator.run_once`): read the log's new events (lifecycle, enrolments, trigger
events), enrol (``now``: the audience at launch; ``event``/``segment_entered``: whoever the new events name;
``schedule``: the audience at each cron occurrence), advance every due person (wait, wait_until, branch,
exit_if), then send the due messages highest campaign ``priority`` first, one person at a time per chunk, so
that with several campaigns wanting the same person the contact budget (shared, read by ``decide``) goes to
the most important one and the others' skips record ``budget_exhausted`` or ``daily_limit``.

**Exactly one or none.** A message's id is :func:`~takt.campaigns.model.message_id`. Before the channel is
called, a ``message`` event ``attempted`` is appended (its log id ``<id>:attempted``: the log stores it once,
so only the process whose append stored it sends) — durable before anything leaves. After the channel
answers, ``sent``/``failed`` and the person's step are appended. A message attempted without an outcome that
this process is not sending is ``unknown``: reported (a step with outcome ``unknown``) and never sent again.

**Decide at the moment.** The person's facts are read from the runner's published state right before the
send (with the suppression list as it is then), plus the messages this process attempted that the projection
has not folded yet — so an unsubscribe acknowledged before the send stops it, and two campaigns in one pass
share one budget. Quiet hours defer the send to their end instead of dropping it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from takt.campaigns import events as ce
from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.journey import after, first_of, step_at
from takt.campaigns.model import (
    Branch,
    Campaign,
    DeliveryResult,
    ExitIf,
    OutboundMessage,
    Send,
    Wait,
    WaitUntil,
    message_id,
)
from takt.campaigns.people import People
from takt.campaigns.rendering import Renderer, jinja_renderer
from takt.campaigns.runs import Enrolment, Run, Runs
from takt.campaigns.unsubscribe_headers import Headers
from takt.clock import Clock
from takt.errors import TaktError
from takt.events.model import Event, StoredEvent
from takt.policy.config import PolicySettings
from takt.policy.decide import Decision, Intent, decide
from takt.policy.from_profile import PersonFacts
from takt.policy.messages import MessageRecord
from takt.policy.pressure import in_quiet_hours
from takt.profiles.state import ProfileState
from takt.segments.live import SEGMENT_ENTERED

log = logging.getLogger(__name__)

CampaignSource = Callable[[str, int], Campaign | None]
"""(name, version) → the campaign document as a value (the campaign store; a dict's ``get`` in tests)."""

LEASE_NAME = "campaigns"
READ_PAGE = 10_000
QUIET_STEP = timedelta(minutes=15)
RETRY_AFTER = timedelta(minutes=1)


def in_holdout(campaign: str, profile_id: str, share: float) -> bool:
    """Deterministic: the same (campaign, person) is always in or out, and about ``share`` of people are in."""
    if share <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(f"holdout\x00{campaign}\x00{profile_id}".encode()).digest()[:8], "big")
    return h / 2**64 < share


@dataclass(slots=True)
class _Due:
    run: Run
    campaign: Campaign
    enrolment: Enrolment
    path: str
    step: Send


@dataclass(slots=True)
class _Outcome:
    kind: str
    """``sent``, ``failed``, ``skipped``, ``deferred`` or ``unknown`` (a :class:`PassReport` field)."""
    events: list[Event]
    codes: tuple[str, ...] = ()


@dataclass(slots=True)
class _Ready:
    out: OutboundMessage
    link: dict[str, Any]
    retry: bool
    """The channel deferred it before: already claimed, known not sent."""
    next: str | None
    serial: int
    version: int
    why: list[str]
    decided: float = 0.0
    """``time.monotonic()`` of the decision: older than ``recheck_s`` at the send, it is taken again."""


@dataclass(slots=True)
class PassReport:
    enrolled: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    unknown: int = 0
    advanced: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Orchestrator:
    def __init__(self, storage: Any, runner: Any, deliveries: Deliveries, policy: PolicySettings,
                 campaigns: CampaignSource, clock: Clock, *, render: Renderer = jinja_renderer,
                 headers: Headers | None = None, threads: int = 4, chunk: int | None = None,
                 recheck_s: float = 0.25, latest: Callable[[str], Campaign | None] | None = None) -> None:
        self.storage = storage
        self.runner = runner
        self.deliveries = deliveries
        self.policy = policy
        self.campaigns = campaigns
        self.clock = clock
        self.render = render
        self.headers = headers
        self.threads = max(1, threads)
        self.chunk = chunk or self.threads * 8
        """Messages claimed (``attempted``) together in one transaction: at most this many are in flight."""
        self.nonce = secrets.token_hex(8)
        self.recheck_s = recheck_s
        self.latest = latest
        """name → the campaign's newest version (what ``launch`` by name launches)."""
        self.people = People(storage, runner)
        self.runs = Runs()
        self._triggers: list[StoredEvent] = []
        self._recent: dict[str, dict[str, MessageRecord]] = {}
        """Messages this process attempted, per person, until the projection folds them (budget)."""
        self._in_flight: set[str] = set()
        self._halt: set[str] = set()
        """Campaigns being paused or stopped: a pass under way leaves their sends due."""
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="takt-campaign-send")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the log ----
    def refresh(self) -> None:
        """Fold what the log holds after the last read; keep new events that may fire a trigger."""
        while True:
            batch = self.storage.log.read(after=self.runs.position, limit=READ_PAGE)
            if not batch:
                return
            for stored in batch:
                self.runs.apply(stored)
                if stored.event.source != ce.SOURCE and self._may_trigger(stored):
                    self._triggers.append(stored)
            if len(batch) < READ_PAGE:
                return

    def _may_trigger(self, stored: StoredEvent) -> bool:
        """Whether a running campaign launched before this event triggers on its name (only those are kept
        for the next enrolment, not the whole log a restart reads)."""
        ev = stored.event
        for run in self.runs.runs.values():
            if run.status == "stopped" or stored.position <= run.launched_position:
                continue
            c = self.campaigns(run.name, run.version)
            if c is None:
                continue
            t = c.trigger
            if t.on == "segment_entered" and ev.kind == SEGMENT_ENTERED:
                return True
            if t.on == "event" and (ev.event == t.event or (ev.kind == t.event and ev.event is None)):
                return True
        return False

    def _append(self, events: list[Event]) -> Any:
        return self.storage.log.append(events) if events else None

    def campaign_of(self, run: Run) -> Campaign:
        c = self.campaigns(run.name, run.version)
        if c is None:
            raise TaktError(f"campaign {run.name!r} version {run.version} is not in the campaign store",
                            code="campaign_not_found", status=404)
        return c

    # ---- lifecycle ----
    def launch(self, campaign: Campaign) -> None:
        with self._lock:
            self.refresh()
            run = self.runs.runs.get(campaign.name)
            if run is not None and run.status != "stopped" and run.version == campaign.version:
                raise TaktError(f"campaign {campaign.name!r} version {campaign.version} is already {run.status}",
                                code="campaign_already_launched", status=409)
            serial = run.serial if run else 0
            self._append([ce.lifecycle(campaign.name, campaign.version, "launched", self.clock(), serial)])
            self.refresh()
        self._wake.set()

    def launch_named(self, name: str, version: int | None = None) -> Run:
        """Launch the campaign store's ``version`` of ``name`` (its newest without one)."""
        c = self.campaigns(name, version) if version is not None else (self.latest(name) if self.latest else None)
        if c is None:
            raise TaktError(f"no campaign {name!r}" + (f" version {version}" if version else ""),
                            code="campaign_not_found", status=404)
        self.launch(c)
        return self.runs.runs[name]

    def control(self, name: str, action: str) -> Run:
        """``pause``, ``resume`` or ``stop`` a launched campaign."""
        allowed = {"pause": ("running",), "resume": ("paused",), "stop": ("running", "paused")}
        if action not in allowed:
            raise TaktError(f"unknown action {action!r}", code="invalid_request")
        if action != "resume":
            self._halt.add(name)  # a pass under way sends no further chunk of this campaign
        try:
            return self._control(name, action, allowed[action])
        finally:
            self._halt.discard(name)

    def _control(self, name: str, action: str, allowed: tuple[str, ...]) -> Run:
        with self._lock:
            self.refresh()
            run = self.runs.runs.get(name)
            if run is None:
                raise TaktError(f"campaign {name!r} was never launched", code="campaign_not_launched", status=409)
            if run.status not in allowed:
                raise TaktError(f"campaign {name!r} is {run.status}: it cannot {action}",
                                code="campaign_state", status=409)
            past = {"pause": "paused", "resume": "resumed", "stop": "stopped"}[action]
            self._append([ce.lifecycle(name, run.version, past, self.clock(), run.serial)])
            self.refresh()
        self._wake.set()
        return self.runs.runs[name]

    # ---- one pass ----
    def run_once(self, now: datetime | None = None) -> PassReport:
        """Enrol, advance and send what is due at ``now`` (the clock's time by default)."""
        report = PassReport()
        if not self.storage.try_lease(LEASE_NAME):
            return report  # another process orchestrates
        with self._lock:
            now = now or self.clock()
            self.refresh()
            self._enrol(now, report)
            self.refresh()
            for _ in range(20):  # after a send, the next steps (a wait starts then) in the same pass
                due = self._advance(now, report)
                if all(d.run.name in self._halt for d in due):
                    break
                self._send(due, now, report)
                self.refresh()
        return report

    # ---- enrolment ----
    def _enrol(self, now: datetime, report: PassReport) -> None:
        triggers, self._triggers = self._triggers, []
        out: list[Event] = []
        seen: set[tuple[str, str]] = set()
        for run in list(self.runs.runs.values()):
            if run.status == "stopped":
                continue
            campaign = self.campaign_of(run)
            kind = campaign.trigger.on
            if kind == "now" and not run.audience_done:
                for pid in self._audience(campaign, run.launched_at):
                    out.extend(self._enrolment(run, campaign, pid, run.launched_at, {"launch": run.launched_position},
                                               seen))
                out.append(ce.lifecycle(run.name, run.version, "audience_enrolled", now, -run.launched_position))
            elif kind in ("event", "segment_entered"):
                for stored in triggers:
                    if stored.position <= run.launched_position:
                        continue
                    who = self._triggered(campaign, stored, now)
                    if who is not None:
                        out.extend(self._enrolment(run, campaign, who, now, {"position": stored.position}, seen))
            elif kind == "schedule":
                out.extend(self._scheduled(run, campaign, now, seen))
        report.enrolled += sum(1 for e in out if e.kind == ce.CAMPAIGN_ENROLLED)
        for i in range(0, len(out), 5_000):
            self._append(out[i:i + 5_000])

    def _enrolment(self, run: Run, campaign: Campaign, pid: str | ProfileState, at: datetime,
                   cause: Mapping[str, Any], seen: set[tuple[str, str]]) -> list[Event]:
        """``pid``: a profile id, or the profile's state when the caller has it (the audience read in bulk)."""
        key = (run.name, pid if isinstance(pid, str) else pid.id)
        old = self.runs.enrolments.get(key)
        if key in seen or (old is not None and old.version == run.version):
            return []  # one enrolment per person and campaign version
        state = self.people.state(pid) if isinstance(pid, str) else pid
        if state is None:
            return []
        seen.add(key)
        try:
            link = self.people.link(state)
        except TaktError as e:
            log.warning("campaign %s: cannot enrol %s: %s", run.name, pid, e)
            return []
        return [ce.enrolled(run.name, run.version, state.id, in_holdout(run.name, state.id, campaign.holdout),
                            at, cause, link)]

    def _audience(self, campaign: Campaign, at: datetime) -> list[str] | list[ProfileState]:
        """The campaign's audience at ``at``: the saved segment's live members, or everyone matching the
        expression."""
        aud = campaign.audience
        if aud.segment is not None:
            from takt.segments.live import attached

            live = attached(self.storage)
            if live is None:
                raise TaktError(f"segment {aud.segment!r} is not kept live here", code="segment_not_live",
                                status=409)
            return sorted(live.members(aud.segment))
        with self.runner.lock:
            states = [ProfileState.from_dict(s.to_dict()) for s in self.runner.projector.states()]
        self.people.prefetch_identity([s.id for s in states])
        expression = aud.expression
        return [s for s in states
                if len(s.positions) and (expression is None or self.people.matches(s, expression, at))]

    def _triggered(self, campaign: Campaign, stored: StoredEvent, now: datetime) -> str | None:
        trig = campaign.trigger
        ev = stored.event
        if trig.on == "segment_entered":
            if ev.kind != SEGMENT_ENTERED or ev.properties.get("segment") != trig.segment:
                return None
        elif not (ev.event == trig.event or (ev.kind == trig.event and ev.event is None)):
            return None
        pid = ev.properties.get("profile_id") if isinstance(ev.properties.get("profile_id"), str) else None
        if pid is None:
            ref = f"user_id:{ev.user_id}" if ev.user_id else f"anonymous_id:{ev.anonymous_id}" \
                if ev.anonymous_id else None
            entry = self.runner.entry(ref) if ref else None
            pid = entry.state.id if entry is not None else None
        if pid is None:
            return None
        old = self.runs.enrolments.get((campaign.name, str(pid)))
        if old is not None and old.version == campaign.version:
            return None  # enrolled already (a restart reads the trigger again)
        if trig.where:
            state = self.people.state(pid)
            if state is None or not self.people.matches(state, trig.where, now):
                return None
        if not self._in_audience(campaign, pid, now):
            return None
        return str(pid)

    def _in_audience(self, campaign: Campaign, pid: str, now: datetime) -> bool:
        aud = campaign.audience
        if aud.segment is not None:
            from takt.segments.live import attached

            live = attached(self.storage)
            return live is not None and pid in live.members(aud.segment)
        if not aud.expression:
            return True
        state = self.people.state(pid)
        return state is not None and self.people.matches(state, aud.expression, now)

    def _scheduled(self, run: Run, campaign: Campaign, now: datetime, seen: set[tuple[str, str]]) -> list[Event]:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        tz = ZoneInfo(campaign.trigger.timezone or "UTC")
        it = croniter(campaign.trigger.cron or "0 9 * * *", run.launched_at.astimezone(tz))
        out: list[Event] = []
        for _ in range(1_000):
            at = it.get_next(datetime).astimezone(UTC)
            if at > now:
                break
            marker = ce.lifecycle(run.name, run.version, "scheduled", at, int(at.timestamp()))
            if self.storage.log.contains(ce.SOURCE, marker.message_id):
                continue
            for pid in self._audience(campaign, at):
                out.extend(self._enrolment(run, campaign, pid, at, {"schedule": at.isoformat()}, seen))
            out.append(marker)
        return out

    # ---- advancing ----
    def _advance(self, now: datetime, report: PassReport) -> list[_Due]:
        due: list[_Due] = []
        queued: set[int] = set()
        for _ in range(50):  # a journey of steps that take no time advances in one pass
            events: list[Event] = []
            for e in list(self.runs.enrolments.values()):
                run = self.runs.runs.get(e.campaign)
                if run is None or run.status != "running" or e.version != run.version or e.next is None:
                    continue
                if e.wake is not None and e.wake > now:
                    continue
                campaign = self.campaign_of(run)
                step = step_at(campaign.steps, e.next)
                if step is None:
                    continue
                if isinstance(step, Send):
                    if id(e) not in queued:
                        queued.add(id(e))
                        due.append(_Due(run, campaign, e, e.next, step))
                    continue
                ev = self._move(campaign, e, e.next, step, now)
                if ev is not None:
                    events.append(ev)
            if not events:
                break
            report.advanced += len(events)
            self._append(events)
            self.refresh()
        return due

    def _move(self, campaign: Campaign, e: Enrolment, path: str, step: Any, now: datetime) -> Event | None:
        state = self.people.state(e.profile_id)
        if state is None:
            return None
        link = self.people.link(state)

        def ev(outcome: str, nxt: str | None, wake: datetime | None = None, until: datetime | None = None
               ) -> Event:
            return ce.step(e.campaign, e.version, e.profile_id, path, outcome, now, link, next_path=nxt,
                           wake=wake, until=until, serial=e.serial)

        waiting = e.outcomes.get(path) == "waiting"
        if isinstance(step, Wait):
            if not waiting:
                return ev("waiting", path, wake=now + step.duration)
            return ev("waited", after(campaign.steps, path))
        if isinstance(step, WaitUntil):
            if self.people.matches(state, step.condition, now):
                return ev("waited", after(campaign.steps, path))
            until = e.until if waiting and e.until else now + step.timeout
            if now >= until:
                return ev("timeout", after(campaign.steps, path))
            return None if waiting else ev("waiting", path, until=until)
        if isinstance(step, Branch):
            arm = "then" if self.people.matches(state, step.condition, now) else "else"
            return ev(arm, first_of(campaign.steps, path, arm))
        if isinstance(step, ExitIf):
            if self.people.matches(state, step.condition, now):
                return ev("exited", None)
            return ev("continued", after(campaign.steps, path))
        return None

    # ---- sending ----
    def _send(self, due: list[_Due], now: datetime, report: PassReport) -> None:
        due.sort(key=lambda d: (-d.campaign.priority, d.run.name, d.enrolment.profile_id))
        pending = due
        while pending:
            chunk: list[_Due] = []
            later: list[_Due] = []
            people: set[str] = set()
            for d in pending:
                if d.run.name in self._halt:
                    continue  # paused or stopped while this pass ran: stays due
                if len(chunk) < self.chunk and d.enrolment.profile_id not in people:
                    chunk.append(d)
                    people.add(d.enrolment.profile_id)
                else:
                    later.append(d)
            self.people.prefetch(sorted(people))
            states = {pid: st for pid in people if (st := self.people.state(pid)) is not None}
            facts = self.people.facts_many(states.values())
            # deciding is CPU (one thread: the GIL); delivering waits on the network (the pool's threads)
            prepared = [self._prepare(d, now, states, facts) for d in chunk]
            ready = self._claim([r for r in prepared if isinstance(r, _Ready)], report)
            done = list(self._pool.map(lambda r: self._deliver_one(r, now), ready))
            events: list[Event] = []
            for outcome in [r for r in prepared if isinstance(r, _Outcome)] + done:
                events.extend(outcome.events)
                setattr(report, outcome.kind, getattr(report, outcome.kind) + 1)
                for code in outcome.codes:
                    report.reasons[code] = report.reasons.get(code, 0) + 1
            self._append(events)
            for r in ready:
                self._in_flight.discard(r.out.message_id)
            pending = later

    @staticmethod
    def _mid(d: _Due) -> str:
        return message_id(d.run.name, d.run.version, d.path, d.enrolment.profile_id)

    def _prepare(self, d: _Due, now: datetime, states: Mapping[str, ProfileState],
                 facts: Mapping[str, PersonFacts]) -> _Outcome | _Ready:
        """Decide and render one message at this moment: a message ready to leave, or the outcome that records
        why not (skipped with reason codes, deferred to the end of quiet hours, attempted before)."""
        e, path, campaign = d.enrolment, d.path, d.campaign
        mid = self._mid(d)
        state = states.get(e.profile_id)
        if state is None:
            return _Outcome("skipped", [], ("profile_gone",))
        link = self.people.link(state)
        nxt = after(campaign.steps, path)

        def step_ev(outcome: str, next_path: str | None, **extra: Any) -> Event:
            return ce.step(e.campaign, e.version, e.profile_id, path, outcome, now, link, next_path=next_path,
                           serial=e.serial, message_id=mid, **extra)

        status = self.runs.status_of(mid)
        retry = e.outcomes.get(path) == "deferred_delivery"
        if status in ("sent", "failed", "skipped") or (status == "unknown" and not retry):
            # attempted before (another process, or before a crash): never again
            outcome = "unknown" if status == "unknown" else status or "skipped"
            return _Outcome(outcome, [step_ev(outcome, nxt)])
        templates = d.step.message or campaign.message
        candidates = tuple(ch for ch in campaign.channels if ch in templates and ch in self.deliveries.names)
        if not candidates:
            return _Outcome("skipped", [step_ev("skipped", nxt, reasons=["channel_not_configured"])],
                            ("channel_not_configured",))
        person = (facts.get(state.id) or self.people.facts(state)).person
        recent = self._recent.get(e.profile_id)
        if recent:
            known = {m.message_id for m in person.messages}
            extra = [m for mid_, m in recent.items() if mid_ not in known]
            if not extra:
                self._recent.pop(e.profile_id, None)
            person = replace(person, messages=(*person.messages, *extra))
        decision = decide(person, Intent(campaign.intent, campaign.name), candidates, now, self.policy)
        if not decision.allowed:
            codes = decision.codes()
            if _only_quiet_hours(decision):
                wake = quiet_end(now, person.time_zone or self.policy.default_time_zone, self.policy)
                return _Outcome("deferred", [step_ev("deferred", path, wake=wake, reasons=list(codes))], codes)
            return _Outcome("skipped", [step_ev("skipped", nxt, reasons=list(codes), why=decision.explain())], codes)
        channel = decision.channel
        assert channel is not None
        headers: dict[str, str] = {}
        if channel == "email" and campaign.intent == "marketing" and self.headers and decision.contact_point:
            headers = self.headers(e.profile_id, channel, decision.contact_point)
        context = self.people.context(state)
        if headers.get("List-Unsubscribe"):  # the templates' {{ unsubscribe_url }}: the same one-click link
            context["unsubscribe_url"] = headers["List-Unsubscribe"].strip("<>")
        try:
            content = self.render(templates[channel], context)
        except TaktError as err:
            return _Outcome("skipped", [step_ev("skipped", nxt, reasons=[err.code], channel=channel)], (err.code,))
        out = OutboundMessage(mid, campaign.name, campaign.version, path, e.profile_id, campaign.intent, channel,
                              decision.contact_point, content, headers)
        return _Ready(out, link, retry, nxt, e.serial, e.version, _why(decision), time.monotonic())

    def _claim(self, ready: list[_Ready], report: PassReport) -> list[_Ready]:
        """Append the ``attempted`` events of ``ready`` in one transaction (durable before any leaves); keep the
        messages whose claim this append stored (another orchestrator's claim of the same id wins)."""
        fresh = [r for r in ready if not r.retry]
        claims = [ce.message(r.out.message_id, "attempted", r.out.channel, r.out.contact_point, r.out.campaign,
                             r.out.intent, self.clock(), r.link, context={"orchestrator": self.nonce})
                  for r in fresh]
        if claims:
            result = self.storage.log.append(claims)
            if result.stored < len(claims):
                after_ = max(0, result.last_position - len(claims))
                mine = {s.event.message_id for s in self.storage.log.read(after=after_, limit=1_000_000)
                        if s.event.source == ce.SOURCE and s.event.context.get("orchestrator") == self.nonce}
                lost = [r for r in fresh if f"{r.out.message_id}:attempted" not in mine]
                report.reasons["claimed_elsewhere"] = report.reasons.get("claimed_elsewhere", 0) + len(lost)
                ready = [r for r in ready if r not in lost]
        for r in ready:
            out = r.out
            self._in_flight.add(out.message_id)
            self._recent.setdefault(out.profile_id, {})[out.message_id] = MessageRecord(
                out.message_id, out.channel, out.intent, self.clock(), out.contact_point, out.campaign,
                frozenset({"attempted"}))
        return ready

    def _still_allowed(self, r: _Ready) -> Decision | None:
        """The decision taken again for the chosen channel, as the person is now (``None``: they are gone)."""
        state = self.people.state(r.out.profile_id)
        if state is None:
            return None
        person = self.people.facts(state).person
        mine = r.out.message_id
        others = [m for m in (*person.messages, *self._recent.get(r.out.profile_id, {}).values())
                  if m.message_id != mine]
        person = replace(person, messages=tuple({m.message_id: m for m in others}.values()))
        return decide(person, Intent(r.out.intent, r.out.campaign), (r.out.channel,), self.clock(), self.policy)

    def _deliver_one(self, r: _Ready, now: datetime) -> _Outcome:
        out = r.out

        def step_ev(outcome: str, next_path: str | None, **extra: Any) -> Event:
            return ce.step(out.campaign, r.version, out.profile_id, out.step, outcome, now, r.link,
                           next_path=next_path, serial=r.serial, message_id=out.message_id, channel=out.channel,
                           **extra)

        def message_ev(status: str) -> Event:
            return ce.message(out.message_id, status, out.channel, out.contact_point, out.campaign, out.intent,
                              now, r.link)

        if time.monotonic() - r.decided > self.recheck_s:
            # the chunk waited on a slow channel: decide again at the moment it leaves (an unsubscribe since)
            again = self._still_allowed(r)
            if again is None or not again.allowed:
                codes = again.codes() if again is not None else ("profile_gone",)
                self._recent.get(out.profile_id, {}).pop(out.message_id, None)
                return _Outcome("skipped", [message_ev("failed"), step_ev("skipped", r.next, reasons=list(codes))],
                                codes)
        result = self._deliver(out)
        if result.status == "sent":
            return _Outcome("sent", [message_ev("sent"), step_ev("sent", r.next, why=r.why)])
        if result.status == "deferred":
            return _Outcome("deferred", [step_ev("deferred_delivery", out.step, wake=now + RETRY_AFTER,
                                                 error=result.error)], ("delivery_deferred",))
        self._recent.get(out.profile_id, {}).pop(out.message_id, None)
        return _Outcome("failed", [message_ev("failed"), step_ev("failed", r.next, error=result.error)])

    def _deliver(self, out: OutboundMessage) -> DeliveryResult:
        try:
            return self.deliveries.channel(out.channel).send(out)
        except Exception as exc:  # a channel must not raise; if it does, the outcome is known: not sent
            log.exception("channel %s raised for message %s", out.channel, out.message_id)
            return DeliveryResult("failed", error=type(exc).__name__)

    # ---- recovery and status ----
    def unknown(self) -> list[str]:
        """Messages attempted without an outcome that this process is not sending."""
        with self._lock:
            self.refresh()
            return sorted(m for m, v in self.runs.messages.items()
                          if self.runs.status_of(m) == "unknown" and m not in self._in_flight)

    # ---- running on its own thread ----
    def start(self, every_s: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    log.exception("campaign orchestrator pass failed")
                self._wake.wait(every_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="takt-campaigns", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)


def _only_quiet_hours(decision: Decision) -> bool:
    """Whether some channel was refused for quiet hours alone (then the send waits for their end)."""
    return any({r.code for r in rs} == {"quiet_hours"} for rs in decision.rejected.values())


def _why(decision: Decision) -> list[str]:
    return [f"{r.code}: {r.detail}" if r.detail else r.code for r in decision.reasons]


def quiet_end(now: datetime, tz: str, policy: PolicySettings) -> datetime:
    """The first quarter hour after ``now`` outside the person's quiet hours (at most two days on)."""
    t = now
    for _ in range(2 * 24 * 4):
        t = t + QUIET_STEP
        if not in_quiet_hours(t, tz, policy.quiet_hours_start, policy.quiet_hours_end):
            return t
    return t
