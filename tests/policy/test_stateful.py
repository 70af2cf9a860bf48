"""Random histories of consent, contact points, merges, sends, complaints, unsubscribes and time, checked after
every step against an independent, deliberately plain re-statement of the contact policy.

The model below does not call into takt.policy (takt only builds the inputs: events folded into the ledger
and messages, contact points, suppression hashes; those folds are under test too): it keeps its own
history of what happened and derives, by the rules in docs/policy.md, which channels a message may use. After
every step ``decide`` must agree with it: never allow what the model forbids (no consent, withdrawn or objected
without a later customer grant, a contact point the customer did not give, over the budget, in quiet hours,
suppressed, cooling off) and never forbid what the model allows, choosing the channel the model expects.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from takt.events.model import Event
from takt.policy import (
    ContactPoint,
    Intent,
    PolicyPerson,
    PolicySettings,
    contact_point_hash,
    decide,
    fold_consent,
    fold_messages,
)
from takt.policy.consent import ConsentLedger, MergeStep, fold_consent_timeline
from tests.policy.builders import T0

SEQUENCES = 10_000
STEPS = 5
KEY = b"stateful-secret"

# ---- the world's small vocabulary, so that histories collide ----
KIND = {"email": "email", "sms": "phone", "phone": "phone", "push": "push_token", "post": "postal_address",
        "social_dm": "social", "in_app": None}
ALL_CHANNELS = ("email", "sms", "phone", "push", "post", "social_dm", "in_app")
FIXED_ORDER = ("email", "in_app", "push", "post", "sms", "social_dm", "phone")
VALUES = {"email": ("a@x.com", "b@x.com"), "phone": ("+4911", "+4922"), "push_token": ("tok1",),
          "postal_address": ("street 1",), "social": ("linkedin:ada",)}
POINTS = [(kind, value) for kind, values in VALUES.items() for value in values]
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
STEPS_OF_TIME = (timedelta(minutes=30), timedelta(hours=3), timedelta(hours=7), timedelta(hours=13),
                 timedelta(days=1), timedelta(days=2), timedelta(days=8), timedelta(days=31))
ACTORS = ("customer", "import", "admin", "third_party")
PROVENANCES = ("customer_provided", "crm_import", "observed", "third_party")

WHO = (0, 1)
LEANING_TO_EMAIL = ("email", "email", "email", "in_app", *ALL_CHANNELS)  # where the subscriber starts
CHANNEL_SETS = [[ch for i, ch in enumerate(ALL_CHANNELS) if bits >> i & 1]
                for bits in range(1, 2 ** len(ALL_CHANNELS))]
CHANNEL_SETS += [list(ALL_CHANNELS)] * len(CHANNEL_SETS)  # half the sends offer every channel

SUBSCRIBER_POINTS = (*[("customer_provided", False)] * 4, ("crm_import", True),
                     ("crm_import", False), ("observed", False), ("third_party", True))
TRUSTED_SOURCE = {"customer": "customer_provided", "import": "crm_import", "admin": "customer_provided",
                  "third_party": "third_party"}

COUNTS: dict[str, int] = {}


def combinations(*choices: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """One draw for all of a rule's arguments: cheaper to generate than one strategy per argument."""
    return st.sampled_from(tuple(itertools.product(*choices)))


def count(what: str) -> None:
    COUNTS[what] = COUNTS.get(what, 0) + 1


# ---- the model ----
@dataclass
class Someone:
    history: list[tuple[Any, ...]] = field(default_factory=list)
    points: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)  # → (provenance, given)
    sent: list[tuple[datetime, str]] = field(default_factory=list)                  # (when, purpose)
    complaints: list[datetime] = field(default_factory=list)
    preferred: str | None = None
    touch: dict[str, int] = field(default_factory=dict)
    zone: str = "UTC"
    key: str = ""
    # what takt is given
    ledger: ConsentLedger = field(default_factory=ConsentLedger)
    message_events: list[Event] = field(default_factory=list)
    direct_complaints: list[datetime] = field(default_factory=list)  # complaints with no message to attach to


def counts_as(actor: str, provenance: str) -> str:
    if provenance == "third_party":
        return "third_party"
    if actor == "customer" and provenance != "customer_provided":
        return "import"
    return actor


