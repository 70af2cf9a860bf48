"""Offers over HTTP: the catalog and the next-best-offer decision.

* ``GET /v1/offers`` (read or admin key): the current catalog.
* ``POST /v1/offers`` (admin key): store one offer, or ``{"offers": [...], "replace": false}``; validated as a
  whole (nothing is stored when any offer is invalid); each changed offer gets a new version.
* ``GET /v1/offers/{offer_id}`` (read or admin key): the offer and every version of it.
* ``DELETE /v1/offers/{offer_id}`` (admin key): retire the offer (a tombstone version; history is kept).
* ``POST /v1/next-best-offer`` (read or admin key): the ranked offers for a person and a placement (inbound)
  or an intent (outbound, with the contact-policy decision per offer). Deciding writes nothing, like
  ``POST /v1/decide``, so a read key may ask.

Only translation happens here; the ranking is :func:`takt.models.offers.rank.rank`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.policy import _at, _body, _entry, _entry_facts, _policy_settings, _profile_ref, _settled
from takt.api.responses import JSON
from takt.errors import invalid
from takt.events.model import StoredEvent
from takt.models.clv.store import register as register_clv_section
from takt.models.offers.catalog import MAX_OFFERS, OFFER_FIELDS, Offer, validate_catalog, validate_offer
from takt.models.offers.propensity import propensity_for
from takt.models.offers.rank import PersonOffers, Ranking, purchased_products, rank
from takt.models.offers.rank import Request as RankRequest
from takt.models.offers.store import CatalogCache, OfferStore
from takt.policy import Intent, decide
from takt.policy.decide import Decision
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES
from takt.privacy.audit import arecord as audit
from takt.projections.tables import profile_view
from takt.segments.view import EventRow

register_clv_section()  # the profile JSON's "clv" section (stored by `takt clv score`)

READ_KINDS = ("read", "admin")
ADMIN_KINDS = ("admin",)
NBO_KINDS = ("read", "admin")
NBO_BODY = ("profile", "placement", "intent", "channels", "limit", "at")
MAX_LIMIT = 50
_PLACEMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def _store(c: ApiContext) -> OfferStore:
    store = c.extras.get("offer_store")
    if store is None:
        store = c.extras["offer_store"] = OfferStore(c.storage)
    return store  # type: ignore[no-any-return]


def _cache(c: ApiContext) -> CatalogCache:
    cache = c.extras.get("offer_cache")
    if cache is None:
        cache = c.extras["offer_cache"] = CatalogCache(_store(c))
    return cache  # type: ignore[no-any-return]


# ---- catalog ----
async def list_offers(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    offers = await run_in_threadpool(_store(c).current)
    return JSON({"offers": [o.to_json() for o in offers], "count": len(offers)})


async def put_offers(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, (*OFFER_FIELDS, "offers", "replace"))
    replace = body.pop("replace", False)
    if not isinstance(replace, bool):
        raise invalid("replace must be true or false", errors=[{"field": "replace", "reason": "a boolean"}])
    if "offers" in body:
        if set(body) - {"offers"}:
            raise invalid('give either one offer or {"offers": [...]}, not both',
                          errors=[{"field": k, "reason": "not allowed next to offers"}
                                  for k in sorted(set(body) - {"offers"})])
        offers = validate_catalog(body["offers"])
    else:
        if replace:
            raise invalid("replace needs a whole catalog: {\"offers\": [...], \"replace\": true}",
                          errors=[{"field": "replace", "reason": "only with offers"}])
        offers = [validate_offer(body)]
    now = c.clock()
    written = await run_in_threadpool(_store(c).put, offers, now, replace=replace)
    _cache(c).invalidate()
    return JSON({"success": True, "offers": [w.to_json() for w in written],
                 "changed": sum(1 for w in written if w.changed)})


async def get_offer(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    oid = request.path_params["offer_id"]
    store = _store(c)
    versions = await run_in_threadpool(store.history, oid)
    current = None if versions[0]["deleted"] else (await run_in_threadpool(store.get, oid)).to_json()
    return JSON({"id": oid, "offer": current, "deleted": current is None, "versions": versions})


async def delete_offer(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    w = await run_in_threadpool(_store(c).delete, request.path_params["offer_id"], c.clock())
    _cache(c).invalidate()
    return JSON({"success": True, **w.to_json(), "deleted": True})


# ---- next best offer ----
def _rank_request(body: dict[str, Any], c: ApiContext) -> RankRequest:
    placement, intent = body.get("placement"), body.get("intent")
    if (placement is None) == (intent is None):
        raise invalid("give exactly one of placement (an inbound slot, e.g. home_hero) or intent (outbound: "
                      f"{', '.join(MESSAGE_PURPOSES)})",
                      errors=[{"field": "placement", "reason": "exactly one of placement or intent"}])
    if placement is not None and (not isinstance(placement, str) or not _PLACEMENT.match(placement)):
        raise invalid("placement must be a name of letters, digits and . _ : / - (at most 128)",
                      errors=[{"field": "placement", "reason": "a placement name"}])
    if intent is not None and intent not in MESSAGE_PURPOSES:
        raise invalid(f"intent must be one of {', '.join(MESSAGE_PURPOSES)}, got {str(intent)[:40]!r}",
                      errors=[{"field": "intent", "reason": f"one of {', '.join(MESSAGE_PURPOSES)}"}])
    channels = body.get("channels")
    if channels is not None:
        if not isinstance(channels, list) or not channels or not all(isinstance(x, str) for x in channels):
            raise invalid("channels must be a non-empty list of channel names",
                          errors=[{"field": "channels", "reason": "a non-empty list of strings"}])
        unknown = [x for x in channels if x not in CHANNELS]
        if unknown:
            raise invalid(f"unknown channel {unknown[0][:40]!r} (expected {', '.join(CHANNELS)})",
                          errors=[{"field": "channels", "reason": f"unknown channel {unknown[0][:40]!r}"}])
    limit = body.get("limit", 3)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}",
                      errors=[{"field": "limit", "reason": f"1 to {MAX_LIMIT}"}])
    return RankRequest(now=_at(body, c), placement=placement, intent=intent,
                       channels=tuple(dict.fromkeys(channels or ())), limit=limit)


class _PersonEvents:
    """A person's events and what ranking derives from them (computed once per cached entry)."""

    __slots__ = ("_purchased", "_rows", "events")

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self._rows: tuple[EventRow, ...] | None = None
        self._purchased: frozenset[str] | None = None

    def rows(self) -> tuple[EventRow, ...]:
        if self._rows is None:
            self._rows = tuple(_event_rows(self.events))
        return self._rows

    def purchased(self) -> frozenset[str]:
        if self._purchased is None:
            self._purchased = purchased_products(self.events)
        return self._purchased


