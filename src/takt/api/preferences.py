"""The preference center: a customer-facing page reached by a signed, expiring link (no login, no cookies).

* ``GET /v1/profiles/{profile_id}/preference-link?days=30`` (admin): the link for one person, valid ``days``
  days (1 to 365). The token is signed with the workspace's signing secret (HMAC-SHA256, as the unsubscribe
  links) and names the profile, its purpose (``preferences``) and its expiry; it cannot be forged or altered.
* ``GET /p/{token}``: the page. It shows the person's channel × purpose preferences with their current state,
  what takt holds about them (contact points and traits, each with where it came from: provenance, source and
  when) and their recent messages with why each was allowed.
* ``POST /p/{token}`` (the page's form; the token travels in the path and in the form): every changed
  preference becomes a ``consent`` event by the customer (evidence method ``preference_center``, with the
  request's ip and user agent), committed to the log before the page confirms, so the very next decision sees
  it. A forged, altered or expired token gets a 403 page and changes nothing.

Grants and withdrawals here cover the whole channel (every contact point on it). They are the customer's own
changes made through a link takt signed, so they keep ``server`` trust (unlike a browser's ``Consent Updated``
claim): a grant here confirms a pending claim and lifts the customer's own withdrawal. A grant of email
marketing made here is a single opt-in: policy still waits for a double opt-in when
``policy.email_marketing_requires_double_opt_in`` is on, and the page says it is not active yet (it promises no
confirmation email: takt sends none).

**Language.** The page speaks the customer's language where the profile has one: the trait ``locale`` (or
``language``) unless a third party gave it, else the newest ``context.locale`` of the person's recent events,
else the browser's ``Accept-Language``; English when takt has no texts for it (see :mod:`takt.ui.texts`). A
refusal (no profile known) follows ``Accept-Language``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.collect import read_capped
from takt.api.context import ApiContext, ctx
from takt.api.links import LinkError, link_base, open_claims, seal_claims, signing_secret
from takt.api.openapi import PUBLIC_RESPONSES, TOKEN_PARAMETER
from takt.api.policy import _digest, _entry, _entry_facts, _link, _settled
from takt.api.ratelimit import check_public
from takt.api.responses import JSON
from takt.errors import TaktError, invalid
from takt.events.model import Event, StoredEvent, parse_time
from takt.policy import folded
from takt.policy.consent import CONSENT, ConsentLedger, fold_consent
from takt.policy.from_profile import PersonFacts, personal_setting
from takt.policy.messages import MessageRecord
from takt.policy.person import ContactPoint
from takt.policy.suppression import contact_point_hash
from takt.policy.suppression_store import suppression_key
from takt.policy.vocab import CHANNEL_KIND, CHANNELS
from takt.privacy.audit import LINK_ACTOR
from takt.privacy.audit import record as audit
from takt.profiles.state import ProfileState
from takt.ui.preferences import (
    Cell,
    HeldItem,
    MessageLine,
    PreferencePage,
    preference_page,
    refusal_page,
)
from takt.ui.texts import PreferenceTexts, from_accept_language, language_of, texts_for
from takt.ui.texts.en import TEXTS as EN

TOKEN_KIND = "preferences"
SOURCE = "takt.preferences"
PURPOSES_SHOWN = ("marketing", "service", "personalization", "third_party_sharing")
DEFAULT_DAYS = 30
MAX_DAYS = 365
MAX_FORM_BYTES = 64 * 1024
RECENT_MESSAGES = 20
LOCALE_TRAITS = ("locale", "language")
LOCALE_EVENTS = 50
"""How many of the person's newest events are read for a ``context.locale``."""
_RANK = {"objected": 0, "withdrawn": 1, "none": 2, "claimed": 3, "granted": 4}


class Refused(TaktError):
    """A link that is not valid: answered with the refusal page (``key`` names the text, see
    :attr:`~takt.ui.texts.PreferenceTexts.refusals`)."""

    key: str = "damaged"


