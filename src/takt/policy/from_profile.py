"""A :class:`~takt.policy.person.PolicyPerson` from a profile's state and the person's events.

Pure: :func:`person_from_profile` takes the profile (:class:`~takt.profiles.state.ProfileState`) and the
events the profile holds (read back from the log, in any order) and returns what policy needs, plus the events
it could not read as consent or message changes (with why), so nothing is dropped silently.

* **Contact points** from ``state.contacts``: ``email``, ``phone``, ``address`` (→ ``postal_address``) and the
  social handle types (→ ``social`` as ``network:handle``), each with the most trusted provenance any event
  gave it, the customer-given mark and ``verified``. A contact point only public events asserted is a
  ``claim`` (never used by ``decide``) unless a trusted event verified it or a double opt-in confirmation
  naming it came through a ``server`` or ``verified`` event (:func:`confirmed_contact_points`, read from the
  consent ledger's states).
* **Consent**: the person's ``consent`` events and their ``Consent Updated`` track calls (turned into customer
  consent by :func:`~takt.policy.consent.consent_events_from_track`), folded in the order the customer acted
  (event time, log position breaking ties; see :mod:`takt.policy.consent`).
* **Messages** from ``message`` events (:func:`~takt.policy.messages.fold_messages`).
* **Touchpoints**: the profile's touchpoint counts mapped to channels (``email``, ``sms``, ``push``;
  ``call_center`` → ``phone``; ``mail`` → ``post``; ``social`` → ``social_dm``; ``app`` and ``web`` →
  ``in_app``), plus the messages the person opened or clicked per channel.
* **Preferred channel**: the trait ``preferred_channel`` (or ``preferredChannel``) when its value is a channel
  and it came from the customer or the business (``customer_provided`` or ``crm_import``).
* **Suppressed**: the suppression-list hashes of the person's contact points, from the lookup the shell passes
  (:func:`~takt.policy.suppression_store.suppression_entries`), split by scope: ``suppressed`` (every purpose:
  hard bounces, erasures, operators' entries; plain hashes from the lookup count here too) and
  ``suppressed_marketing`` (unsubscribes, complaints). The list belongs to addresses, not people, so it holds
  whatever merges, re-imports or consent say; only the customer lifts an ``unsubscribe`` entry, by subscribing
  again with a double opt-in the company vouches for.
* **Time zone**: the trait ``timezone`` (``time_zone``, ``timeZone``), else the newest ``context.timezone`` of
  the person's events; third-party values are not used, invalid names are skipped.

**Merged people.** With the identity config, the profile's events are replayed through identity resolution
(:class:`~takt.identity.resolver.IdentityGraph`, deterministic) to learn which person each consent change
belonged to when it was made and when those people merged; :func:`~takt.policy.consent.fold_consent_timeline`
then applies the merge rule (the most restrictive state wins until the customer acts again). Without it, all
changes fold as one ledger in log order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from takt.errors import TaktError
from takt.events.model import Event, StoredEvent
from takt.identity.config import IdentityConfig
from takt.identity.resolver import IdentityGraph
from takt.policy import folded
from takt.policy.config import zone
from takt.policy.consent import (
    CONSENT,
    CONSENT_UPDATED,
    EMPTY,
    ConsentLedger,
    MergeStep,
    consent_events_from_track,
    fold_consent,
    fold_consent_timeline,
    validate_consent,
)
from takt.policy.messages import MESSAGE, MessageRecord, engagement_counts, fold_messages, validate_message
from takt.policy.person import ContactPoint, PolicyPerson
from takt.policy.suppression_store import SuppressionEntry, lifted
from takt.policy.vocab import CHANNEL_KIND, CHANNELS, normalize_contact_value
from takt.profiles.fold import is_claim
from takt.profiles.state import ProfileState

SuppressionLookup = Callable[[Sequence[ContactPoint]], Iterable["str | tuple[ContactPoint, SuppressionEntry]"]]
"""Which of these contact points are suppressed: hashes, or (contact point, entry) pairs."""

TOUCHPOINT_CHANNELS: dict[str, str] = {
    "email": "email",
    "sms": "sms",
    "push": "push",
    "call_center": "phone",
    "mail": "post",
    "social": "social_dm",
    "app": "in_app",
    "web": "in_app",
}
"""Profile touchpoints (see :mod:`takt.profiles.touchpoints`) → policy channels."""

PREFERENCE_TRAITS = ("preferred_channel", "preferredChannel")
TIME_ZONE_TRAITS = ("timezone", "time_zone", "timeZone")
TRUSTED_FOR_PREFERENCE = ("customer_provided", "crm_import")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An event (or contact point) that could not be used, and why."""

    position: int | None
    message_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "message_id": self.message_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PersonFacts:
    person: PolicyPerson
    consent_events: tuple[tuple[int, Event], ...]
    """The consent changes, ``(log position, consent event)`` in log order (a ``Consent Updated`` call's
    changes share its position)."""
    skipped: tuple[Skipped, ...] = ()


