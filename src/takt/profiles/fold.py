"""The profile fold: ``fold_event(state, stored, config)`` applies one event to one profile's state.

Deterministic and free of outside effects: the state after a sequence of events depends only on those
events and the config (time comes from the events, never the clock). The fold owns the state it is given
and changes it in place (for speed); a profile's state is the fold of its events in log-position order.

Dispatch is a table per event kind and, for ``track``, per event name; every event first updates the
common parts (seen times, counts, sessions, touchpoints, traits and contact points, interests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Any

from takt.events.model import TRUST_RANK, Event, StoredEvent
from takt.identity.identifiers import make_identifier
from takt.identity.kinds import RECORD, UNMERGE
from takt.identity.resolver import aware
from takt.identity.resolver import iso as _iso_uncached
from takt.policy.folded import fold_policy
from takt.profiles.config import ProfileConfig
from takt.profiles.derived import DERIVED_KINDS
from takt.profiles.interests import add_weight, decay, event_weight, half_life, interest_keys, memo, slug
from takt.profiles.state import JSON, ProfileState
from takt.profiles.touchpoints import HOURS_PER_WEEK, channel_of, hour_of_week, touchpoint_name

Handler = Callable[[ProfileState, StoredEvent, ProfileConfig], None]

iso = lru_cache(maxsize=16)(_iso_uncached)  # one event's time is formatted by several parts of the fold

IGNORED_KINDS = frozenset({UNMERGE, *DERIVED_KINDS})
MESSAGE_KIND = "message"
ACTIVITY_KINDS = frozenset({"track", "page", "screen", "identify", "group", "alias"})
TRAIT_CONTACT_TYPES = ("email", "phone")


def fold_event(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> list[JSON]:
    """Apply one event; returns the interest shifts it caused (already recorded in ``state.shifts``)."""
    ev = stored.event
    if ev.kind in IGNORED_KINDS or state.has(ev.source, ev.message_id):
        return []
    state.note(stored.position, ev.source, ev.message_id)
    _seen(state, ev, config)
    _traits_and_contacts(state, stored, config)
    handler = _TRACK.get(ev.event or "") if ev.kind == "track" else _KINDS.get(ev.kind)
    if handler is not None:
        handler(state, stored, config)
    fold_policy(state, stored)  # consent, messages, own settings: what a decision reads (takt.policy.folded)
    return _interests(state, stored, config)


# ---- common parts ----
@lru_cache(maxsize=8)
def _gap(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def _seen(state: ProfileState, ev: Event, config: ProfileConfig) -> None:
    at = iso(ev.timestamp)
    st = state.stats
    if st["first_seen"] is None or at < st["first_seen"]:
        st["first_seen"] = at
    if st["last_seen"] is None or at > st["last_seen"]:
        st["last_seen"] = at
    st["events"] += 1
    name = ev.event if ev.kind == "track" else (
        f"record:{ev.properties.get('record_type')}" if ev.kind == RECORD else ev.kind)
    counts = st["event_counts"]
    counts[name or ev.kind] = counts.get(name or ev.kind, 0) + 1
    if ev.kind == RECORD:
        channel = _record_channel(ev.properties)
        if channel is not None:
            _touch(state, ev, channel, at)
        return
    if ev.kind == MESSAGE_KIND:
        # takt.policy.messages: a customer opening or clicking a message is a touch on its channel.
        status, channel = ev.properties.get("status"), ev.properties.get("channel")
        if status in ("opened", "clicked") and isinstance(channel, str):
            _touch(state, ev, touchpoint_name(channel) or channel, at)
        return
    if ev.kind not in ACTIVITY_KINDS:
        return
    sess = st["sessions"]
    sid = ev.context.get("sessionId") if ev.context else None
    if isinstance(sid, (str, int)) and not isinstance(sid, bool) and (sid := str(sid)):
        if sid != sess["last_session_id"]:
            sess["count"] += 1
            sess["last_session_id"] = sid
    else:
        last = sess["last_activity"]
        if last is None:
            sess["count"] += 1
        else:
            try:
                cutoff = iso(ev.timestamp - _gap(config.session_minutes))
            except OverflowError:  # an event dated in year 1: nothing can be earlier
                cutoff = ""
            if last < cutoff:
                sess["count"] += 1
    if sess["last_activity"] is None or at > sess["last_activity"]:
        sess["last_activity"] = at
    _touch(state, ev, channel_of(ev, config), at)


def _record_channel(props: Mapping[str, Any]) -> str | None:
    """An imported case names its channel; an order with a store was made in the store."""
    rt = props.get("record_type")
    if rt == "case" and isinstance(props.get("channel"), str) and props["channel"].strip():
        return touchpoint_name(props["channel"]) or "other"
    if rt == "order" and props.get("store"):
        return "store"
    return None


def _touch(state: ProfileState, ev: Event, channel: str, at: str) -> None:
    tp = state.touchpoints.get(channel)
    if tp is None:
        tp = state.touchpoints[channel] = {"count": 0, "last_at": None, "hours": [0] * HOURS_PER_WEEK}
    tp["count"] += 1
    if tp["last_at"] is None or at > tp["last_at"]:
        tp["last_at"] = at
    tp["hours"][hour_of_week(ev)] += 1


def _trait_maps(ev: Event) -> list[Mapping[str, Any]]:
    maps: list[Mapping[str, Any]] = []
    ctx = ev.context.get("traits") if ev.context else None
    if isinstance(ctx, Mapping):
        maps.append(ctx)
    if ev.kind == "identify" and ev.traits:
        maps.append(ev.traits)
    if ev.kind == RECORD:
        rt = ev.properties.get("traits")
        if isinstance(rt, Mapping):
            maps.append(rt)
    return maps


def _traits_and_contacts(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    ev = stored.event
    maps = _trait_maps(ev)
    for traits in maps:
        for name, value in traits.items():
            if value is not None:
                _set_trait(state, name, value, stored, config)
    customer_given: bool | None = None
    if ev.kind == RECORD:
        flag = ev.properties.get("contact_points_customer_given")
        customer_given = flag if isinstance(flag, bool) else None
    idc = config.identity
    for traits in maps:
        for type_name in TRAIT_CONTACT_TYPES:
            _contact(state, make_identifier(type_name, traits.get(type_name), idc), stored, config, customer_given)
        for t in idc.types.values():
            if t.normalize == "handle":
                for tn in t.traits:
                    _contact(state, make_identifier(t.name, traits.get(tn), idc), stored, config, customer_given)
        address = traits.get("address")
        if isinstance(address, Mapping | str) and address:
            _contact(state, _address_key(address), stored, config, customer_given, value=address)
    if ev.kind == RECORD:
        address = ev.properties.get("postal_address")
        if isinstance(address, Mapping) and address:
            _contact(state, _address_key(address), stored, config, customer_given, value=dict(address))
    for traits in maps:
        if traits.get("email_verified") is True:
            _verify(state, make_identifier("email", traits.get("email"), idc), ev)
        if traits.get("phone_verified") is True:
            _verify(state, make_identifier("phone", traits.get("phone"), idc), ev)
    if ev.kind == RECORD:
        ids = ev.properties.get("identifiers")
        if isinstance(ids, Mapping):
            for type_name, raw in ids.items():
                ty = idc.types.get(type_name)
                if ty is not None and (type_name in TRAIT_CONTACT_TYPES or ty.normalize == "handle"):
                    _contact(state, make_identifier(type_name, raw, idc), stored, config, customer_given)


def _address_key(address: Mapping[str, Any] | str) -> str:
    if isinstance(address, str):
        return "address:" + slug(address)
    parts = [str(address.get(k, "")) for k in ("street", "postal_code", "postalCode", "city", "country")]
    return "address:" + slug(" ".join(p for p in parts if p))


def trust_of(entry: Mapping[str, Any]) -> str:
    """The trust of a trait or contact point entry (absent: ``server``, what states written before had)."""
    t = entry.get("trust")
    return t if isinstance(t, str) else "server"


def is_claim(entry: Mapping[str, Any]) -> bool:
    """Whether only public events asserted the entry (a visitor's claim, not the company's knowledge)."""
    return entry.get("trust") == "public"


def _better(config: ProfileConfig, new: tuple[str, str, int], old: tuple[str, str, int],
            new_claim: bool = False, old_claim: bool = False) -> bool:
    """Whether (provenance, at, position) ``new`` beats ``old``: a trusted value beats a claim whatever their
    provenance; then better rank, else later."""
    if new_claim != old_claim:
        return old_claim
    rn, ro = config.rank.get(new[0], len(config.rank)), config.rank.get(old[0], len(config.rank))
    if rn != ro:
        return rn < ro
    return (new[1], new[2]) >= (old[1], old[2])


def _set_trait(state: ProfileState, name: str, value: Any, stored: StoredEvent, config: ProfileConfig) -> None:
    ev = stored.event
    at = iso(ev.timestamp)
    old = state.traits.get(name)
    claim = ev.is_claim
    if old is None or _better(config, (ev.provenance, at, stored.position),
                              (old["provenance"], old["at"], old["position"]), claim, is_claim(old)):
        entry = {"value": value, "provenance": ev.provenance, "source": ev.source, "at": at,
                 "position": stored.position, "message_id": ev.message_id}
        if ev.trust != "server":
            entry["trust"] = ev.trust
        state.traits[name] = entry


def _contact(state: ProfileState, key: str | None, stored: StoredEvent, config: ProfileConfig,
             customer_given: bool | None, value: Any = None) -> None:
    if key is None or key.endswith(":"):
        return
    ev = stored.event
    at = iso(ev.timestamp)
    type_name, _, norm = key.partition(":")
    given = customer_given if customer_given is not None else ev.provenance == "customer_provided"
    cp = state.contacts.get(key)
    if cp is None:
        cp = state.contacts[key] = {
            "type": type_name, "value": value if value is not None else norm, "provenance": ev.provenance,
            "source": ev.source, "first_seen": at, "last_seen": at, "verified": False, "verified_at": None,
            "customer_given": given, "position": stored.position, "message_id": ev.message_id,
        }
        if ev.trust != "server":
            cp["trust"] = ev.trust
        return
    cp["first_seen"] = min(cp["first_seen"], at)
    cp["last_seen"] = max(cp["last_seen"], at)
    claim, was_claim = ev.is_claim, is_claim(cp)
    if claim and not was_claim:
        return  # a claim adds nothing to what a trusted event said of this contact point
    if was_claim and not claim:
        # the first trusted event: the contact point is the company's knowledge now, on that event's terms
        cp.update(provenance=ev.provenance, source=ev.source, position=stored.position, message_id=ev.message_id,
                  customer_given=given)
        if ev.trust == "server":
            cp.pop("trust", None)
        else:
            cp["trust"] = ev.trust
        return
    cp["customer_given"] = bool(cp["customer_given"] or given)
    if not claim and TRUST_RANK.get(ev.trust, 0) < TRUST_RANK.get(trust_of(cp), 0):
        cp.pop("trust", None)  # server (the only trust better than verified)
    rn = config.rank.get(ev.provenance, len(config.rank))
    ro = config.rank.get(cp["provenance"], len(config.rank))
    if rn < ro:
        cp.update(provenance=ev.provenance, source=ev.source, position=stored.position, message_id=ev.message_id)


def _verify(state: ProfileState, key: str | None, ev: Event) -> None:
    if key is None or ev.is_claim:  # a visitor cannot vouch that an address is theirs
        return
    cp = state.contacts.get(key)
    if cp is None:
        return
    at = iso(ev.timestamp)
    cp["verified"] = True
    if cp["verified_at"] is None or at < cp["verified_at"]:
        cp["verified_at"] = at


# ---- orders, returns, cases ----
def _number(*values: Any) -> float | None:
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def _categories(props: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    raw: list[Any] = [props.get("category")]
    if isinstance(props.get("categories"), list):
        raw.extend(props["categories"])
    if isinstance(props.get("products"), list):
        raw.extend(p.get("category") for p in props["products"] if isinstance(p, Mapping))
    for c in raw:
        if isinstance(c, str) and slug(c) and slug(c) not in out:
            out.append(slug(c))
    return out


def _order(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    ev = stored.event
    p = ev.properties
    oid = p.get("order_id", p.get("orderId", p.get("row_key") if ev.kind == RECORD else None))
    orders = state.stats["orders"]
    if isinstance(oid, str | int) and not isinstance(oid, bool):
        if str(oid) in orders["ids"]:
            return
        orders["ids"].append(str(oid))
    at = iso(ev.timestamp)
    orders["count"] += 1
    orders["revenue"] += _number(p.get("revenue"), p.get("total"), p.get("value")) or 0.0
    if orders["last_order_at"] is None or at >= orders["last_order_at"]:
        orders["last_order_at"] = at
        orders["last_order_id"] = str(oid) if oid is not None else None
    for c in _categories(p):
        orders["categories"][c] = orders["categories"].get(c, 0) + 1


def _return(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    p = stored.event.properties
    r = state.stats["returns"]
    at = iso(stored.event.timestamp)
    r["count"] += 1
    r["amount"] += _number(p.get("total"), p.get("revenue"), p.get("amount"), p.get("price"), p.get("value")) or 0.0
    if r["last_at"] is None or at > r["last_at"]:
        r["last_at"] = at


def _case(state: ProfileState, stored: StoredEvent, status: str | None) -> None:
    ev = stored.event
    p = ev.properties
    cid = p.get("case_id", p.get("caseId", p.get("row_key")))
    case_id = str(cid) if isinstance(cid, str | int) and not isinstance(cid, bool) else ev.message_id
    if status is None:
        raw = p.get("status")
        status = "closed" if isinstance(raw, str) and raw.lower() in ("closed", "resolved", "done") else "open"
    at = iso(ev.timestamp)
    cases = state.stats["cases"]
    case = cases.setdefault(case_id, {"status": status, "opened_at": None, "closed_at": None,
                                      "product_in_repair": None, "subject": None})
    if status == "open":
        if case["opened_at"] is None or at < case["opened_at"]:
            case["opened_at"] = at
        if case["closed_at"] is None or at > case["closed_at"]:
            case["status"] = "open"
    else:
        if case["closed_at"] is None or at > case["closed_at"]:
            case["closed_at"] = at
        if case["opened_at"] is None or at >= case["opened_at"]:
            case["status"] = "closed"
    product = p.get("product_in_repair")
    if product is None and (p.get("repair") is True or p.get("in_repair") is True):
        product = p.get("product_id", p.get("product"))
    if isinstance(product, str | int) and not isinstance(product, bool):
        case["product_in_repair"] = str(product)
    if isinstance(p.get("subject"), str):
        case["subject"] = p["subject"]


def _case_opened(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    _case(state, stored, "open")


def _case_closed(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    _case(state, stored, "closed")


def _verified(type_name: str) -> Handler:
    def handler(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
        ev = stored.event
        raw = ev.properties.get(type_name)
        if raw is None:
            for traits in _trait_maps(ev):
                raw = traits.get(type_name)
                if raw is not None:
                    break
        if raw is None:
            # The only contact point of that type, when there is exactly one.
            keys = [k for k, c in state.contacts.items() if c["type"] == type_name]
            key = keys[0] if len(keys) == 1 else None
        else:
            key = make_identifier(type_name, raw, config.identity)
        _verify(state, key, ev)
    return handler


def _record(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> None:
    props = stored.event.properties
    rt = props.get("record_type")
    if rt == "order":
        status = str(props.get("status") or "completed").lower()
        if status in ("refunded", "returned"):
            _return(state, stored, config)
        elif status not in ("cancelled", "canceled"):
            _order(state, stored, config)
    elif rt == "case":
        _case(state, stored, None)


_TRACK: dict[str, Handler] = {
    "Order Completed": _order,
    "Order Refunded": _return,
    "Product Returned": _return,
    "Case Opened": _case_opened,
    "Case Closed": _case_closed,
    "Email Verified": _verified("email"),
    "Phone Verified": _verified("phone"),
}

_KINDS: dict[str, Handler] = {RECORD: _record}


# ---- interests ----
def _interests(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> list[JSON]:
    ev = stored.event
    if ev.kind == RECORD:
        weight = config.weights.get("Order Completed", 0.0) if ev.properties.get("record_type") == "order" else 0.0
    else:
        weight = event_weight(ev, config)
    if weight <= 0:
        return []
    keys = interest_keys(ev, config)
    if not keys:
        return []
    t = aware(ev.timestamp).timestamp()
    interests = state.interests
    hls = memo(config).half_lives
    for k in keys:
        interests[k] = add_weight(interests.get(k), weight, t, hls.get(k) or half_life(k, config))
    now = t
    for _, a in interests.values():
        if a > now:
            now = a
    top_key, top_score = _top(interests, now, config, hls)
    declared = state.top_interest
    if declared is None:
        if top_score >= config.shift_threshold:
            state.top_interest = top_key
        return []
    if top_key == declared or top_score < config.shift_threshold:
        return []
    entry = interests.get(declared)
    old_score = decay(entry[0], entry[1], now, half_life(declared, config)) if entry else 0.0
    if top_score <= old_score * (1.0 + config.shift_margin):
        return []
    shift = _shift(declared, top_key, old_score, top_score, stored)
    state.top_interest = top_key
    state.shifts.append(shift)
    return [shift]


def _top(interests: Mapping[str, list[float]], now: float, config: ProfileConfig,
         hls: Mapping[str, float]) -> tuple[str, float]:
    """The highest decayed score at ``now`` (ties: the smaller key), without sorting. ``hls``: the memo of
    half-lives by key (:func:`~takt.profiles.interests.half_life` fills it)."""
    best_key, best = "", -1.0
    for k, (score, as_of) in interests.items():
        # decay(), inlined: this loop runs for every interest of the profile on every weighted event
        v = score if now <= as_of else score * 2.0 ** (-(now - as_of) / (hls.get(k) or half_life(k, config)))
        if v > best or (v == best and k < best_key):
            best_key, best = k, v
    return best_key, best


def _shift(old: str, new: str, old_score: float, new_score: float, cause: StoredEvent) -> JSON:
    ev = cause.event
    return {"from": old, "to": new, "from_score": round(old_score, 6), "to_score": round(new_score, 6),
            "at": iso(ev.timestamp),
            "cause": {"position": cause.position, "source": ev.source, "message_id": ev.message_id}}


# ---- merges ----
def merge_shift(before: str | None, state: ProfileState, cause: StoredEvent, config: ProfileConfig) -> JSON | None:
    """The shift a merge caused: ``before`` is the survivor's top interest as it was before ``cause`` (the event
    that merged), ``state`` the merged profile re-folded from the union of the events. When both declare a top
    and they differ, the merge changed the profile's top (a login on a second device whose anonymous browsing
    was about something else): the shift from ``before`` to the merged top, scored at the merge (the later of
    its time and the newest interest), caused by the merging event. Otherwise ``None``.

    Nothing is recorded in ``state.shifts``: a state stays the fold of its events in position order, whose
    shifts are those of the events as one profile."""
    after = state.top_interest
    if before is None or after is None or after == before:
        return None
    now = aware(cause.event.timestamp).timestamp()
    for _, as_of in state.interests.values():
        now = max(now, as_of)

    def score(key: str) -> float:
        entry = state.interests.get(key)
        return decay(entry[0], entry[1], now, half_life(key, config)) if entry else 0.0

    return _shift(before, after, score(before), score(after), cause)
