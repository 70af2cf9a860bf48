"""An audience export: a segment's members with what activation needs, computed in bulk.

For each member: the ``fields`` asked for (traits by name — ``email``, ``firstName`` —, and a few profile facts:
``email`` and ``phone`` fall back to the profile's contact points, ``first_seen``, ``last_seen``,
``top_interest``), optionally the contact policy's decision for an ``intent`` over candidate ``channels``
(allowed, the channel and contact point to use, the reason codes) and the next-best offer for that intent.

Bulk, not one request per member: members are taken in chunks; a chunk's profiles are copied under one lock,
its policy facts taken from what the fold kept in each state (events are read, in one call, only for a state
folded before those facts existed or for offers that look at events or purchases), its suppression-list entries
looked up in one call, its model scores read in one query; policy and ranking then run in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from takt.errors import TaktError
from takt.events.model import StoredEvent
from takt.models.offers.catalog import Offer
from takt.models.offers.rank import PersonOffers, Propensity, purchased_products, rank
from takt.models.offers.rank import Request as RankRequest
from takt.policy import folded
from takt.policy.decide import Decision, Intent, decide
from takt.policy.from_profile import (
    PersonFacts,
    contact_points,
    facts_from_state,
    person_from_profile,
    with_suppression,
)
from takt.policy.person import ContactPoint
from takt.policy.suppression_store import SuppressionEntry, suppression_entries
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES
from takt.profiles.state import ProfileState
from takt.segments.errors import did_you_mean
from takt.segments.view import EventRow

PROFILE_FIELDS = ("first_seen", "last_seen", "top_interest")
CONTACT_FIELDS = ("email", "phone")
CHUNK = 500
MAX_FIELDS = 50


@dataclass(frozen=True, slots=True)
class AudienceRequest:
    fields: tuple[str, ...] = ()
    intent: str | None = None
    """With ``channels``: the contact policy's decision per member (``decide``)."""
    channels: tuple[str, ...] = ()
    offer: bool = False
    """The next-best offer per member: for ``intent`` over ``channels`` (outbound), policy applied."""

    @property
    def personal(self) -> bool:
        """Whether the export holds personal data beyond profile ids (then it is audited)."""
        return bool(self.fields) or self.intent is not None

    def columns(self) -> list[str]:
        cols = ["profile_id", *self.fields]
        if self.intent is not None:
            cols += ["allowed", "channel", "contact_point", "reasons"]
        if self.offer:
            cols += ["offer_id", "offer_title"]
        return cols


def audience_request(fields: Sequence[str] = (), intent: str | None = None, channels: Sequence[str] = (),
                     offer: bool = False, known_traits: frozenset[str] | None = None) -> AudienceRequest:
    """A checked request: names of fields (unknown traits are an error when the workspace's traits are known),
    an intent with at least one known channel, an offer only with an intent."""
    fields = tuple(dict.fromkeys(f.strip() for f in fields if f.strip()))
    if len(fields) > MAX_FIELDS:
        raise TaktError(f"at most {MAX_FIELDS} fields", code="invalid_request")
    if known_traits is not None:
        allowed = known_traits | set(PROFILE_FIELDS) | set(CONTACT_FIELDS)
        for f in fields:
            if f not in allowed and f != "profile_id":
                hint = did_you_mean(f, allowed)
                raise TaktError(f"unknown field {f!r}: no profile has such a trait" + (f"; {hint}" if hint else ""),
                                code="invalid_request",
                                errors=[{"field": "fields", "reason": f"unknown field {f!r}"}])
    fields = tuple(f for f in fields if f != "profile_id")
    if intent is not None and intent not in MESSAGE_PURPOSES:
        raise TaktError(f"intent must be one of {', '.join(MESSAGE_PURPOSES)}, got {intent[:40]!r}",
                        code="invalid_request", errors=[{"field": "decide", "reason": "unknown intent"}])
    chans = tuple(dict.fromkeys(c.strip() for c in channels if c.strip()))
    unknown = [c for c in chans if c not in CHANNELS]
    if unknown:
        raise TaktError(f"unknown channel {unknown[0][:40]!r} (expected {', '.join(CHANNELS)})",
                        code="invalid_request", errors=[{"field": "channels", "reason": "unknown channel"}])
    if intent is not None and not chans:
        raise TaktError("a decision needs the candidate channels, e.g. channels email,sms", code="invalid_request",
                        errors=[{"field": "channels", "reason": "required with decide"}])
    if chans and intent is None:
        raise TaktError("channels go with decide (the intent, e.g. marketing)", code="invalid_request",
                        errors=[{"field": "decide", "reason": "required with channels"}])
    if offer and intent is None:
        raise TaktError("the next-best offer of an export is for an intent: give decide (e.g. marketing) and "
                        "channels", code="invalid_request", errors=[{"field": "offer", "reason": "needs decide"}])
    return AudienceRequest(fields, intent, chans, offer)