def _error_text(e: TaktError) -> str:
    return str(e)


def consent_changes(events: Iterable[StoredEvent]) -> tuple[list[tuple[int, Event]], list[Skipped]]:
    """The consent changes among ``events`` in log order, and the ones that could not be read."""
    out: list[tuple[int, Event]] = []
    skipped: list[Skipped] = []
    for stored in sorted(events, key=lambda s: s.position):
        e = stored.event
        if e.kind == CONSENT:
            try:
                validate_consent(e.properties)
            except TaktError as err:
                skipped.append(Skipped(stored.position, e.message_id, _error_text(err)))
                continue
            out.append((stored.position, e))
        elif e.kind == "track" and e.event == CONSENT_UPDATED:
            try:
                converted = consent_events_from_track(e)
            except TaktError as err:
                skipped.append(Skipped(stored.position, e.message_id, _error_text(err)))
                continue
            out.extend((stored.position, c) for c in converted)
    return out, skipped


def message_records(events: Iterable[StoredEvent]) -> tuple[tuple[MessageRecord, ...], list[Skipped]]:
    good: list[StoredEvent] = []
    skipped: list[Skipped] = []
    for stored in sorted(events, key=lambda s: s.position):
        if stored.event.kind != MESSAGE:
            continue
        try:
            validate_message(stored.event.properties)
        except TaktError as err:
            skipped.append(Skipped(stored.position, stored.event.message_id, _error_text(err)))
            continue
        good.append(stored)
    return fold_messages(good), skipped


def _address_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        street = value.get("street")
        postal = value.get("postal_code", value.get("postalCode"))
        city = value.get("city")
        country = value.get("country")
        parts = [str(street) if street else "", " ".join(str(p) for p in (postal, city) if p),
                 str(country) if country else ""]
        text = ", ".join(p for p in parts if p)
        return text or None
    return None


def confirmed_contact_points(ledger: ConsentLedger, changes: Iterable[tuple[int, Event]],
                             events: Iterable[StoredEvent]) -> frozenset[tuple[str, str]]:
    """``(kind, value)`` of every contact point a double opt-in confirmation named, as the ledger applied it,
    reported by a ``server`` or ``verified`` event (a public client cannot confirm its own claim)."""
    trust_at = {s.position: s.event.trust for s in events}
    public = {e.message_id for pos, e in changes if e.is_claim or trust_at.get(pos) == "public"}
    out: set[tuple[str, str]] = set()
    for state in ledger.states().values():
        for change in state.history:
            r = change.record
            if r is None or not change.applied or not r.confirmed or r.contact_point is None \
                    or r.channel is None or r.message_id in public:
                continue
            kind = CHANNEL_KIND.get(r.channel)
            if kind is not None:
                out.add((kind, normalize_contact_value(kind, r.contact_point)))
    return frozenset(out)


