"""Delivery over HTTP: the dead-letter list (admin keys), provider callbacks (signed, no key) and the click
redirect (the signed token is the authorization).

* ``GET /v1/deliveries/dead-letters?limit=&after=&channel=&pending=``: a page of dead letters (id order).
* ``POST /v1/deliveries/dead-letters/{id}/replay``: re-render and send again (through the orchestrator, which
  puts a :data:`RESEND` function into ``ApiContext.extras``; without one: 409 ``replay_unavailable``).
* ``POST /v1/deliveries/callbacks/{channel}``: a provider reports an outcome (:mod:`takt.campaigns.delivery.callbacks`),
  signed with the channel's secret → a ``message`` event; a hard bounce or complaint suppresses the address.
* ``GET /v1/r/{token}``: a tracked link → records ``clicked`` and answers 302 to the original address.

Translation only: the rules live in :mod:`takt.campaigns`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.collect import read_capped
from takt.api.context import ApiContext, ctx
from takt.api.links import LinkError, open_claims, signing_secret
from takt.api.openapi import PUBLIC_RESPONSES, TOKEN_PARAMETER
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.policy import _at, _caught_up, _digest, _entry, _entry_facts, _link, _settled, _state
from takt.api.ratelimit import check_public
from takt.api.responses import JSON
from takt.campaigns.dead_letter_store import dead_letters
from takt.campaigns.dead_letters import Resend, replay, resend_for
from takt.campaigns.delivery.callbacks import CALLBACK_STATUSES, parse_callback
from takt.campaigns.delivery.clicks import CLICK_KIND
from takt.campaigns.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from takt.errors import TaktError, invalid
from takt.events.model import Event
from takt.policy.messages import MESSAGE, validate_message
from takt.policy.suppression_store import sync
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES

ADMIN_KINDS = ("admin",)
MAX_PAGE = 1000
MAX_CALLBACK_BYTES = 64 * 1024
RESEND = "campaigns.resend"
"""``ApiContext.extras`` key of the :data:`~takt.campaigns.dead_letters.Resend` function replays go through."""
CALLBACK_PROVENANCE = "observed"


# ---- dead letters ----
async def list_dead_letters(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    q = request.query_params
    unknown = sorted(set(q) - {"limit", "after", "channel", "pending"})
    if unknown:
        raise invalid(f"unknown query parameter {unknown[0]!r} (expected limit, after, channel, pending)")
    try:
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError
    except ValueError:
        raise invalid(f"limit must be a whole number from 1 to {MAX_PAGE}") from None
    pending = q.get("pending", "false")
    if pending not in ("true", "false"):
        raise invalid("pending must be true or false")
    after, channel = q.get("after"), q.get("channel")
    if after is not None and len(after) > 200:
        raise invalid("after must be an id from the previous page")

    def read() -> tuple[list[Any], int]:
        store = dead_letters(c.storage)
        return store.page(limit, after, channel, pending == "true"), store.count(pending == "true")

    letters, total = await run_in_threadpool(read)
    return JSON({"total": total, "dead_letters": [d.to_json() for d in letters],
                 "next_after": letters[-1].id if len(letters) == limit else None})


async def replay_dead_letter(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    letter_id = request.path_params["letter_id"]
    store = dead_letters(c.storage)
    if await run_in_threadpool(store.get, letter_id) is None:
        raise TaktError(f"no dead letter {letter_id!r}", code="not_found", status=404)
    resend: Resend | None = c.extras.get(RESEND)
    if resend is None:
        resend = resend_for(c.storage, c.settings)
    after = await run_in_threadpool(replay, store, letter_id, resend, c.clock())
    return JSON({"success": after.replay_status == "sent", "dead_letter": after.to_json()})


# ---- callbacks ----
def _secret(c: ApiContext, channel: str) -> str:
    secret = c.settings["delivery.webhook_secrets"].get(channel)
    if not isinstance(secret, str) or not secret:
        raise TaktError(f"no callback secret is configured for channel {channel!r} (delivery.webhook_secrets)",
                        code="unknown_channel", status=404)
    return secret


async def delivery_callback(request: Request) -> Response:
    c = ctx(request)
    channel = request.path_params["channel"]
    secret = _secret(c, channel)
    raw = await read_capped(request, MAX_CALLBACK_BYTES)
    verify(secret, dict(request.headers), raw, c.clock().timestamp(),
           float(c.settings["delivery.callback_tolerance_seconds"]))
    if channel not in CHANNELS:
        raise invalid(f"outcomes are recorded for the channels {', '.join(CHANNELS)}, not {channel!r}",
                      code="invalid_callback")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("the callback body is not JSON", code="invalid_callback") from None
    cb = parse_callback(body)
    if not cb.recorded:
        return JSON({"success": True, "recorded": False,
                     "reason": "a soft bounce is the provider's own retry; nothing is recorded"}, status_code=202)
    at = _at({"at": cb.at} if cb.at else {}, c, stored=True)
    runner = await _settled(c)
    entry = await _entry(c, runner, cb.profile_id)
    facts = await _entry_facts(c, runner, entry)
    known = next((m for m in facts.person.messages if m.message_id == cb.message_id), None)
    intent = cb.intent or (known.intent if known else None)
    if intent is None:
        raise invalid(f"message {cb.message_id!r} is not recorded for this profile: give its intent",
                      code="invalid_callback", errors=[{"field": "intent",
                                                         "reason": f"one of {', '.join(MESSAGE_PURPOSES)}"}])
    props = validate_message({"message_id": cb.message_id, "status": cb.status, "channel": channel,
                              "contact_point": cb.contact_point or (known.contact_point if known else None),
                              "campaign": cb.campaign or (known.campaign if known else None), "intent": intent})
    state = entry.state
    event_id = "message:" + _digest(state.id, props["message_id"], props["status"])
    event = Event(kind=MESSAGE, message_id=event_id, source=f"delivery:{channel}", timestamp=at,
                  received_at=c.clock(), provenance=CALLBACK_PROVENANCE, properties=props,
                  **_link(runner, state, state.id))
    duplicate = state.has(event.source, event_id)
    await c.require_writer().submit([event])
    if props["status"] in ("bounced", "complained") and "contact_point" in props:
        await run_in_threadpool(sync, c.storage)  # the suppression list holds it before the answer
    return JSON({"success": True, "recorded": True, "profile_id": state.id, "event_id": event_id,
                 "duplicate": duplicate})


# ---- click redirect ----
async def click(request: Request) -> Response:
    c = ctx(request)
    check_public(c, request)
    claims = open_claims(signing_secret(c.storage), request.path_params["token"])
    url = claims.get("u")
    if claims.get("k") != CLICK_KIND or not isinstance(url, str) or not url.startswith(("http://", "https://")) \
            or not all(isinstance(claims.get(f), str) for f in ("m", "p", "ch", "i")):
        raise LinkError("This is not a tracked link.", code="invalid_token", status=403)
    runner = await _caught_up(c)
    try:
        state = _state(runner, str(claims["p"]))
    except TaktError:
        state = None  # the person is gone (erased): the link still leads where it said, nothing is recorded
    if state is not None and claims["ch"] in CHANNELS and claims["i"] in MESSAGE_PURPOSES:
        props = {"message_id": claims["m"], "status": "clicked", "channel": claims["ch"], "intent": claims["i"]}
        if isinstance(claims.get("c"), str):
            props["campaign"] = claims["c"]
        event_id = "message:" + _digest(state.id, claims["m"], "clicked")  # one click event per message
        if not state.has("takt.click", event_id):
            event = Event(kind=MESSAGE, message_id=event_id, source="takt.click", timestamp=c.clock(),
                          received_at=c.clock(), provenance=CALLBACK_PROVENANCE,
                          properties=validate_message(props), **_link(runner, state, state.id))
            await c.require_writer().submit([event])
    return RedirectResponse(url, status_code=302)


def routes() -> list[Route]:
    return [
        Route("/v1/deliveries/dead-letters", list_dead_letters, methods=["GET"]),
        Route("/v1/deliveries/dead-letters/{letter_id}/replay", replay_dead_letter, methods=["POST"]),
        Route("/v1/deliveries/callbacks/{channel}", delivery_callback, methods=["POST"]),
        Route("/v1/r/{token}", click, methods=["GET"]),
    ]


def openapi_paths() -> dict[str, Any]:
    admin_errors = {"400": _err("Invalid parameters."), "401": _err("Missing or unknown key."),
                    "403": _err("Not an admin key.")}
    letter = {"type": "object", "required": ["id", "message_id", "campaign", "channel", "error", "attempts",
                                             "failed_at"],
              "properties": {"id": {"type": "string"}, "message_id": {"type": "string"},
                             "campaign": {"type": "string"}, "campaign_version": {"type": "integer"},
                             "step": {"type": "string"}, "profile_id": {"type": "string"},
                             "intent": {"type": "string"}, "channel": {"type": "string"},
                             "error": {"type": "string"}, "attempts": {"type": "integer"},
                             "failed_at": {"type": "string"}, "replayed_at": {"type": ["string", "null"]},
                             "replay_status": {"type": ["string", "null"]}}}
    text = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"}
    callback = {"type": "object", "additionalProperties": False, "required": ["message_id", "profile_id", "status"],
                "properties": {"message_id": text, "profile_id": text,
                               "status": {"type": "string", "enum": list(CALLBACK_STATUSES)},
                               "bounce": {"type": "string", "enum": ["hard", "soft"]},
                               "contact_point": text, "campaign": text,
                               "intent": {"type": "string", "enum": list(MESSAGE_PURPOSES)},
                               "at": {"type": "string"}}}
    signed = [{"name": TIMESTAMP_HEADER, "in": "header", "required": True, "schema": {"type": "string"}},
              {"name": SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"}}]
    return {
        "/v1/deliveries/dead-letters": {"get": {
            "summary": "Messages a channel could not deliver (admin key); no contact points in them",
            "operationId": "dead_letters", "security": [{"bearer": []}],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 200}},
                {"name": "channel", "in": "query", "schema": {"type": "string"}},
                {"name": "pending", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}}],
            "responses": {"200": _ok("A page of dead letters", {
                "type": "object", "required": ["total", "dead_letters", "next_after"],
                "properties": {"total": {"type": "integer"}, "dead_letters": {"type": "array", "items": letter},
                               "next_after": {"type": ["string", "null"]}}}), **admin_errors}}},
        "/v1/deliveries/dead-letters/{letter_id}/replay": {"post": {
            "summary": "Re-render a dead letter's message and send it again (admin key)",
            "operationId": "replay_dead_letter", "security": [{"bearer": []}],
            "parameters": [{"name": "letter_id", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 200}}],
            "responses": {"200": _ok("Replayed (success says whether it was sent)", {
                "type": "object", "required": ["success", "dead_letter"],
                "properties": {"success": {"type": "boolean"}, "dead_letter": letter}}),
                **admin_errors, "404": _err("No such dead letter."),
                "409": _err("Already replayed and sent, or no orchestrator runs in this server.")}}},
        "/v1/deliveries/callbacks/{channel}": {"post": {
            "summary": "A delivery provider reports an outcome (signed with the channel's secret, no key)",
            "operationId": "delivery_callback", "security": [],
            "parameters": [{"name": "channel", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 64}}, *signed],
            "requestBody": {"required": True, "content": {"application/json": {"schema": callback}}},
            "responses": {
                "200": _ok("Recorded as a message event", {"type": "object"}),
                "202": _ok("A soft bounce: nothing recorded", {"type": "object"}),
                "400": _err("Invalid callback."), "401": _err("Missing, wrong or stale signature."),
                "413": _err("The body is too large."),
                "503": _err("The projection is behind (`projection_behind`); retry."),
                "404": _err("No secret for this channel, or no such profile.")}}},
        "/v1/r/{token}": {"get": {
            "summary": "A tracked link: records the click and redirects (the token is the authorization)",
            "operationId": "click", "security": [], "parameters": [TOKEN_PARAMETER],
            "responses": {"302": {"description": "To the link's original address"},
                          "400": _err("A damaged link."), "403": _err("Not a tracked link, or altered."),
                          "410": _err("A link of an earlier format."),
                          **PUBLIC_RESPONSES}}},
    }
