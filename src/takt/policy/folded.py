"""The policy facts the profile fold keeps, so a decision needs no re-read of the person's events.

:func:`~takt.policy.from_profile.person_from_profile` derives a person's policy facts from the profile state
*and* every event the profile holds, read back from the log. This module folds what it reads from those events
into the state as they are applied (``state.policy``, JSON: it travels with the state through the profile
store), and :func:`facts_from_state` derives the same :class:`~takt.policy.from_profile.PersonFacts` from the
state alone:

* ``c``: the consent changes (``consent`` events and the changes of ``Consent Updated`` calls), in log order:
  ``[position, message_id, source, provenance, trust, timestamp, received_at, properties]``; ``sc`` the
  consent events that could not be read (``[position, message_id, reason]``);
* ``m``: the person's messages by message id, in order of first appearance
  (``[channel, intent, sent_at, contact_point, campaign, [statuses], complained_at]``), ``sm`` the message events
  that could not be read. Bounded: a message sent more than :data:`MESSAGE_RETENTION_DAYS` before the newest
  one is dropped (its open or click still counts toward channel choice, in ``me``);
* ``tz`` / ``loc``: the newest valid ``context.timezone`` / ``context.locale`` of an event not from a third
  party; ``lt``: the time of the last event folded (log order);
* ``t``: the consent timeline of a profile made of several people (``None`` for one person): written when the
  projector re-folds a profile after a merge or split (:func:`set_timeline`), by the same replay of identity
  over the profile's events that :func:`~takt.policy.from_profile.ledger_of` does; ``tn`` the changes it
  covers, ``k`` the person later changes belong to. ``x`` marks a state whose facts cannot be derived exactly
  from the fold (the replay left several people apart): readers fall back to the re-read.

``state.policy`` is ``None`` for a state folded before this section existed: readers fall back to the re-read
(``takt rebuild`` fills it). The invariant — the facts from the fold equal the facts from a re-read of the
events — is a property test (``tests/policy/test_folded.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from takt.errors import TaktError
from takt.events.model import Event, StoredEvent, parse_time
from takt.identity.config import IdentityConfig
from takt.identity.resolver import IdentityGraph
from takt.identity.resolver import iso as _iso
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
from takt.policy.messages import MESSAGE, MessageRecord, validate_message
from takt.profiles.state import JSON, ProfileState

MESSAGE_RETENTION_DAYS = 400
"""Messages sent this long before the person's newest message leave the folded state (longer than any pressure
window or complaint cooling-off in use; opens and clicks keep counting toward channel choice)."""


# ---- the fold ----
def fold_policy(state: ProfileState, stored: StoredEvent) -> None:
    """Apply one event (already noted in ``state``, in log order) to the state's policy section."""
    p = state.policy
    if p is None:
        return
    ev = stored.event
    if "t" in p:
        p["lt"] = _iso(ev.timestamp)
    if ev.provenance != "third_party" and ev.context:
        tz = _valid_zone(ev.context.get("timezone"))
        if tz is not None:
            p["tz"] = tz
        loc = _language(ev.context.get("locale"))
        if loc is not None:
            p["loc"] = loc
    if ev.kind == CONSENT:
        try:
            validate_consent(ev.properties)
        except TaktError as err:
            p.setdefault("sc", []).append([stored.position, ev.message_id, str(err)])
            return
        _changes(p, [_change(stored.position, ev)])
    elif ev.kind == "track" and ev.event == CONSENT_UPDATED:
        try:
            converted = consent_events_from_track(ev)
        except TaktError as err:
            p.setdefault("sc", []).append([stored.position, ev.message_id, str(err)])
            return
        _changes(p, [_change(stored.position, c) for c in converted])
    elif ev.kind == MESSAGE:
        try:
            props = validate_message(ev.properties)
        except TaktError as err:
            p.setdefault("sm", []).append([stored.position, ev.message_id, str(err)])
            return
        _message(p, props, ev.timestamp)


def _changes(p: JSON, new: list[list[Any]]) -> None:
    p.setdefault("c", []).extend(new)
    if "t" in p and p.get("k") is None:
        p["x"] = True  # which of the people the replay left apart this change belongs to is not known here


def _change(position: int, e: Event) -> list[Any]:
    return [position, e.message_id, e.source, e.provenance, e.trust, _iso(e.timestamp), _iso(e.received_at),
            e.properties]


def _message(p: JSON, props: dict[str, Any], at: datetime) -> None:
    """:func:`~takt.policy.messages.fold_messages`, one event at a time."""
    messages: dict[str, list[Any]] = p.setdefault("m", {})
    mid = props["message_id"]
    t = _iso(at)
    complained = t if props["status"] == "complained" else None
    old = messages.get(mid)
    if old is None:
        messages[mid] = [props["channel"], props["intent"], t, props.get("contact_point"), props.get("campaign"),
                         [props["status"]], complained]
    else:
        old[2] = min(old[2], t)
        if props["status"] not in old[5]:
            old[5].append(props["status"])
        if complained is not None and (old[6] is None or complained < old[6]):
            old[6] = complained
    _prune(p)