def _event_rows(events: list[StoredEvent]) -> list[EventRow]:
    return [EventRow(kind=e.event.kind, ts=e.event.timestamp, event=e.event.event, name=e.event.name,
                     properties=e.event.properties) for e in events]


class _EventCache:
    """A person's events by profile, reused while the profile holds the same events (a changed profile has
    other positions) and for at most ``ttl`` seconds; at most ``size`` profiles."""

    def __init__(self, size: int = 20_000, ttl: float = 60.0) -> None:
        self.size = size
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[tuple[int, int, int], float, _PersonEvents]] = OrderedDict()

    def get(self, pid: str, sig: tuple[int, int, int]) -> _PersonEvents | None:
        with self._lock:
            hit = self._items.get(pid)
            if hit is None or hit[0] != sig or time.monotonic() - hit[1] > self.ttl:
                return None
            self._items.move_to_end(pid)
            return hit[2]

    def put(self, pid: str, sig: tuple[int, int, int], events: _PersonEvents) -> None:
        with self._lock:
            self._items[pid] = (sig, time.monotonic(), events)
            self._items.move_to_end(pid)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


async def _events(c: ApiContext, pid: str, positions: list[int]) -> _PersonEvents:
    """The person's events (sorted ``positions``), through the per-profile cache."""
    cache = c.extras.get("offer_events")
    if cache is None:
        cache = c.extras["offer_events"] = _EventCache()
    sig = (len(positions), positions[0], positions[-1])
    hit: _PersonEvents | None = cache.get(pid, sig)
    if hit is None:
        hit = _PersonEvents(await run_in_threadpool(c.storage.log.get, positions))
        cache.put(pid, sig, hit)
    return hit