def _refuse(key: str) -> Refused:
    e = Refused(EN.refusals[key], code="invalid_token", status=403)
    e.key = key
    return e


def _link_refusal(e: LinkError) -> str:
    """The customer-facing text (a key of the language's ``refusals``) for a link that cannot be used."""
    if e.code == "link_outdated":
        return "outdated"
    return "altered" if "altered" in e.message else "damaged"


def issue_token(secret: bytes, profile_id: str, expires: datetime) -> str:
    """An opaque link token (``takt.api.links``) naming the profile and the expiry, sealed."""
    return seal_claims(secret, {"k": TOKEN_KIND, "p": profile_id, "exp": int(expires.timestamp())})


def read_preference_token(secret: bytes, token: str, now: datetime) -> str:
    """The profile id a preference token names; a forged, altered, foreign, old-format or expired one is
    refused."""
    try:
        claims = open_claims(secret, token)
    except LinkError as e:
        raise _refuse(_link_refusal(e)) from None
    if claims.get("k") != TOKEN_KIND or not isinstance(claims.get("p"), str) \
            or not isinstance(claims.get("exp"), int):
        raise _refuse("not_preferences")
    if now.timestamp() >= claims["exp"]:
        raise _refuse("expired")
    return str(claims["p"])


# ---- the link ----
async def preference_link(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ("admin",))
    unknown = sorted(set(request.query_params) - {"days"})
    if unknown:
        raise invalid(f"unknown query parameter {unknown[0]!r} (expected days)")
    raw = request.query_params.get("days", str(DEFAULT_DAYS))
    try:
        days = int(raw)
        if not 1 <= days <= MAX_DAYS:
            raise ValueError
    except ValueError:
        raise invalid(f"days must be a whole number from 1 to {MAX_DAYS}, got {raw[:20]!r}",
                      errors=[{"field": "days", "reason": f"1 to {MAX_DAYS}"}]) from None
    runner = await _settled(c)
    state = (await _entry(c, runner, request.path_params["profile_id"])).state
    expires = (c.clock() + timedelta(days=days)).replace(microsecond=0)
    token = issue_token(signing_secret(c.storage), state.id, expires)
    return JSON({"profile_id": state.id, "url": f"{link_base(c)}/p/{token}",
                 "expires_at": expires.astimezone(UTC).isoformat().replace("+00:00", "Z")})