def _prune(p: JSON) -> None:
    messages: dict[str, list[Any]] = p["m"]
    if len(messages) < 2:
        return
    newest = max(m[2] for m in messages.values())
    cutoff = _iso(parse_time(newest) - timedelta(days=MESSAGE_RETENTION_DAYS))
    old = [mid for mid, m in messages.items() if m[2] < cutoff]
    for mid in old:
        m = messages.pop(mid)
        if "opened" in m[5] or "clicked" in m[5]:
            engaged = p.setdefault("me", {})
            engaged[m[0]] = engaged.get(m[0], 0) + 1


def _valid_zone(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        zone(value.strip())
    except TaktError:
        return None
    return value.strip()


def _language(value: Any) -> str | None:
    from takt.ui.texts import language_of  # the texts takt has (the preference center's languages)

    return language_of(value)


# ---- merges: the consent timeline ----
def set_timeline(state: ProfileState, events: Iterable[StoredEvent], identity: IdentityConfig) -> None:
    """After the projector re-folded ``state`` from ``events`` (a merge or a split): record which person each
    consent change belonged to and when those people merged, replaying identity over the profile's events as
    :func:`~takt.policy.from_profile.ledger_of` does."""
    p = state.policy
    if p is None:
        return
    mine = set(state.folded)
    at_position: dict[int, list[int]] = {}
    for i, ch in enumerate(p.get("c", ())):
        at_position.setdefault(ch[0], []).append(i)
    graph = IdentityGraph(identity, record_conflicts=False)
    steps: list[list[Any]] = []
    last: datetime | None = None
    for stored in sorted((s for s in events if s.position in mine), key=lambda s: s.position):
        res = graph.resolve(stored)
        last = stored.event.timestamp
        steps.extend(["m", survivor, absorbed, _iso(stored.event.timestamp)] for survivor, absorbed in res.merged)
        steps.extend(["c", i, res.profile_id or ""] for i in at_position.get(stored.position, ()))
    people = list(graph.clusters)
    p["t"] = steps
    p["tn"] = len(p.get("c", ()))
    p["k"] = people[0] if len(people) == 1 else None
    p["lt"] = _iso(last) if last is not None else None
    p.pop("x", None)


# ---- reading ----
def exact(state: ProfileState) -> bool:
    """Whether :func:`facts_from_state` can answer for this state (else re-read the events)."""
    return state.policy is not None and not state.policy.get("x")


def consent_changes(state: ProfileState) -> list[tuple[int, Event]]:
    assert state.policy is not None
    return [(pos, Event(kind=CONSENT, message_id=mid, source=source, timestamp=parse_time(ts),
                        received_at=parse_time(received), provenance=provenance, properties=props, trust=trust))
            for pos, mid, source, provenance, trust, ts, received, props in state.policy.get("c", ())]


def ledger(state: ProfileState, changes: Sequence[tuple[int, Event]]) -> ConsentLedger:
    """The person's consent ledger from the fold (as :func:`~takt.policy.from_profile.ledger_of` gives it)."""
    p = state.policy
    assert p is not None
    if not changes:
        return EMPTY
    if "t" not in p:
        return fold_consent(StoredEvent(pos, e) for pos, e in changes)
    steps: list[tuple[str, Event | StoredEvent] | MergeStep] = []
    for step in p["t"]:
        if step[0] == "m":
            steps.append(MergeStep(step[1], step[2], parse_time(step[3])))
        else:
            pos, e = changes[step[1]]
            steps.append((step[2], StoredEvent(pos, e)))
    steps.extend((p["k"] or "", StoredEvent(pos, e)) for pos, e in changes[p["tn"]:])
    ledgers = fold_consent_timeline(steps)
    if not ledgers:
        return EMPTY
    keys = sorted(ledgers)
    out = ledgers[keys[0]]
    for key in keys[1:]:
        out = out.merge(ledgers[key], parse_time(p["lt"]))
    return out


def messages(state: ProfileState) -> tuple[MessageRecord, ...]:
    assert state.policy is not None
    return tuple(MessageRecord(mid, m[0], m[1], parse_time(m[2]), m[3], m[4], frozenset(m[5]),
                               parse_time(m[6]) if m[6] is not None else None)
                 for mid, m in state.policy.get("m", {}).items())


def pruned_engagement(state: ProfileState) -> dict[str, int]:
    assert state.policy is not None
    return dict(state.policy.get("me", {}))