def contact_points(state: ProfileState,
                   confirmed: frozenset[tuple[str, str]] = frozenset()) -> tuple[list[ContactPoint], list[Skipped]]:
    """The profile's contact points as policy sees them (the fold only records email, phone, address and
    social handle types, so every other type is a handle); ``confirmed`` from :func:`confirmed_contact_points`
    lifts the claim mark."""
    out: list[ContactPoint] = []
    skipped: list[Skipped] = []
    for key, c in sorted(state.contacts.items()):
        type_name = str(c.get("type", ""))
        raw = c.get("value")
        value: str | None
        if type_name in ("email", "phone"):
            kind, value = type_name, raw if isinstance(raw, str) else None
        elif type_name == "address":
            kind, value = "postal_address", _address_text(raw)
        else:
            kind, value = "social", f"{type_name}:{raw}" if isinstance(raw, str) and raw else None
        if value is None:
            skipped.append(Skipped(c.get("position"), str(c.get("message_id", "")),
                                   f"contact point {key}: no usable value"))
            continue
        claim = is_claim(c) and not c.get("verified") \
            and (kind, normalize_contact_value(kind, value)) not in confirmed
        try:
            out.append(ContactPoint(kind, value, str(c.get("provenance")), bool(c.get("customer_given")),
                                    bool(c.get("verified")), claim))
        except TaktError as err:
            skipped.append(Skipped(c.get("position"), str(c.get("message_id", "")),
                                   f"contact point {key}: {err}"))
    return out, skipped