def consent_of(history: list[tuple[Any, ...]], purpose: str, channel: str, point: str | None) -> tuple[str, bool]:
    """(status, confirmed) for one target, by the rules written out plainly."""
    status, confirmed = "none", False
    for entry in history:
        if entry[0] == "merge":
            left = consent_of(entry[1], purpose, channel, point)
            right = consent_of(entry[2], purpose, channel, point)
            if left[0] == "none":
                status, confirmed = right
            elif right[0] == "none":
                status, confirmed = left
            else:
                strictness = {("objected", False): 0, ("withdrawn", False): 1, ("claimed", False): 2,
                              ("granted", False): 3, ("granted", True): 4}
                status, confirmed = min(left, right, key=lambda s: strictness[s])
            continue
        what, e_purpose, e_channel, e_point, actor, method, trust = entry
        if e_purpose != purpose:
            continue
        if what != "objected":  # an objection covers every channel and contact point
            if e_channel is not None and e_channel != channel:
                continue
            if e_point is not None and e_point != point:
                continue
        if what in ("withdrawn", "objected"):
            status, confirmed = what, False
        elif actor == "third_party":
            pass
        elif trust == "public":  # a browser's claim: pending where nothing stronger is on record
            if status in ("none", "claimed"):
                status, confirmed = "claimed", False
        elif status in ("withdrawn", "objected") and actor != "customer":
            pass
        else:
            confirmed = (method == "double_opt_in" and trust == "server") or (status == "granted" and confirmed)
            status = "granted"
    return status, confirmed


def quiet(now: datetime, zone: str) -> bool:
    local = now.astimezone(ZoneInfo(zone))
    return (local.hour, local.minute) >= (21, 0) or local.hour < 8