class Context:
    """What the export reads: the profile runner, the storage, policy settings, the offer catalog."""

    def __init__(self, storage: Any, runner: Any, policy_settings: Any, offers: Sequence[Offer] = (),
                 scores: Callable[[Sequence[str]], Mapping[str, Mapping[str, tuple[float, int | None]]]]
                 | None = None):
        self.storage = storage
        self.runner = runner
        self.policy_settings = policy_settings
        self.offers = list(offers)
        self.scores = scores


def rows(ctx: Context, profile_ids: Sequence[str], request: AudienceRequest, now: datetime
         ) -> Iterator[dict[str, Any]]:
    """One dict per member (keys: :meth:`AudienceRequest.columns`), in the order of ``profile_ids``."""
    for i in range(0, len(profile_ids), CHUNK):
        yield from _chunk(ctx, profile_ids[i:i + CHUNK], request, now)


def _chunk(ctx: Context, ids: Sequence[str], request: AudienceRequest, now: datetime) -> list[dict[str, Any]]:
    runner = ctx.runner
    states: dict[str, ProfileState] = {}
    with runner.lock:  # copies: the projector changes its states in place while it follows the log
        for pid in ids:
            s = runner.projector.profile(pid)
            if s is not None:
                states[pid] = ProfileState.from_dict(s.to_dict())
    events: dict[str, list[StoredEvent]] = {}
    based: dict[str, PersonFacts] = {}  # from the policy facts the fold kept (no events read)
    entries: dict[tuple[str, str], list[tuple[ContactPoint, SuppressionEntry]]] = {}
    if request.intent is not None:
        # events are read only where something needs them: a state folded before its policy facts existed, or
        # offers that look at events or purchases
        offers_read = request.offer and any(o.needs_events or o.products for o in ctx.offers)
        for pid, s in states.items():
            if folded.exact(s):
                based[pid] = facts_from_state(s)
        reading = [pid for pid in states if offers_read or pid not in based]
        wanted = sorted({p for pid in reading for p in states[pid].positions})
        by_pos = {e.position: e for e in (ctx.storage.log.get(wanted) if wanted else [])}
        events = {pid: [by_pos[p] for p in sorted(set(states[pid].positions))] for pid in reading}
        points = {(cp.kind, cp.value): cp for pid, s in states.items()
                  for cp in (based[pid].person.contact_points if pid in based else contact_points(s)[0])}
        for cp, e in suppression_entries(ctx.storage, points.values()):
            entries.setdefault((cp.kind, cp.value), []).append((cp, e))
    scores = ctx.scores(list(states)) if (request.offer and ctx.scores is not None
                                           and any(o.model for o in ctx.offers)) else {}
    out = []
    for pid in ids:
        state = states.get(pid)
        if state is None:  # merged away or erased between the segment query and now
            continue
        row: dict[str, Any] = {"profile_id": pid}
        for f in request.fields:
            row[f] = field_value(state, f)
        if request.intent is not None:
            def lookup(pts: Any) -> list[tuple[ContactPoint, SuppressionEntry]]:
                return [x for cp in pts for x in entries.get((cp.kind, cp.value), [])]

            base = based.get(pid)
            facts = with_suppression(base, lookup) if base is not None else \
                person_from_profile(state, events[pid], runner.config.identity, lookup)
            intent = Intent(request.intent)
            d = decide(facts.person, intent, request.channels, now, ctx.policy_settings)
            row.update({"allowed": d.allowed, "channel": d.channel, "contact_point": d.contact_point,
                        "reasons": [r.code for r in d.reasons]})
            if request.offer:
                row.update(_offer(ctx, state, events.get(pid, []), facts.person, request, now, scores.get(pid, {})))
        out.append(row)
    return out


