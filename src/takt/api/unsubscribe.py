"""One-click unsubscribe (RFC 8058): signed links, and a POST that withdraws consent before it answers.

``GET /v1/profiles/{id}/unsubscribe-link?channel=email&contact_point=…`` (admin) returns the link and the
``List-Unsubscribe`` / ``List-Unsubscribe-Post`` header values for a message. The link carries a token signed
with the workspace's signing secret (HMAC-SHA256), so it needs no key and cannot be forged or altered. A
``POST`` to it (what mail clients send for ``List-Unsubscribe=One-Click``) appends the customer's withdrawal
of marketing on that channel and contact point, committed before the 2xx, so the very next decision sees it.
A ``GET`` only shows a confirmation page with a button that POSTs (link scanners must not unsubscribe anyone).

What it stops is marketing on that channel and contact point, nothing more: the address goes on the suppression
list for marketing (order confirmations and service notices still reach it), and both pages say so.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.links import LinkError, contact_hash, link_base, open_claims, seal_claims, signing_secret
from takt.api.openapi import PUBLIC_RESPONSES, TOKEN_PARAMETER
from takt.api.policy import _caught_up, _digest, _facts, _link, _state
from takt.api.ratelimit import check_public
from takt.api.responses import JSON
from takt.errors import invalid
from takt.events.model import Event
from takt.policy.consent import CONSENT
from takt.policy.vocab import CHANNELS
from takt.privacy.audit import LINK_ACTOR
from takt.privacy.audit import record as audit

STOPPED = "marketing"
"""What an unsubscribe stops; transactional and service messages still go (see the suppression scopes)."""
STILL_SENT = ("transactional", "service")
CHANNEL_WORDS = {"email": "email", "sms": "SMS", "phone": "phone", "push": "push notification", "post": "post",
                 "social_dm": "social media message", "in_app": "in-app message"}

UNSUBSCRIBE_SOURCE = "takt.unsubscribe"
TOKEN_KIND = "unsubscribe"


def make_token(secret: bytes, profile_id: str, channel: str, contact_point: str) -> str:
    """An opaque link token (``takt.api.links``): the profile id, the channel and a keyed hash of the contact
    point, sealed; no address in it."""
    return seal_claims(secret, {"k": TOKEN_KIND, "p": profile_id, "ch": channel,
                                "h": contact_hash(secret, channel, contact_point)})


def read_token(secret: bytes, token: str) -> dict[str, Any]:
    claims = open_claims(secret, token)
    if claims.get("k") != TOKEN_KIND or not all(isinstance(claims.get(f), str) for f in ("p", "ch", "h")):
        raise LinkError("This is not an unsubscribe link.", code="invalid_token", status=403)
    return claims


async def _resolve(c: ApiContext, claims: dict[str, Any]) -> dict[str, Any]:
    """The link's person as they are now (a merged-away profile id finds its survivor; an erased one is 404) and
    its contact point found again by its hash among theirs (``None`` when they no longer hold it: the
    withdrawal then covers the whole channel)."""
    runner = await _caught_up(c)
    state = _state(runner, str(claims["p"]))
    secret = signing_secret(c.storage)
    cp = next((str(v) for v in (x.get("value") for x in state.contacts.values())
               if isinstance(v, str) and contact_hash(secret, str(claims["ch"]), v) == claims["h"]), None)
    return {"p": state.id, "ch": claims["ch"], "cp": cp, "h": claims["h"]}


async def unsubscribe_link(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ("admin",))
    channel = request.query_params.get("channel", "email")
    if channel not in CHANNELS:
        raise invalid(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    contact_point = request.query_params.get("contact_point")
    if not contact_point:
        raise invalid("give ?contact_point=… (the address the message goes to)")
    runner = await _caught_up(c)
    state = _state(runner, request.path_params["profile_id"])
    token = make_token(signing_secret(c.storage), state.id, channel, contact_point)
    url = f"{link_base(c)}/v1/unsubscribe/{token}"
    return JSON({"profile_id": state.id, "url": url, "headers": {
        "List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}})


async def _withdraw(c: ApiContext, claims: dict[str, Any]) -> str:
    runner = await _caught_up(c)
    state = _state(runner, str(claims["p"]))
    now = c.clock()
    props = {"purpose": "marketing", "channel": claims["ch"], "contact_point": claims["cp"], "status": "withdrawn",
             "actor": "customer", "evidence": {"method": "unsubscribe_link", "source": UNSUBSCRIBE_SOURCE,
                                               "at": now.isoformat()}}
    if props["contact_point"] is None:
        del props["contact_point"]  # the person no longer holds the address: the whole channel
    # One event per link and consent history (other than unsubscribes): a second click of the same link records
    # nothing new (same messageId: the log keeps the first); after a later change (a re-grant) it withdraws again.
    facts = await _facts(c, runner, state)
    history = sum(1 for _, e in facts.consent_events if e.source != UNSUBSCRIBE_SOURCE)
    message_id = "unsubscribe:" + _digest(state.id, claims["ch"], claims["h"], history)
    event = Event(kind=CONSENT, message_id=message_id, source=UNSUBSCRIBE_SOURCE, timestamp=now, received_at=now,
                  provenance="customer_provided", properties=props, **_link(runner, state, state.id))
    await c.require_writer().submit([event])
    await _caught_up(c)
    return state.id


def _refusal(request: Request, e: LinkError) -> Response:
    if request.method == "GET" and "application/json" not in request.headers.get("accept", ""):
        return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribe</title></head>"
                            f"<body><h1>This link does not work</h1><p>{html.escape(e.message)}</p></body></html>",
                            status_code=e.status)
    raise e


async def unsubscribe(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)  # no key: rate-limited per client address
    try:
        claims = read_token(signing_secret(c.storage), request.path_params["token"])
    except LinkError as e:
        return _refusal(request, e)
    claims = await _resolve(c, claims)
    if request.method == "GET":
        # the page shows the contact point: audited before it is shown
        await run_in_threadpool(audit, c.storage, c.clock(), LINK_ACTOR + "unsubscribe", "unsubscribe.view",
                                str(claims["p"]))
        return HTMLResponse(_confirm_page(str(claims["ch"]), claims["cp"]))
    profile_id = await _withdraw(c, claims)  # honoured first; the answer (naming the contact point) audited
    await run_in_threadpool(audit, c.storage, c.clock(), LINK_ACTOR + "unsubscribe", "unsubscribe.view", profile_id)
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_done_page(str(claims["ch"]), claims["cp"]))
    return JSON({"success": True, "profile_id": profile_id, "unsubscribed": {
        "channel": claims["ch"], "contact_point": claims["cp"], "purpose": STOPPED},
        "still_sent": list(STILL_SENT)})


def _what(channel: str, cp: str | None) -> str:
    return (f"marketing messages by {html.escape(CHANNEL_WORDS.get(channel, channel))} to "
            f"<strong>{html.escape(cp or 'this address')}</strong>")


_STILL = ("Messages you need about your orders and your account (order confirmations, receipts, delivery and "
          "service notices) still reach this address.")


def _confirm_page(channel: str, cp: str | None) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribe</title></head><body>"
            f"<h1>Unsubscribe</h1><p>Stop {_what(channel, cp)}?</p><p>{_STILL}</p>"
            "<form method='post'><button type='submit'>Unsubscribe</button></form></body></html>")


def _done_page(channel: str, cp: str | None) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribed</title></head><body>"
            f"<h1>You are unsubscribed.</h1><p>We stopped {_what(channel, cp)}. We will not send them again "
            f"unless you subscribe again yourself.</p><p>{_STILL}</p></body></html>")


def routes() -> list[Route]:
    return [
        Route("/v1/profiles/{profile_id}/unsubscribe-link", unsubscribe_link, methods=["GET"]),
        Route("/v1/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
    ]


def openapi_paths() -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    obj = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
    token = TOKEN_PARAMETER
    page = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1/profiles/{profile_id}/unsubscribe-link": {"get": {
            "summary": "A signed one-click unsubscribe link (RFC 8058) for a contact point",
            "operationId": "unsubscribe_link", "security": [{"bearer": []}],
            "parameters": [
                {"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "channel", "in": "query", "schema": {"type": "string", "enum": list(CHANNELS)}},
                {"name": "contact_point", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The link and the List-Unsubscribe headers", "content": obj},
                          **{s: {"description": d, **err} for s, d in (
                              ("400", "A parameter is invalid."), ("401", "Missing or unknown key."),
                              ("403", "Not an admin key."), ("404", "No such profile."),
                              ("503", "Profiles are not projected by this server."))}}}},
        "/v1/unsubscribe/{token}": {
            "get": {"summary": "Confirmation page (changes nothing)", "operationId": "unsubscribe_page",
                    "parameters": [token],
                    "responses": {"200": {"description": "A page with a button that POSTs",
                                          "content": {"text/html": {"schema": {"type": "string"}}}},
                                  "400": {"description": "Malformed token: a page saying so (JSON when asked)",
                                          "content": {**err["content"], **page}},
                                  "403": {"description": "Altered or foreign token: a page saying so (JSON when "
                                                         "asked)", "content": {**err["content"], **page}},
                                  "404": {"description": "No such link, or the person was erased.", **err},
                                  "410": {"description": "A token of the earlier, readable format "
                                                         "(`link_outdated`): a page saying so.",
                                          "content": {"text/html": {"schema": {"type": "string"}}}},
                                  **PUBLIC_RESPONSES}},
            "post": {"summary": "One-click unsubscribe: withdraws marketing consent before answering",
                     "operationId": "unsubscribe", "parameters": [token],
                     "responses": {"200": {"description": "Withdrawn (committed)", "content": {
                         **obj, "text/html": {"schema": {"type": "string"}}}},
                                   "400": {"description": "Malformed token.", **err},
                                   "403": {"description": "Altered or foreign token.", **err},
                                   "404": {"description": "The profile no longer exists.", **err},
                                   "410": {"description": "A token of the earlier format (`link_outdated`).", **err},
                                   **PUBLIC_RESPONSES}}},
    }