class PolicyWorld(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.people: list[Someone] = []
        self.suppressed: dict[tuple[str, str], str] = {}  # → "marketing" (unsubscribe) or "all" (hard bounce)
        self.doi = True
        self.ids = itertools.count()
        self.timeline: list[tuple[str, Event] | MergeStep] = []

    @initialize(i=combinations((True, False), ZONES, ZONES, (2, 9, 11, 13, 15, 20),
                               (None, "double_opt_in", "double_opt_in", "web_form"), (0, 0, 0, 1, 2, 3), (True, False),
                               SUBSCRIBER_POINTS, (False, False, True)))
    def start(self, i: tuple[Any, ...]) -> None:
        doi, zone_a, zone_b, start, subscribed, earlier, app, point, unsubscribed = i
        count("sequences")
        self.doi = doi
        self.now = T0.replace(hour=start)
        self.people = [Someone(zone=zone_a, key="p0"), Someone(zone=zone_b, key="p1")]
        self.settings = PolicySettings(email_marketing_requires_double_opt_in=doi, suppression_key=KEY)
        if subscribed is not None:  # most histories start from a subscriber, so that sends are common
            self.people[0].points[("email", "a@x.com")] = point
            self.now -= timedelta(hours=2)
            self._consent(0, "granted", "marketing", "email", "a@x.com", "customer", "customer_provided",
                          subscribed)
            self.now += timedelta(hours=2)
            if unsubscribed:  # after subscribing (consent folds in the order the customer acted)
                self.now -= timedelta(hours=1)
                self._consent(0, "withdrawn", "marketing", "email", "a@x.com", "customer", "customer_provided",
                              "unsubscribe_link")
                self.now += timedelta(hours=1)
        if app:
            self._consent(0, "granted", "marketing", "in_app", None, "customer", "customer_provided", "web_form")
        for days in (0.8, 6.5, 3)[:earlier]:  # marketing she got before, so that the budget is in reach
            self._record_send(0, "marketing", "email", "a@x.com", self.now - timedelta(days=days))

    def _record_send(self, who: int, purpose: str, channel: str, point: str | None, at: datetime) -> None:
        person = self.people[who]
        props = {"message_id": f"m{next(self.ids)}", "status": "sent", "channel": channel, "intent": purpose}
        if point is not None:
            props["contact_point"] = point
        person.message_events.append(Event(kind="message", message_id=props["message_id"], source="takt",
                                           timestamp=at, received_at=at, properties=props))
        person.sent.append((at, purpose))

    # ---- consent ----
    def _consent(self, who: int, status: str, purpose: str, channel: str | None, point: str | None,
                 actor: str, provenance: str, method: str | None, trust: str = "server") -> None:
        person = self.people[who]
        if channel is None or KIND[channel] is None:
            point = None
        props: dict[str, Any] = {"purpose": purpose, "status": status, "actor": actor}
        if channel is not None:
            props["channel"] = channel
        if point is not None:
            props["contact_point"] = point
        if method is not None:
            props["evidence"] = {"method": method}
        event = Event(kind="consent", message_id=f"c{next(self.ids)}", source="s", timestamp=self.now,
                      received_at=self.now, provenance=provenance, properties=props, trust=trust)
        person.ledger = fold_consent([event], person.ledger)
        self.timeline.append((person.key, event))
        person.history.append((status, purpose, channel, point, counts_as(actor, provenance), method, trust))

    @rule(g=combinations(WHO, ("marketing", "marketing", "transactional"), LEANING_TO_EMAIL, (0, 0, 1, 2), ACTORS,
                         (True, False), PROVENANCES, ("double_opt_in", "double_opt_in", "web_form", "import")))
    def grant(self, g: tuple[Any, ...]) -> None:
        who, purpose, channel, pick, actor, trusted, provenance, method = g
        source = TRUSTED_SOURCE[actor] if trusted else provenance
        self._consent(who, "granted", purpose, channel, self._point(channel, pick), actor, source, method)

    @rule(g=combinations(("a@x.com", None), ACTORS, (True, False), PROVENANCES, ("double_opt_in", "web_form"),
                         ("server", "server", "verified", "public")))
    def grant_email_marketing(self, g: tuple[Any, ...]) -> None:
        """A grant where the subscriber's consent is: her own, or someone else's trying to speak for her (a
        browser's claim with the public key, a verified session, the company's server)."""
        point, actor, trusted, provenance, method, trust = g
        source = TRUSTED_SOURCE[actor] if trusted else provenance
        self._consent(0, "granted", "marketing", "email", point, actor, source, method, trust)

    @rule(w=combinations(WHO, ("marketing", "marketing", "transactional"), (None, *LEANING_TO_EMAIL), (0, 0, 1, 2), ACTORS,
                         PROVENANCES))
    def withdraw(self, w: tuple[Any, ...]) -> None:
        who, purpose, channel, pick, actor, provenance = w
        point = self._point(channel, pick) if channel is not None else None
        self._consent(who, "withdrawn", purpose, channel, point, actor, provenance, None)

    @rule(o=combinations(WHO, (None, *ALL_CHANNELS), ACTORS, PROVENANCES))
    def object(self, o: tuple[Any, ...]) -> None:
        who, channel, actor, provenance = o
        self._consent(who, "objected", "marketing", channel, None, actor, provenance, "email_reply")

    def _point(self, channel: str | None, pick: int) -> str | None:
        kind = KIND[channel] if channel else None
        if kind is None:
            return None
        values = VALUES[kind]
        return values[pick] if pick < len(values) else None  # None: the whole channel

    # ---- contact points, merges, preferences ----
    @rule(a=combinations(WHO, POINTS, PROVENANCES, (True, False)))
    def add_contact_point(self, a: tuple[Any, ...]) -> None:
        who, point, provenance, given = a
        self.people[who].points[point] = (provenance, given)

    @rule()
    def merge(self) -> None:
        a, b = self.people
        merged = Someone(zone=a.zone)
        merged.history = [("merge", a.history, b.history)]
        merged.ledger = a.ledger.merge(b.ledger, self.now)
        rank = {p: i for i, p in enumerate(PROVENANCES)}
        for src in (b, a):
            for key, value in src.points.items():
                old = merged.points.get(key)
                if old is None or rank[value[0]] <= rank[old[0]]:
                    merged.points[key] = value
        merged.sent = a.sent + b.sent
        merged.message_events = a.message_events + b.message_events
        merged.complaints = a.complaints + b.complaints
        merged.direct_complaints = a.direct_complaints + b.direct_complaints
        merged.preferred = a.preferred or b.preferred
        merged.touch = {ch: a.touch.get(ch, 0) + b.touch.get(ch, 0) for ch in set(a.touch) | set(b.touch)}
        merged.key = a.key
        self.timeline.append(MergeStep(a.key, b.key, self.now))
        self.people = [merged, Someone(zone=b.zone, key=f"q{next(self.ids)}")]
        count("merges")

    @rule(p=combinations(WHO, (None, *ALL_CHANNELS)))
    def prefer(self, p: tuple[Any, ...]) -> None:
        who, channel = p
        self.people[who].preferred = channel

    @rule(e=combinations(WHO, ("in_app", "in_app", "push", *ALL_CHANNELS), (1, 2, 3)))
    def engage(self, e: tuple[Any, ...]) -> None:
        who, channel, n = e
        touch = self.people[who].touch
        touch[channel] = touch.get(channel, 0) + n

    # ---- sends, complaints, unsubscribes, time ----
    @rule(s=combinations(WHO, ("marketing", "marketing", "transactional", "service"), CHANNEL_SETS))
    def send(self, s: tuple[Any, ...]) -> None:
        who, purpose, candidates = s
        d = self.check(who, purpose, candidates)
        if d.allowed:
            assert d.channel is not None
            self._record_send(who, purpose, d.channel, d.contact_point, self.now)
            count(f"sent {purpose}")

    @rule(who=st.sampled_from(WHO))
    def complain(self, who: int) -> None:
        person = self.people[who]
        person.complaints.append(self.now)
        if person.message_events:
            last = person.message_events[-1].properties
            props = {**last, "status": "complained"}
            person.message_events.append(Event(kind="message", message_id=f"e{next(self.ids)}", source="esp",
                                               timestamp=self.now, received_at=self.now, properties=props))
        else:
            person.direct_complaints.append(self.now)

    @rule(u=combinations(WHO, (("email", "a@x.com"), *POINTS), (True, False)))
    def unsubscribe(self, u: tuple[Any, ...]) -> None:
        """The customer unsubscribes a contact point from marketing; sometimes it goes on the suppression list."""
        who, point, suppress = u
        if suppress:
            self.suppressed.setdefault(point, "marketing")
        channel = {"email": "email", "phone": "sms", "push_token": "push", "postal_address": "post",
                   "social": "social_dm"}[point[0]]
        self._consent(who, "withdrawn", "marketing", channel, point[1], "customer", "customer_provided",
                      "unsubscribe_link")

    @rule(s=combinations(WHO, POINTS))
    def suppress(self, s: tuple[Any, ...]) -> None:
        """A hard bounce puts a contact point on the suppression list for every purpose."""
        self.suppressed[s[1]] = "all"

    @rule(step=st.sampled_from(STEPS_OF_TIME))
    def wait(self, step: timedelta) -> None:
        self.now += step

    # ---- the check ----
    def usable(self, person: Someone, purpose: str, channel: str) -> list[str | None]:
        """Contact points (None for in_app) the model allows a message of ``purpose`` to use on ``channel``."""
        marketing = purpose == "marketing"
        if marketing:
            if any(c > self.now - timedelta(days=30) for c in person.complaints):
                return []
            if sum(1 for t, p in person.sent if p == "marketing" and t > self.now - timedelta(days=7)) >= 3:
                return []
            if sum(1 for t, p in person.sent if p == "marketing" and t > self.now - timedelta(days=1)) >= 1:
                return []
        if (marketing or channel == "phone") and quiet(self.now, person.zone):
            return []
        kind = KIND[channel]
        targets: list[str | None]
        if kind is None:
            targets = [None]
        else:
            targets = []
            for (k, value), (provenance, given) in person.points.items():
                if k != kind:
                    continue
                scope = self.suppressed.get((k, value))
                if scope == "all" or (scope == "marketing" and marketing):
                    continue
                if provenance in ("observed", "third_party"):
                    continue
                if marketing and not (provenance == "customer_provided" or given):
                    continue
                targets.append(value)
        ok: list[str | None] = []
        for target in targets:
            status, confirmed = consent_of(person.history, purpose, channel, target)
            if status in ("withdrawn", "objected"):
                continue
            if marketing and status != "granted":
                continue
            if marketing and channel == "email" and self.doi and not confirmed:
                continue
            ok.append(target)
        return ok

    def check(self, who: int, purpose: str, candidates: list[str]) -> Any:
        person = self.people[who]
        sut = PolicyPerson(
            person_id=str(who),
            contact_points=tuple(ContactPoint(k, v, p, customer_given=g) for (k, v), (p, g) in person.points.items()),
            consent=person.ledger,
            messages=fold_messages(person.message_events),
            touchpoints=dict(person.touch),
            preferred_channel=person.preferred,
            time_zone=person.zone,
            complaints=tuple(person.direct_complaints),
            suppressed=frozenset(contact_point_hash(KEY, k, v) for (k, v), scope in self.suppressed.items()
                                 if scope == "all"),
            suppressed_marketing=frozenset(contact_point_hash(KEY, k, v) for (k, v), scope in self.suppressed.items()
                                           if scope == "marketing"),
        )
        d = decide(sut, Intent(purpose), candidates, self.now, self.settings)
        usable = {ch: self.usable(person, purpose, ch) for ch in candidates}
        order = sorted(candidates, key=lambda ch: (ch != person.preferred, -person.touch.get(ch, 0),
                                                   FIXED_ORDER.index(ch)))
        if purpose == "marketing" and person.preferred is not None:
            order = [ch for ch in order if ch == person.preferred]
        expected = next((ch for ch in order if usable[ch]), None)
        assert d.allowed == (expected is not None), (purpose, candidates, usable, d)
        assert d.channel == expected, (purpose, candidates, usable, d)
        if d.allowed:
            assert d.contact_point in usable[expected], (d, usable)
            assert set(d.rejected) == set(candidates) - {expected}
            assert d.codes() == ("allowed",)
            count(f"allowed {purpose}")
        else:
            assert d.contact_point is None and set(d.rejected) == set(candidates)
            assert d.reasons and "allowed" not in d.codes()
        for reasons in (d.reasons, *d.rejected.values()):
            for code in {r.code for r in reasons}:
                count(f"code {code}")
        if d.allowed and person.history and person.history[0][0] == "merge":
            count(f"allowed {purpose} after a merge")
        if d.allowed and purpose == "marketing":
            # the invariants of the issue, each said once more on its own
            status, confirmed = consent_of(person.history, "marketing", d.channel, d.contact_point)
            assert status == "granted" and (confirmed or d.channel != "email" or not self.doi)
            if d.contact_point is not None:
                provenance, given = person.points[(KIND[d.channel], d.contact_point)]
                assert provenance == "customer_provided" or (provenance == "crm_import" and given)
                assert (KIND[d.channel], d.contact_point) not in self.suppressed
            assert not quiet(self.now, person.zone)
            assert sum(1 for t, p in person.sent if p == "marketing" and t > self.now - timedelta(days=7)) < 3
        return d

    def teardown(self) -> None:
        """The whole history folded at once, merges included, ends where the step-by-step ledgers did."""
        if not self.people:
            return
        ledgers = fold_consent_timeline(self.timeline)
        for person in self.people:
            ledger = ledgers.get(person.key, ConsentLedger())
            for purpose, channel, point in (("marketing", "email", "a@x.com"), ("marketing", "sms", "+4911"),
                                            ("marketing", "in_app", None), ("transactional", "email", "b@x.com")):
                state = ledger.state(purpose, channel, point)
                expected = consent_of(person.history, purpose, channel, point)
                assert (state.status, state.confirmed) == expected, (purpose, channel, point)

    @invariant()
    def decide_agrees_with_the_model(self) -> None:
        if not self.people:
            return
        for who in (0, 1):  # transactional and service messages are checked where they are sent
            self.check(who, "marketing", list(ALL_CHANNELS))


def test_policy_agrees_with_the_model_over_many_random_histories() -> None:
    COUNTS.clear()
    run_state_machine_as_test(PolicyWorld, settings=settings(
        max_examples=SEQUENCES, stateful_step_count=STEPS, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    ))
    assert COUNTS.get("sequences", 0) >= SEQUENCES
    # The histories reach the interesting places: sends happen, after merges too, and every reason shows up.
    for what in ("allowed marketing", "allowed marketing after a merge", "allowed transactional",
                 "allowed service", "sent marketing", "sent transactional", "merges"):
        assert COUNTS.get(what, 0) >= 50, (what, COUNTS)
    for code in ("no_consent", "withdrawn", "objected", "not_double_opted_in", "third_party_contact_point",
                 "observed_contact_point", "not_customer_given", "no_contact_point", "suppressed",
                 "complaint_cooloff", "budget_exhausted", "daily_limit", "quiet_hours", "not_preferred_channel",
                 "one_channel_per_message"):
        assert COUNTS.get(f"code {code}", 0) >= 50, (code, COUNTS)