def touchpoint_counts(state: ProfileState, messages: Iterable[MessageRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, tp in state.touchpoints.items():
        channel = TOUCHPOINT_CHANNELS.get(name)
        count = tp.get("count") if isinstance(tp, Mapping) else None
        if channel is not None and isinstance(count, int) and not isinstance(count, bool) and count > 0:
            counts[channel] = counts.get(channel, 0) + count
    for channel, n in engagement_counts(messages).items():
        counts[channel] = counts.get(channel, 0) + n
    return counts


def preferred_channel(state: ProfileState) -> str | None:
    for name in PREFERENCE_TRAITS:
        t = state.traits.get(name)
        if t is None or t.get("provenance") not in TRUSTED_FOR_PREFERENCE:
            continue
        value = t.get("value")
        if isinstance(value, str) and value.strip().lower() in CHANNELS:
            return value.strip().lower()
    return None


def _valid_zone(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        zone(value.strip())
    except TaktError:
        return None
    return value.strip()


def personal_setting(state: ProfileState, events: Iterable[StoredEvent], traits: Iterable[str], context_key: str,
                     parse: Callable[[Any], str | None]) -> str | None:
    """A setting of the person's own (a time zone, a language): the first of ``traits`` not from a third party
    that ``parse`` accepts, else the newest ``context[context_key]`` of an event not from a third party."""
    for name in traits:
        t = state.traits.get(name)
        if t is not None and t.get("provenance") != "third_party":
            found = parse(t.get("value"))
            if found is not None:
                return found
    for stored in sorted(events, key=lambda s: s.position, reverse=True):
        if stored.event.provenance == "third_party":
            continue
        found = parse((stored.event.context or {}).get(context_key))
        if found is not None:
            return found
    return None


def time_zone(state: ProfileState, events: Iterable[StoredEvent]) -> str | None:
    return personal_setting(state, events, TIME_ZONE_TRAITS, "timezone", _valid_zone)


def ledger_of(changes: Iterable[tuple[int, Event]], events: Iterable[StoredEvent] = (),
              identity: IdentityConfig | None = None) -> ConsentLedger:
    """The person's consent ledger: ``changes`` (from :func:`consent_changes`) folded by event time (log
    position breaking ties), with the
    merges of the people the profile is made of when ``identity`` is given (see the module doc)."""
    changes = list(changes)
    if identity is None or not changes:
        return fold_consent(StoredEvent(pos, e) for pos, e in changes)
    at_position: dict[int, list[Event]] = {}
    for pos, e in changes:
        at_position.setdefault(pos, []).append(e)
    graph = IdentityGraph(identity, record_conflicts=False)
    steps: list[tuple[str, Event | StoredEvent] | MergeStep] = []
    last = None
    for stored in sorted(events, key=lambda s: s.position):
        res = graph.resolve(stored)
        last = stored.event.timestamp
        steps.extend(MergeStep(survivor, absorbed, stored.event.timestamp) for survivor, absorbed in res.merged)
        steps.extend((res.profile_id or "", StoredEvent(stored.position, e))
                     for e in at_position.get(stored.position, ()))
    ledgers = fold_consent_timeline(steps)
    if not ledgers:
        return EMPTY
    keys = sorted(ledgers)
    ledger = ledgers[keys[0]]
    for key in keys[1:]:  # people the replay did not join (e.g. a link refused there): join them now
        assert last is not None
        ledger = ledger.merge(ledgers[key], last)
    return ledger


def person_from_profile(state: ProfileState, events: Iterable[StoredEvent],
                        identity: IdentityConfig | None = None,
                        suppressed: SuppressionLookup | None = None) -> PersonFacts:
    """Everything policy knows about the person whose profile is ``state``; ``events`` are the profile's
    events (``state.positions`` read back from the log); ``identity`` the identity config (for merges);
    ``suppressed`` looks up which of the person's contact points are on the suppression list: hashes, or
    ``(contact point, entry)`` pairs (``lambda points: suppression_entries(storage, points)`` from
    :mod:`takt.policy.suppression_store`), of which those the customer lifted by subscribing again are left out
    (:func:`~takt.policy.suppression_store.lifted`)."""
    events = list(events)
    changes, skipped = consent_changes(events)
    messages, bad_messages = message_records(events)
    ledger = ledger_of(changes, events, identity)
    return _assemble(state, changes, skipped + bad_messages, messages, ledger, time_zone(state, events),
                     suppressed)


def facts_from_state(state: ProfileState, suppressed: SuppressionLookup | None = None) -> PersonFacts:
    """:func:`person_from_profile` from the policy facts the fold kept in ``state`` (no events read; see
    :mod:`takt.policy.folded`). Only for a state :func:`takt.policy.folded.exact` accepts."""
    p = state.policy
    if p is None or not folded.exact(state):
        raise ValueError(f"profile {state.id}: its state holds no exact policy facts (re-read its events)")
    changes = folded.consent_changes(state)
    skipped = [Skipped(pos, mid, reason) for pos, mid, reason in (*p.get("sc", ()), *p.get("sm", ()))]
    own_zone = personal_setting(state, (), TIME_ZONE_TRAITS, "timezone", _valid_zone)
    return _assemble(state, changes, skipped, folded.messages(state), folded.ledger(state, changes),
                     own_zone if own_zone is not None else p.get("tz"), suppressed,
                     folded.pruned_engagement(state))


def _assemble(state: ProfileState, changes: list[tuple[int, Event]], skipped: list[Skipped],
              messages: tuple[MessageRecord, ...], ledger: ConsentLedger, own_zone: str | None,
              suppressed: SuppressionLookup | None, engaged: Mapping[str, int] | None = None) -> PersonFacts:
    points, bad_points = contact_points(state, confirmed_contact_points(ledger, changes, ()))
    blocked, blocked_marketing = _blocked(points, ledger, suppressed)
    touchpoints = touchpoint_counts(state, messages)
    for channel, n in (engaged or {}).items():
        touchpoints[channel] = touchpoints.get(channel, 0) + n
    person = PolicyPerson(
        person_id=state.id,
        contact_points=tuple(points),
        consent=ledger,
        messages=messages,
        touchpoints=touchpoints,
        preferred_channel=preferred_channel(state),
        time_zone=own_zone,
        suppressed=blocked,
        suppressed_marketing=blocked_marketing,
    )
    return PersonFacts(person, tuple(changes), tuple(skipped + bad_points))


def _blocked(points: Sequence[ContactPoint], ledger: ConsentLedger,
             suppressed: SuppressionLookup | None) -> tuple[frozenset[str], frozenset[str]]:
    """The suppression hashes of ``points`` blocking every purpose, and those blocking marketing only."""
    blocked: set[str] = set()
    blocked_marketing: set[str] = set()
    for item in suppressed(points) if suppressed is not None else ():
        if isinstance(item, str):
            blocked.add(item)
        elif not lifted(item[1], item[0], ledger):
            (blocked if item[1].scope == "all" else blocked_marketing).add(item[1].hash)
    return frozenset(blocked), frozenset(blocked_marketing - blocked)


def with_suppression(facts: PersonFacts, suppressed: SuppressionLookup | None) -> PersonFacts:
    """``facts`` (made without a lookup, e.g. memoized) with the suppression list as ``suppressed`` gives it
    now."""
    person = facts.person
    blocked, blocked_marketing = _blocked(person.contact_points, person.consent, suppressed)
    if not blocked and not blocked_marketing and not person.suppressed and not person.suppressed_marketing:
        return facts
    return replace(facts, person=replace(person, suppressed=blocked, suppressed_marketing=blocked_marketing))