def _offer(ctx: Context, state: ProfileState, events: list[StoredEvent], person: Any, request: AudienceRequest,
           now: datetime, scores: Mapping[str, tuple[float, int | None]]) -> dict[str, Any]:
    from takt.projections.tables import profile_view

    config = ctx.runner.config
    view = profile_view(state, (), config)
    if any(o.needs_events for o in ctx.offers):
        view = replace(view, events=tuple(EventRow(kind=e.event.kind, ts=e.event.timestamp, event=e.event.event,
                                                   name=e.event.name, properties=e.event.properties)
                                          for e in events))
    who = PersonOffers(profile_id=state.id, interests={k: list(v) for k, v in state.interests.items()},
                       half_life=config.half_life_seconds, view=view,
                       purchased=purchased_products(events) if any(o.products for o in ctx.offers) else None,
                       messages=person.messages)
    intent = request.intent
    assert intent is not None
    decisions: dict[tuple[str, ...], Decision] = {}

    def policy(channels: tuple[str, ...]) -> Decision:
        if channels not in decisions:
            decisions[channels] = decide(person, Intent(intent), channels, now, ctx.policy_settings)
        return decisions[channels]

    def propensity(offer: Offer) -> Propensity:
        hit = scores.get(offer.model) if offer.model else None
        if hit is None:
            return (1.0, "default")
        return (min(1.0, max(0.0, float(hit[0]))), f"model:{offer.model}")

    result = rank(ctx.offers, who, RankRequest(now=now, intent=intent, channels=request.channels, limit=1),
                  propensity=propensity, policy=policy)
    best = result.offers[0].offer if result.offers else None
    return {"offer_id": best.id if best else None, "offer_title": best.title if best else None}


def field_value(state: ProfileState, name: str) -> Any:
    """A trait's value; for ``email``/``phone`` without such a trait the profile's contact point; a profile
    fact; ``None`` when the profile has none."""
    t = state.traits.get(name)
    if isinstance(t, dict) and "value" in t:
        return t["value"]
    if name in CONTACT_FIELDS:
        for c in sorted(state.contacts.values(), key=lambda c: str(c.get("at", "")), reverse=True):
            if c.get("type") == name and isinstance(c.get("value"), str):
                return c["value"]
        return None
    if name == "top_interest":
        return state.top_interest
    if name in ("first_seen", "last_seen"):
        v = state.stats.get(name)
        if isinstance(v, int | float):
            return datetime.fromtimestamp(float(v), tz=UTC).isoformat().replace("+00:00", "Z")
        return v
    return None


def workspace_context(storage: Any, runner: Any, settings: Any, request: AudienceRequest) -> Context:
    """The export's context on a workspace: policy settings, the offer catalog (only when offers are asked for)
    and the model factory's scores (read in bulk)."""
    from takt.policy.config import PolicySettings
    from takt.policy.suppression_store import suppression_key

    offers: list[Offer] = []
    scores = None
    if request.offer:
        from takt.models.offers.store import OfferStore
        from takt.models.scoring import registry_of

        offers = OfferStore(storage).current()

        def scores(pids: Sequence[str]) -> Mapping[str, Mapping[str, tuple[float, int | None]]]:
            return registry_of(storage).scores_of_profiles(pids)

    policy = PolicySettings.from_settings(settings, suppression_key(storage)) if request.intent else None
    return Context(storage, runner, policy, offers, scores)


def export(ctx: Context, profile_ids: Sequence[str], request: AudienceRequest, now: datetime, actor: str
           ) -> list[dict[str, Any]]:
    """The rows, returned only once the export is in the audit log (one ``segment.export`` entry per member)
    when it holds personal data."""
    out = list(rows(ctx, profile_ids, request, now))
    if request.personal and out:
        from takt.privacy.audit import audit_log

        audit_log(ctx.storage).record_many(now, actor, "segment.export", [r["profile_id"] for r in out])
    return out


def flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for CSV and Parquet: lists joined with commas, other values as they are."""
    return {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()}