async def next_best_offer(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), NBO_KINDS)
    body = await _body(request, c, NBO_BODY)
    ref = _profile_ref(body)
    req = _rank_request(body, c)
    offers = _cache(c).offers()
    runner = await _settled(c)
    entry = await _entry(c, runner, ref)  # the published state: no fold, no lock (takt.projections.published)
    config = runner.config
    live = entry.state
    pid = live.id
    interests = {k: list(v) for k, v in live.interests.items()}
    positions = sorted(set(live.positions))
    view = entry.memo.get("view")
    if view is None:
        view = entry.memo["view"] = profile_view(live, (), config)
    want_events = any(o.needs_events for o in offers)
    want_products = any(o.products for o in offers)
    mine = _PersonEvents([])
    if (want_events or want_products) and positions:  # eligibility on events, already-bought products
        mine = await _events(c, pid, positions)
    policy = None
    messages = None
    if req.outbound:
        assert req.intent is not None
        facts = await _entry_facts(c, runner, entry)
        settings = await _policy_settings(c)
        purpose = req.intent

        def policy_check(channels: tuple[str, ...]) -> Decision:
            return decide(facts.person, Intent(purpose), channels, req.now, settings)

        policy = policy_check
        messages = facts.person.messages
    if want_events:
        view = replace(view, events=mine.rows())
    person = PersonOffers(profile_id=pid, interests=interests, half_life=config.half_life_seconds,
                          view=view, purchased=mine.purchased() if want_products else None,
                          messages=messages)
    propensity = propensity_for(c.storage, pid)
    result = rank(offers, person, req, propensity=propensity, policy=policy)
    if req.outbound:  # the answer holds policy decisions, with the contact points to use: audited
        await audit(c.storage, c.clock(), key.id, "offers.read", pid)
    return JSON(_ranking_json(pid, req, result))


def _ranking_json(profile_id: str, req: RankRequest, result: Ranking) -> dict[str, Any]:
    out: dict[str, Any] = {"profile_id": profile_id, "at": req.now.isoformat().replace("+00:00", "Z")}
    if req.placement is not None:
        out["placement"] = req.placement
    else:
        out["intent"] = req.intent
    out["offers"] = [r.to_json() for r in result.offers]
    out["excluded"] = [e.to_json(with_decision=False) for e in result.excluded]
    if req.outbound:  # every decision once (offers on the same channels share it), blocked ones included
        seen: dict[int, dict[str, Any]] = {}
        for d, chans in [(r.decision, r.channels) for r in result.offers] + [
                (e.decision, e.channels) for e in result.excluded]:
            if d is not None and id(d) not in seen:
                seen[id(d)] = {"channels": list(chans), **d.to_json()}
        out["policy"] = list(seen.values())
    out["considered"] = result.considered
    return out


def routes() -> list[Route]:
    return [
        Route("/v1/offers", list_offers, methods=["GET"]),
        Route("/v1/offers", put_offers, methods=["POST"]),
        Route("/v1/offers/{offer_id}", get_offer, methods=["GET"]),
        Route("/v1/offers/{offer_id}", delete_offer, methods=["DELETE"]),
        Route("/v1/next-best-offer", next_best_offer, methods=["POST"]),
    ]


# ---- OpenAPI ----




