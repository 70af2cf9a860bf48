"""Ranking offers for one person: business rules first, then propensity × relevance × value.

Pure: :func:`rank` takes the catalog, what is known about the person (:class:`PersonOffers`), the request
(placement or intent, channels, ``now``), propensities and, for outbound intents, a contact-policy callback;
it returns the ranked offers, each with its score decomposition, and every excluded offer with the rule that
excluded it. See ``docs/offers.md``.

**Relevance** is the person's interest in the offer's keys *decayed to now*: the strongest decayed score
among the offer's keys divided by the person's strongest decayed interest (so 1.0 means "the thing this
person cares most about right now"), mapped to ``[floor, 1]`` as ``floor + (1 − floor) · normalized`` so
that an offer about nothing the person showed interest in (or with no keys) still ranks by propensity and
value. Because the scores are decayed to ``now``, interest that was strong months ago and has not been
renewed does not drive offers: who searched Krabi in February and New York last week gets New York.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from takt.errors import TaktError
from takt.events.model import StoredEvent
from takt.models.offers.catalog import Offer
from takt.policy.decide import Decision
from takt.policy.messages import MessageRecord
from takt.profiles.interests import decay
from takt.segments import SegmentError, evaluate
from takt.segments.view import ProfileView
from takt.text import sentences

DEFAULT_FLOOR = 0.1
"""Relevance of an offer about nothing the person is interested in (see the module docstring)."""


@dataclass(frozen=True)
class RankConfig:
    floor: float = DEFAULT_FLOOR
    decay: bool = True
    """``False`` reads each interest as it stood at its last event, undecayed: only for comparison (it lets
    stale interests drive offers, which is what decay prevents)."""


@dataclass(frozen=True)
class PersonOffers:
    """What ranking needs to know about one person.

    ``interests`` is the profile's ``key → [score, as_of epoch seconds]``; ``half_life`` gives a key's
    half-life in seconds; ``view`` is the segment evaluator's view (with events when an eligibility reads
    them); ``purchased`` the product ids the person bought (``None``: not read, no offer needs them);
    ``messages`` the person's messages (for caps; ``None``: not read)."""

    profile_id: str
    interests: Mapping[str, Sequence[float]]
    half_life: Callable[[str], float]
    view: ProfileView
    purchased: frozenset[str] | None = None
    messages: Sequence[MessageRecord] | None = None


@dataclass(frozen=True)
class Request:
    """Inbound (``placement``) or outbound (``intent``: marketing, transactional or service)."""

    now: datetime
    placement: str | None = None
    intent: str | None = None
    channels: tuple[str, ...] = ()
    limit: int = 3

    @property
    def outbound(self) -> bool:
        return self.intent is not None


Propensity = tuple[float, str]
"""A propensity in [0, 1] and where it came from (e.g. ``model:purchase_30d:category:outdoor@3``, ``default``)."""

PolicyCheck = Callable[[tuple[str, ...]], Decision]
"""For outbound requests: the contact-policy decision for these candidate channels (asked once per distinct
set of channels in a ranking: the decision depends on the person, the intent, the channels and the time)."""


@dataclass(slots=True)
class Ranked:
    offer: Offer
    score: float
    propensity: float
    propensity_source: str
    relevance: float
    interest_key: str | None
    interest_score: float
    interest_normalized: float
    channels: tuple[str, ...] = ()
    decision: Decision | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offer_id": self.offer.id, "title": self.offer.title, "score": round(self.score, 6),
            "decomposition": {
                "propensity": round(self.propensity, 6), "propensity_source": self.propensity_source,
                "relevance": round(self.relevance, 6),
                "interest": {"key": self.interest_key, "score": round(self.interest_score, 6),
                             "normalized": round(self.interest_normalized, 6)},
                "value": self.offer.value,
                "formula": "propensity × relevance × value",
            },
            "offer": self.offer.to_json(),
        }
        if self.decision is not None:
            out["decision"] = self.decision.to_json()
        return out


@dataclass(slots=True)
class Excluded:
    offer_id: str
    code: str
    reason: str
    decision: Decision | None = None
    channels: tuple[str, ...] = ()

    def to_json(self, with_decision: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"offer_id": self.offer_id, "code": self.code, "reason": self.reason}
        if self.channels:
            out["channels"] = list(self.channels)
        if self.decision is not None and with_decision:
            out["decision"] = self.decision.to_json()
        return out


@dataclass(frozen=True)
class Ranking:
    offers: tuple[Ranked, ...]
    excluded: tuple[Excluded, ...] = field(default_factory=tuple)
    considered: int = 0


def interest_scores(person: PersonOffers, now: datetime, config: RankConfig) -> dict[str, float]:
    """Each interest key's score at ``now`` (undecayed when ``config.decay`` is off)."""
    t = now.timestamp()
    if not config.decay:
        return {k: float(v[0]) for k, v in person.interests.items()}
    return {k: decay(float(v[0]), float(v[1]), t, person.half_life(k)) for k, v in person.interests.items()}