# ---- what the page shows ----
def _cell(ledger: ConsentLedger, channel: str, purpose: str, points: list[ContactPoint],
          t: PreferenceTexts = EN) -> Cell:
    """The state that decides for the channel: the most restrictive over its contact points."""
    states = [ledger.state(purpose, channel, cp.value) for cp in points] or [ledger.state(purpose, channel, None)]
    s = min(states, key=lambda st: (_RANK[st.status], st.confirmed))
    note = ""
    if s.contact_point is not None and s.status in ("withdrawn", "objected") and \
            ledger.state(purpose, channel, None).status not in ("withdrawn", "objected"):
        note = t.for_contact_point.format(contact_point=s.contact_point)
    return Cell(channel, purpose, s.status, s.confirmed, _iso(s.since), note)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when(value: Any) -> str | None:
    """A stored time (ISO text) as people read it: ``2026-11-01 09:00 UTC``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value


def _channels(points: list[ContactPoint]) -> tuple[str, ...]:
    kinds = {cp.kind for cp in points}
    return tuple(ch for ch in CHANNELS if CHANNEL_KIND[ch] in kinds)


def _why(m: MessageRecord, facts: PersonFacts, t: PreferenceTexts = EN) -> str:
    """Why a message was allowed, from the consent on record when it was sent."""
    if m.intent != "marketing":
        return t.why_not_marketing.format(intent=t.intent_words.get(m.intent, m.intent))
    ledger = fold_consent(e for _, e in facts.consent_events if e.timestamp <= m.sent_at)
    s = ledger.state("marketing", m.channel, m.contact_point)
    applied = [ch for ch in s.history if ch.applied and ch.record is not None]
    if s.status == "granted" and applied:
        r = applied[-1].record
        assert r is not None
        how = r.evidence.method or t.unknown_method
        where = f", {r.evidence.source}" if r.evidence.source else ""
        confirmed = t.why_confirmed if s.confirmed else ""
        return t.why_granted.format(channel=m.channel, at=_iso(r.at), how=how, where=where, confirmed=confirmed)
    return t.why_no_consent.format(channel=m.channel, status=s.status)


def _held(state: ProfileState, points: list[ContactPoint], suppressed: frozenset[str],
          key: bytes, t: PreferenceTexts = EN, suppressed_marketing: frozenset[str] = frozenset()
          ) -> tuple[tuple[HeldItem, ...], tuple[HeldItem, ...]]:
    contacts: list[HeldItem] = []
    for _, c in sorted(state.contacts.items()):
        value = c.get("value")
        text = value if isinstance(value, str) else ", ".join(str(v) for v in value.values()) \
            if isinstance(value, dict) else str(value)
        note = ""
        kind = {"email": "email", "phone": "phone", "address": "postal_address"}.get(str(c.get("type")), "social")
        h = contact_point_hash(key, kind, value) if kind in ("email", "phone") and isinstance(value, str) \
            and value and (suppressed or suppressed_marketing) else None
        if h is not None and h in suppressed:
            note = t.held_never_send
        elif c.get("provenance") in ("third_party", "observed"):
            note = t.held_never_used
        elif h is not None and h in suppressed_marketing:
            note = t.held_marketing_blocked
        contacts.append(HeldItem(str(c.get("type", "")), text, str(c.get("provenance", "")),
                                 str(c.get("source", "")), _when(c.get("first_seen")), note))
    traits = tuple(HeldItem(name, orjson.dumps(t.get("value")).decode() if not isinstance(t.get("value"), str)
                            else str(t.get("value")), str(t.get("provenance", "")), str(t.get("source", "")),
                            _when(t.get("at")))
                   for name, t in sorted(state.traits.items()))
    return tuple(contacts), traits


def profile_language(state: ProfileState, events: list[StoredEvent]) -> str | None:
    """The language the profile has (a ``locale``/``language`` trait not from a third party, else the newest
    ``context.locale``) when takt has texts for it."""
    return personal_setting(state, events, LOCALE_TRAITS, "locale", language_of)


async def _texts(c: ApiContext, state: ProfileState, request: Request) -> PreferenceTexts:
    if folded.exact(state):  # the fold keeps the newest context.locale (takt.policy.folded)
        assert state.policy is not None
        own = personal_setting(state, (), LOCALE_TRAITS, "locale", language_of) or state.policy.get("loc")
        return texts_for(own, from_accept_language(request.headers.get("accept-language")))
    newest = sorted(set(state.positions))[-LOCALE_EVENTS:]
    events: list[StoredEvent] = await run_in_threadpool(c.storage.log.get, newest) if newest else []
    return texts_for(profile_language(state, events), from_accept_language(request.headers.get("accept-language")))


def _request_texts(request: Request) -> PreferenceTexts:
    return texts_for(from_accept_language(request.headers.get("accept-language")))


Saved = tuple[str, str, bool]
"""A change the form made: ``(channel, purpose, on)``."""


async def _page_model(c: ApiContext, request: Request, token: str, profile_id: str,
                      saved: tuple[Saved, ...] | None = None) -> PreferencePage:
    """The page; ``saved``: what a submitted form changed (``()``: nothing), ``None`` when nothing was sent."""
    runner = await _settled(c)
    try:
        entry = await _entry(c, runner, profile_id)  # the published state (takt.projections.published)
    except TaktError:
        raise _refuse("gone") from None
    state = entry.state
    t = await _texts(c, state, request)
    facts = await _entry_facts(c, runner, entry)
    person = facts.person
    points = list(person.contact_points)
    channels = _channels(points)
    cells = {(ch, pu): _cell(person.consent, ch, pu, [cp for cp in points if cp.kind == CHANNEL_KIND[ch]], t)
             for ch in channels for pu in PURPOSES_SHOWN}
    messages = sorted(person.messages, key=lambda m: m.sent_at, reverse=True)[:RECENT_MESSAGES]
    key = await run_in_threadpool(suppression_key, c.storage)
    contacts, traits = _held(state, points, person.suppressed, key, t, person.suppressed_marketing)
    return PreferencePage(
        token=token, channels=channels, purposes=PURPOSES_SHOWN, cells=cells, traits=traits,
        contact_points=contacts,
        messages=tuple(MessageLine(_iso(m.sent_at) or "", m.channel, m.intent, m.campaign, m.contact_point,
                                   _why(m, facts, t)) for m in messages),
        saved=() if saved is None else tuple(_saved_text(s, t) for s in saved) or (t.nothing_changed,),
        texts=t)


def _saved_text(item: Saved, t: PreferenceTexts) -> str:
    ch, pu, on = item
    return f"{t.channel_names.get(ch, ch)}: {t.purpose_names.get(pu, pu)} — {t.saved_on if on else t.saved_off}"


def _refusal(e: Refused, request: Request) -> Response:
    t = _request_texts(request)
    return HTMLResponse(refusal_page(t.refusals.get(e.key, e.message), t), status_code=403)


async def page(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)  # no key: rate-limited per client address
    token = request.path_params["token"]
    try:
        profile_id = read_preference_token(signing_secret(c.storage), token, c.clock())
        model = await _page_model(c, request, token, profile_id)
        await _audit_view(c, profile_id)
        return HTMLResponse(preference_page(model),
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    except Refused as e:
        return _refusal(e, request)


async def _audit_view(c: ApiContext, profile_id: str) -> None:
    """The page shows what takt holds about the person: audited before it is shown."""
    await run_in_threadpool(audit, c.storage, c.clock(), LINK_ACTOR + "preferences", "preferences.view", profile_id)


def _form(raw: bytes) -> dict[str, list[str]]:
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise invalid("the form could not be read") from None


async def submit(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)  # no key: rate-limited per client address
    token = request.path_params["token"]
    try:
        profile_id = read_preference_token(signing_secret(c.storage), token, c.clock())
        form = _form(await read_capped(request, MAX_FORM_BYTES, c.settings["server.body_timeout_seconds"]))
        if form.get("token", [None])[0] != token:
            raise _refuse("other_form")
        saved = await _apply(c, request, profile_id, form)
        model = await _page_model(c, request, token, profile_id, saved)
        await _audit_view(c, profile_id)
        return HTMLResponse(preference_page(model), headers={"Cache-Control": "no-store",
                                                             "Referrer-Policy": "no-referrer"})
    except Refused as e:
        return _refusal(e, request)


async def _apply(c: ApiContext, request: Request, profile_id: str, form: dict[str, list[str]]) -> tuple[Saved, ...]:
    """Turn the changed checkboxes into consent events and commit them; returns what changed."""
    runner = await _settled(c)
    try:
        entry = await _entry(c, runner, profile_id)
    except TaktError:
        raise _refuse("gone") from None
    state = entry.state
    facts = await _entry_facts(c, runner, entry)
    points = list(facts.person.contact_points)
    allowed = {(ch, pu) for ch in _channels(points) for pu in PURPOSES_SHOWN}
    now = c.clock()
    ip = request.client.host if request.client is not None else None
    agent = request.headers.get("user-agent")
    events: list[Event] = []
    saved: list[Saved] = []
    for item in dict.fromkeys(form.get("shown", [])):
        ch, _, pu = item.partition(":")
        if (ch, pu) not in allowed:
            continue
        current = _cell(facts.person.consent, ch, pu, [cp for cp in points if cp.kind == CHANNEL_KIND[ch]])
        wanted = f"pref:{ch}:{pu}" in form
        if wanted == (current.status == "granted"):
            continue
        evidence: dict[str, Any] = {"method": "preference_center", "source": SOURCE, "at": now.isoformat()}
        if ip:
            evidence["ip"] = ip[:200]
        if agent:
            evidence["user_agent"] = agent[:1024]
        props = {"purpose": pu, "channel": ch, "status": "granted" if wanted else "withdrawn", "actor": "customer",
                 "evidence": evidence}
        # the same form sent twice at one moment over the same history (a double click) is stored once
        message_id = "preferences:" + _digest(state.id, props, now.isoformat(), len(facts.consent_events))
        # the customer acts through a link takt signed and sent: the company vouches for it (server trust)
        events.append(Event(kind=CONSENT, message_id=message_id, source=SOURCE, timestamp=now, received_at=now,
                            provenance="customer_provided", properties=props, trust="server",
                            **_link(runner, state, state.id)))
        saved.append((ch, pu, wanted))
    if events:
        written = await c.require_writer().submit(events)  # committed before the page confirms
        await _settled(c, written.last_position)  # and published: the page shows it
    return tuple(saved)


def routes() -> list[Route]:
    return [
        Route("/v1/profiles/{profile_id}/preference-link", preference_link, methods=["GET"]),
        Route("/p/{token}", page, methods=["GET"]),
        Route("/p/{token}", submit, methods=["POST"]),
    ]


def openapi_paths() -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    html_page = {"text/html": {"schema": {"type": "string"}}}
    token = TOKEN_PARAMETER
    return {
        "/v1/profiles/{profile_id}/preference-link": {"get": {
            "summary": "A signed, expiring link to the person's preference center (admin key)",
            "operationId": "preference_link", "security": [{"bearer": []}],
            "parameters": [
                {"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                 "description": f"How long the link is valid (default {DEFAULT_DAYS})."}],
            "responses": {"200": {"description": "The link", "content": {"application/json": {"schema": {
                "type": "object", "required": ["profile_id", "url", "expires_at"],
                "properties": {"profile_id": {"type": "string"}, "url": {"type": "string"},
                               "expires_at": {"type": "string"}}}}}},
                **{s: {"description": d, **err} for s, d in (
                    ("400", "A parameter is invalid."), ("401", "Missing or unknown key."),
                    ("403", "Not an admin key."), ("404", "No such profile."),
                    ("503", "Profiles are not projected by this server."))}}}},
        "/p/{token}": {
            "get": {"summary": "The preference center page (the signed token is the authorization)",
                    "operationId": "preference_page", "parameters": [token],
                    "responses": {"200": {"description": "The page", "content": html_page},
                                  "403": {"description": "Forged, altered or expired link: a refusal page",
                                          "content": html_page},
                                  "404": {"description": "No such page.", **err}, **PUBLIC_RESPONSES}},
            "post": {"summary": "Save the preferences (form post; committed before the page confirms)",
                     "operationId": "preference_save", "parameters": [token],
                     "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                         "type": "object", "properties": {"token": {"type": "string"},
                                                          "shown": {"type": "array", "items": {"type": "string"}}},
                         "additionalProperties": {"type": "string"}}}}},
                     "responses": {"200": {"description": "The page, confirming what changed", "content": html_page},
                                   "400": {"description": "The form could not be read.", **err},
                                   "403": {"description": "Forged, altered or expired link, or a form from "
                                                          "another link: a refusal page", "content": html_page},
                                   "404": {"description": "No such page.", **err},
                                   "408": {"description": "The form did not arrive in time.", **err},
                                   "413": {"description": "The form is too large.", **err}, **PUBLIC_RESPONSES}}},
    }