def openapi_paths() -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "[^\\s\\x1c-\\x1f\\x85]"}
    strings: dict[str, Any] = {"type": "array", "maxItems": 200, "items": text}
    offer_in: dict[str, Any] = {
        "type": "object", "additionalProperties": False, "required": ["id", "title", "value"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
            "title": {**text, "maxLength": 512}, "description": text,
            "interests": {"type": "array", "maxItems": 200,
                          "items": {"type": "string", "pattern": "^[a-z0-9-]+:[a-z0-9-]+$"}},
            "categories": strings, "eligibility": {**text, "description": "A segment expression."},
            "value": {"type": "number", "minimum": 0},
            "valid_from": {"type": "string", "format": "date-time"},
            "valid_until": {"type": "string", "format": "date-time"},
            "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}},
            "placements": {"type": "array", "maxItems": 200,
                           "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"}},
            "intents": {"type": "array", "items": {"type": "string", "enum": list(MESSAGE_PURPOSES)}},
            "products": strings,
            "cap": {"type": "object", "additionalProperties": False, "required": ["max", "days"],
                    "properties": {"max": {"type": "integer", "minimum": 1},
                                   "days": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}},
            "model": {**text, "maxLength": 256},
        }}
    offer_out: dict[str, Any] = {"type": "object", "additionalProperties": True, "required": ["id", "title", "value"],
                                 "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                                "value": {"type": "number"}, "version": {"type": "integer"}}}
    auth = {"401": _err("Missing, unknown or revoked key."), "403": _err("The key's kind may not use this endpoint.")}
    oid = {"name": "offer_id", "in": "path", "required": True, "schema": {"type": "string"}}
    written = {"type": "object", "required": ["success", "offers"],
               "properties": {"success": {"type": "boolean"}, "changed": {"type": "integer"},
                              "offers": {"type": "array", "items": {"type": "object"}}}}
    nbo_body = {
        "type": "object", "additionalProperties": False, "required": ["profile"],
        "properties": {
            "profile": {**text, "maxLength": 2048,
                        "description": "A profile id (p_…) or an identifier TYPE:VALUE."},
            "placement": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"},
            "intent": {"type": "string", "enum": list(MESSAGE_PURPOSES)},
            "channels": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(CHANNELS)}},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "at": {"type": "string", "format": "date-time"}},
        "oneOf": [{"required": ["placement"], "not": {"required": ["intent"]}},
                  {"required": ["intent"], "not": {"required": ["placement"]}}],
    }
    ranked = {"type": "object", "required": ["offer_id", "score", "decomposition"],
              "properties": {"offer_id": {"type": "string"}, "title": {"type": "string"},
                             "score": {"type": "number"}, "decomposition": {"type": "object"},
                             "offer": {"type": "object"}, "decision": {"type": "object"}}}
    return {
        "/v1/offers": {
            "get": {"summary": "The current offer catalog (read or admin key)", "operationId": "list_offers",
                    "security": [{"bearer": []}],
                    "responses": {"200": _ok("The offers", {
                        "type": "object", "required": ["offers"],
                        "properties": {"offers": {"type": "array", "items": offer_out},
                                       "count": {"type": "integer"}}}), **auth}},
            "post": {"summary": "Store one offer or a whole catalog (admin key)",
                     "description": "One offer, or {\"offers\": [...], \"replace\": false}. Validated as a whole: "
                                    "nothing is stored when any offer is invalid. A changed offer gets a new "
                                    f"version; `replace` retires offers not listed. At most {MAX_OFFERS} offers.",
                     "operationId": "put_offers", "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                         offer_in,
                         {"type": "object", "additionalProperties": False, "required": ["offers"],
                          "properties": {"offers": {"type": "array", "minItems": 1, "maxItems": 50,
                                                    "items": offer_in},
                                         "replace": {"type": "boolean"}}}]}}}},
                     "responses": {"200": _ok("Stored", written),
                                   "400": _err("An invalid offer: every problem named, with its field."), **auth}},
        },
        "/v1/offers/{offer_id}": {
            "get": {"summary": "An offer and all its versions (read or admin key)", "operationId": "get_offer",
                    "security": [{"bearer": []}], "parameters": [oid],
                    "responses": {"200": _ok("The offer", {
                        "type": "object", "required": ["id", "versions"],
                        "properties": {"id": {"type": "string"}, "offer": {"type": "object", "nullable": True},
                                       "deleted": {"type": "boolean"},
                                       "versions": {"type": "array", "items": {"type": "object"}}}}),
                                  **auth, "404": _err("No such offer.")}},
            "delete": {"summary": "Retire an offer (admin key); its versions are kept",
                       "operationId": "delete_offer", "security": [{"bearer": []}], "parameters": [oid],
                       "responses": {"200": _ok("Retired", {"type": "object", "required": ["success"],
                                                            "properties": {"success": {"type": "boolean"},
                                                                           "version": {"type": "integer"}}}),
                                     **auth, "404": _err("No such offer.")}},
        },
        "/v1/next-best-offer": {"post": {
            "summary": "The best offers for a person now, with their score decomposition (read or admin key)",
            "description": "score = propensity × relevance (interest decayed to `at`, normalized) × value, after "
                           "validity, placement/intent, eligibility, already-bought and cap rules. For an "
                           "outbound intent each offer carries the contact-policy decision; offers the policy "
                           "blocks are listed under `excluded` (code `contact_policy`, with their channels) and "
                           "every decision made appears once under `policy`.",
            "operationId": "next_best_offer", "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": nbo_body}}},
            "responses": {"200": _ok("The ranked offers", {
                "type": "object", "required": ["profile_id", "offers", "excluded"],
                "properties": {"profile_id": {"type": "string"}, "at": {"type": "string"},
                               "placement": {"type": "string"}, "intent": {"type": "string"},
                               "offers": {"type": "array", "items": ranked},
                               "excluded": {"type": "array", "items": {"type": "object"}},
                               "policy": {"type": "array", "items": {"type": "object"}},
                               "considered": {"type": "integer"}}}),
                "400": _err("Invalid body: unknown fields, placement/intent, channels, limit or time."), **auth,
                "404": _err("No such profile."), "503": _err("Profiles are not projected by this server (`unavailable`), or the projection did "
                                                          "not publish this server's writes about the person in time "
                                                          "(`projection_behind`: retry).")}},
        },
    }


__all__ = ["Offer", "openapi_paths", "routes"]