def purchased_products(events: Iterable[StoredEvent]) -> frozenset[str]:
    """Product ids (``product_id``, ``sku`` or ``id`` of ``properties.products``, or the order's own
    ``product_id``/``sku``) of the person's completed orders (``Order Completed`` and imported orders)."""
    out: set[str] = set()
    for se in events:
        ev = se.event
        p = ev.properties
        if ev.kind == "track" and ev.event == "Order Completed":
            pass
        elif ev.kind == "record" and p.get("record_type") == "order":
            if str(p.get("status") or "completed").lower() in ("refunded", "returned", "cancelled", "canceled"):
                continue
        else:
            continue
        items: list[Any] = [p]
        if isinstance(p.get("products"), list):
            items.extend(x for x in p["products"] if isinstance(x, Mapping))
        for item in items:
            for k in ("product_id", "sku", "id") if item is not p else ("product_id", "sku"):
                v = item.get(k)
                if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
                    out.add(str(v))
    return frozenset(out)


def _sends(messages: Sequence[MessageRecord], offer_id: str, since: datetime) -> int:
    return sum(1 for m in messages if m.campaign == offer_id and "sent" in m.statuses and m.sent_at > since)


def _channels(offer: Offer, request: Request) -> tuple[str, ...]:
    if not request.channels:
        return offer.channels
    if not offer.channels:
        return request.channels
    return tuple(ch for ch in request.channels if ch in offer.channels)


def rank(offers: Sequence[Offer], person: PersonOffers, request: Request, *,
         propensity: Callable[[Offer], Propensity] | None = None,
         policy: PolicyCheck | None = None, config: RankConfig | None = None) -> Ranking:
    """The best ``request.limit`` offers for ``person`` (highest score first; ties by value, then id)."""
    config = config or RankConfig()
    now = request.now
    if now.tzinfo is None:
        raise TaktError("now must be timezone-aware", code="invalid_request")
    if request.outbound and policy is None:
        raise TaktError("an outbound intent needs the contact policy", code="invalid_request")
    scores = interest_scores(person, now, config)
    top = max(scores.values(), default=0.0)
    excluded: list[Excluded] = []
    candidates: list[tuple[Offer, tuple[str, ...]]] = []
    for o in offers:
        if o.valid_from is not None and now < o.valid_from:
            excluded.append(Excluded(o.id, "not_yet_valid", f"valid from {o.valid_from.isoformat()}"))
            continue
        if o.valid_until is not None and now > o.valid_until:
            excluded.append(Excluded(o.id, "expired", f"valid until {o.valid_until.isoformat()}"))
            continue
        if request.placement is not None and o.placements and request.placement not in o.placements:
            excluded.append(Excluded(o.id, "other_placement", f"shown only in {', '.join(o.placements)}"))
            continue
        if request.intent is not None and request.intent not in o.intents:
            excluded.append(Excluded(o.id, "other_intent", f"sent only as {', '.join(o.intents)}"))
            continue
        chans = _channels(o, request)
        if request.channels and o.channels and not chans:
            excluded.append(Excluded(o.id, "no_channel", f"goes out only on {', '.join(o.channels)}"))
            continue
        if o.condition is not None:
            try:
                ok = evaluate(o.condition, person.view, now)
            except SegmentError as e:
                excluded.append(Excluded(o.id, "eligibility_error", f"eligibility cannot be evaluated: {e.reason}"))
                continue
            if not ok:
                excluded.append(Excluded(o.id, "not_eligible", f"does not match: {o.eligibility}"))
                continue
        if o.products and person.purchased is not None:
            bought = sorted(set(o.products) & person.purchased)
            if bought:
                excluded.append(Excluded(o.id, "already_bought", f"already bought {', '.join(bought[:5])}"))
                continue
        if o.cap is not None and request.outbound and person.messages is not None:
            n = _sends(person.messages, o.id, now - timedelta(days=o.cap.days))
            if n >= o.cap.max:
                excluded.append(Excluded(o.id, "cap_reached",
                                         f"sent {n} times in the last {o.cap.days:g} days (cap {o.cap.max})"))
                continue
        candidates.append((o, chans))

    scored: list[Ranked] = []
    for o, chans in candidates:
        key, best = None, 0.0
        for k in o.interests:
            s = scores.get(k, 0.0)
            if s > best:
                key, best = k, s
        normalized = best / top if top > 0 else 0.0
        relevance = config.floor + (1.0 - config.floor) * normalized
        p, source = propensity(o) if propensity is not None else (1.0, "default")
        scored.append(Ranked(o, p * relevance * o.value, p, source, relevance, key, best, normalized, chans))
    scored.sort(key=lambda r: (-r.score, -r.offer.value, r.offer.id))

    chosen: list[Ranked] = []
    decisions: dict[tuple[str, ...], Decision] = {}
    for r in scored:
        if len(chosen) >= request.limit:
            break
        if request.outbound:
            assert policy is not None
            if not r.channels:
                excluded.append(Excluded(r.offer.id, "no_channel", "no candidate channel: give channels"))
                continue
            d = decisions.get(r.channels) or policy(r.channels)
            decisions[r.channels] = d
            if not d.allowed:
                excluded.append(Excluded(r.offer.id, "contact_policy",
                                         sentences(x.sentence for x in d.reasons) or "not allowed", d, r.channels))
                continue
            r.decision = d
        chosen.append(r)
    return Ranking(tuple(chosen), tuple(excluded), len(offers))
