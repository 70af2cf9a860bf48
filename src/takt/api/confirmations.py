"""Double opt-in over HTTP (the rules: :mod:`takt.campaigns.double_opt_in`).

* ``POST /v1/consent/confirmations`` ``{"profile", "contact_point", "purpose"}`` (admin key; a sign-up form's
  backend): send the confirmation email to that address of the person, through the email channel.
* ``GET /v1/confirm/{token}``: the page the link opens, with one button (no change on a GET: mail scanners
  follow links).
* ``POST /v1/confirm/{token}``: the button; records the confirmed grant (consent event, evidence
  ``double_opt_in``, ``server`` trust) before the page says so.
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.links import LinkError, contact_hash, link_base, open_claims, seal_claims, signing_secret
from takt.api.openapi import PUBLIC_RESPONSES, TOKEN_PARAMETER
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.policy import _body, _digest, _entry, _entry_facts, _link, _profile_ref, _settled
from takt.api.ratelimit import check_public
from takt.api.responses import JSON
from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.delivery.factory import deliveries_from_settings
from takt.campaigns.double_opt_in import (
    SOURCE,
    Confirmation,
    confirmation_message,
    read_claims,
    sent_log,
    token_claims,
)
from takt.errors import TaktError, invalid
from takt.events.model import Event
from takt.policy.consent import CONSENT, validate_consent
from takt.policy.suppression_store import SUPPRESSION_SCOPES, check
from takt.policy.vocab import PURPOSES, normalize_contact_value

ADMIN_KINDS = ("admin",)
DELIVERIES = "deliveries"
"""``ApiContext.extras`` key of the server's :class:`~takt.campaigns.delivery.base.Deliveries` (built from the
settings on first use)."""


def deliveries(c: ApiContext) -> Deliveries:
    found = c.extras.get(DELIVERIES)
    if not isinstance(found, Deliveries):
        found = c.extras[DELIVERIES] = deliveries_from_settings(c.settings, c.storage, c.clock)
    return found


def close_deliveries(c: ApiContext) -> None:
    """Close the channels :func:`deliveries` opened (at server stop)."""
    found = c.extras.pop(DELIVERIES, None)
    if isinstance(found, Deliveries):
        found.close()


async def request_confirmation(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, ("profile", "contact_point", "purpose"))
    ref = _profile_ref(body)
    purpose, raw_cp = body.get("purpose"), body.get("contact_point")
    errors = []
    if purpose not in PURPOSES:
        errors.append({"field": "purpose", "reason": f"one of {', '.join(PURPOSES)}"})
    if not isinstance(raw_cp, str) or not raw_cp.strip():
        errors.append({"field": "contact_point", "reason": "the email address to confirm"})
    if errors:
        raise invalid("invalid confirmation request", code="invalid_request", errors=errors)
    cp = normalize_contact_value("email", str(raw_cp))
    runner = await _settled(c)
    entry = await _entry(c, runner, ref)
    facts = await _entry_facts(c, runner, entry)
    if not any(p.kind == "email" and p.value == cp for p in facts.person.contact_points):
        raise TaktError("the person has no such email address", code="unknown_contact_point", status=404)
    return JSON({"success": True, **await send_confirmation(c, entry.state.id, cp, str(purpose))})


async def send_confirmation(c: ApiContext, profile_id: str, contact_point: str, purpose: str) -> dict[str, Any]:
    """Email the double opt-in confirmation for ``purpose`` to ``contact_point`` (one of the person's addresses,
    in its normalized form): ``{"sent": true, "message_id", "expires"}``, or ``{"sent": false, "reason"}`` when
    one went recently. For whatever asks for a confirmation (this endpoint; a sign-up flow wired later)."""
    cp = contact_point
    blocked = [e for e in await run_in_threadpool(check, c.storage, "email", cp) if SUPPRESSION_SCOPES[e.reason] == "all"]
    if blocked:
        raise TaktError(f"the address is suppressed ({blocked[0].reason}); no confirmation is sent",
                        code="suppressed", status=409)
    channel = deliveries(c).channel("email")  # 409 channel_not_configured without SMTP
    secret = signing_secret(c.storage)
    h = contact_hash(secret, "email", cp)
    now = c.clock()
    every = timedelta(hours=int(c.settings["delivery.double_opt_in.resend_hours"]))
    log = sent_log(c.storage)
    if not await run_in_threadpool(log.claim, h, purpose, now, every):
        return {"sent": False, "reason": "a confirmation went to this address for this purpose recently"}
    expires = now + timedelta(hours=int(c.settings["delivery.double_opt_in.link_hours"]))
    token = seal_claims(secret, token_claims(profile_id, purpose, "email", h, now, expires))
    message = confirmation_message(profile_id, purpose, cp, f"{link_base(c)}/v1/confirm/{token}", now, expires)
    result = await run_in_threadpool(channel.send, message)
    if result.status != "sent":
        await run_in_threadpool(log.release, h, purpose)
        raise TaktError(f"the confirmation email was not sent ({result.status}: {result.error})",
                        code="delivery_failed", status=503 if result.status == "deferred" else 502)
    return {"sent": True, "message_id": message.message_id, "expires": expires.isoformat().replace("+00:00", "Z")}


def _page(title: str, text: str, button: bool = False, status: int = 200) -> HTMLResponse:
    form = "<form method='post'><button type='submit'>Confirm</button></form>" if button else ""
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>",
                        status_code=status)


async def _confirmation(c: ApiContext, token: str) -> tuple[Confirmation, Any, Any, str]:
    """The token's confirmation, the person's published entry, the runner and the address (found again by its
    hash among the person's addresses); a :class:`LinkError` when the link cannot be used."""
    claims = open_claims(signing_secret(c.storage), token)
    conf = read_claims(claims)
    if conf is None:
        raise LinkError("This is not a confirmation link.", code="invalid_token", status=403)
    if c.clock() >= conf.expires:
        raise LinkError("This confirmation link has expired. Please sign up again.", code="link_expired",
                        status=410)
    runner = await _settled(c)
    try:
        entry = await _entry(c, runner, conf.profile_id)
    except TaktError:
        raise LinkError("We hold no data about you any more.", code="not_found", status=404) from None
    secret = signing_secret(c.storage)
    cp = next((p.value for p in (await _entry_facts(c, runner, entry)).person.contact_points
               if p.kind == "email" and contact_hash(secret, conf.channel, p.value) == conf.contact_hash), None)
    if cp is None:
        raise LinkError("The address this link confirms is no longer on record.", code="not_found", status=404)
    return conf, entry, runner, cp


async def confirm_page(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)
    try:
        conf, _, _, _ = await _confirmation(c, request.path_params["token"])
    except LinkError as e:
        return _page("This link does not work", e.message, status=e.status)
    return _page("Confirm your subscription", f"Confirm that you want to receive {conf.purpose} messages by email.",
                 button=True)


async def confirm(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)
    try:
        conf, entry, runner, cp = await _confirmation(c, request.path_params["token"])
    except LinkError as e:
        return _page("This link does not work", e.message, status=e.status)
    now = c.clock()
    evidence: dict[str, Any] = {"method": "double_opt_in", "source": SOURCE, "at": now.isoformat()}
    if request.client is not None:
        evidence["ip"] = request.client.host[:200]
    agent = request.headers.get("user-agent")
    if agent:
        evidence["user_agent"] = agent[:1024]
    props = validate_consent({"purpose": conf.purpose, "channel": conf.channel, "contact_point": cp,
                              "status": "granted", "actor": "customer", "evidence": evidence})
    state = entry.state
    # one grant per link: a double click, or the page submitted twice, stores it once
    event_id = "doi:" + _digest(state.id, conf.purpose, conf.contact_hash, conf.requested_at.isoformat())
    if not state.has(SOURCE, event_id):
        # the customer answered a link takt signed and sent to this address: the company vouches (server trust)
        event = Event(kind=CONSENT, message_id=event_id, source=SOURCE, timestamp=now, received_at=now,
                      provenance="customer_provided", properties=props, trust="server",
                      **_link(runner, state, state.id))
        written = await c.require_writer().submit([event])  # committed before the page confirms
        await _settled(c, written.last_position)
    return _page("Subscription confirmed", f"Thank you: {conf.purpose} messages may now reach you by email.")


def routes() -> list[Route]:
    return [
        Route("/v1/consent/confirmations", request_confirmation, methods=["POST"]),
        Route("/v1/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/v1/confirm/{token}", confirm, methods=["POST"]),
    ]


def openapi_paths() -> dict[str, Any]:
    page = {"content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "/v1/consent/confirmations": {"post": {
            "summary": "Send a double opt-in confirmation email to one of the person's addresses (admin key)",
            "operationId": "request_confirmation", "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["profile", "contact_point", "purpose"],
                "properties": {"profile": {"type": "string", "minLength": 1},
                               "contact_point": {"type": "string", "minLength": 1},
                               "purpose": {"type": "string", "enum": list(PURPOSES)}}}}}},
            "responses": {"200": _ok("Sent, or not sent because one went recently", {
                "type": "object", "required": ["success", "sent"],
                "properties": {"success": {"type": "boolean"}, "sent": {"type": "boolean"},
                               "message_id": {"type": "string"}, "expires": {"type": "string"},
                               "reason": {"type": "string"}}}),
                "400": _err("Invalid body."), "401": _err("Missing or unknown key."), "403": _err("Not an admin key."),
                "404": _err("No such profile or address."),
                "409": _err("The address is suppressed, or no email channel is configured."),
                "413": _err("The body is too large."),
                "502": _err("The SMTP server refused the email."),
                "503": _err("The SMTP server is unavailable, or the projection is behind.")}}},
        "/v1/confirm/{token}": {
            "get": {"summary": "The confirmation page (the signed link is the authorization)",
                    "operationId": "confirmation_page", "security": [], "parameters": [TOKEN_PARAMETER],
                    "responses": {"200": {"description": "The page with its button", **page},
                                  "400": {"description": "A damaged link", **page},
                                  "403": {"description": "Altered or not a confirmation link", **page},
                                  "404": {"description": "The person or address is gone", **page},
                                  "410": {"description": "Expired", **page}, **PUBLIC_RESPONSES}},
            "post": {"summary": "Confirm: records the confirmed grant (double_opt_in evidence)",
                     "operationId": "confirm", "security": [], "parameters": [TOKEN_PARAMETER],
                     "responses": {"200": {"description": "Confirmed", **page},
                                   "400": {"description": "A damaged link", **page},
                                  "403": {"description": "Altered or not a confirmation link", **page},
                                   "404": {"description": "The person or address is gone", **page},
                                   "410": {"description": "Expired", **page}, **PUBLIC_RESPONSES}}},
    }
