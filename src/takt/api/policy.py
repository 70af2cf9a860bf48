"""Contact policy over HTTP: consent recording and history, the decision, and message lifecycle events.

* ``POST /v1/consent`` (admin key): record a consent change for a person, as actor ``admin``.
* ``GET /v1/profiles/{profile_id}/consent`` (read or admin key): the person's consent history and state.
* ``POST /v1/decide`` (read or admin key): may a message reach the person now, on which channel, and why.
* ``POST /v1/messages`` (admin key): record a message lifecycle step (sent, delivered, opened, ...).

Only translation happens here: validation is :func:`~takt.policy.validate_consent` /
:func:`~takt.policy.validate_message`, the person is :func:`~takt.policy.from_profile.person_from_profile`
and the answer is :func:`~takt.policy.decide`. Writes are committed before the 2xx. Reads first bring the
profile projection up to the log's head, so a decision always reflects every change acknowledged before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.collect import read_capped
from takt.api.context import ApiContext, ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.responses import JSON
from takt.errors import TaktError, invalid, not_found
from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import parse_identifier, split_identifier
from takt.ingest.segment import decode_body
from takt.ingest.window import Implausible
from takt.keys import ApiKey
from takt.policy import Intent, decide, folded, validate_consent, validate_message
from takt.policy.config import PolicySettings
from takt.policy.consent import (
    CONSENT,
    CONSENT_FIELDS,
    STATE_STATUSES,
    ConsentChange,
    ConsentState,
)
from takt.policy.from_profile import (
    PersonFacts,
    SuppressionLookup,
    facts_from_state,
    person_from_profile,
    with_suppression,
)
from takt.policy.messages import MESSAGE, MESSAGE_FIELDS
from takt.policy.reasons import Reason
from takt.policy.suppression_store import in_memory, suppression_entries
from takt.policy.workspace_settings import policy_settings
from takt.privacy.audit import arecord as audit
from takt.profiles.state import ProfileState
from takt.projections.published import Entry
from takt.projections.runner import ProfileRunner

ADMIN_KINDS = ("admin",)
READ_KINDS = ("read", "admin")
DECIDE_KINDS = ("read", "admin")
"""Deciding writes nothing: a read key may ask (a campaign sender needs no admin rights)."""

ADMIN_ACTOR = "admin"
ADMIN_PROVENANCE = "crm_import"
"""Changes an operator records come from the business itself, like its CRM."""

CONSENT_BODY = ("profile", *(f for f in CONSENT_FIELDS if f != "actor"))
DECIDE_BODY = ("profile", "intent", "channels", "at", "campaign")
MESSAGE_BODY = ("profile", *MESSAGE_FIELDS, "at")
MAX_IDEMPOTENCY_KEY = 256


# ---- helpers ----
def _runner(c: ApiContext) -> ProfileRunner:
    runner = c.extras.get("profiles")
    if runner is None:
        raise TaktError("profiles are not projected by this server", code="unavailable", status=503)
    return runner  # type: ignore[no-any-return]


async def _caught_up(c: ApiContext) -> ProfileRunner:
    """The profile runner, having folded everything committed before this call (read your writes).

    Log reads run in a worker thread; ``head``/``contains`` are avoided (on DuckDB they leave a thread's cursor
    with an unfinished result that breaks a later ``get`` on that thread)."""
    runner = _runner(c)
    await run_in_threadpool(runner.catch_up)
    return runner


# ---- reading from the published state (takt.projections.published) ----
class Writes:
    """What this server acknowledged, for reading one's writes: the log's head at start (the backlog the
    projection folds first) and, per identifier, the position of the last write that named it."""

    MAX_TRACKED = 200_000

    def __init__(self, head: int, runner: ProfileRunner) -> None:
        self.head = head
        self.runner = runner
        self.by_identifier: dict[str, int] = {}

    def note(self, events: Sequence[Event], position: int) -> None:
        identity = self.runner.config.identity
        marks = self.by_identifier
        for e in events:
            for ident in identifiers_of(e, identity):
                marks[ident] = position
        if len(marks) > self.MAX_TRACKED:  # the ones the projection reached need no waiting any more
            reached = self.runner.published.position
            for ident in [i for i, pos in marks.items() if pos <= reached]:
                marks.pop(ident, None)

    def target(self, identifiers: Iterable[str]) -> int:
        marks = self.by_identifier
        return max((self.head, *(marks.get(i, 0) for i in identifiers)))


class _WatchedLog:
    """The writer's log, noting each append's identifiers before the writer acknowledges it."""

    def __init__(self, log: Any, writes: Writes) -> None:
        self._log = log
        self._writes = writes

    def append(self, events: Sequence[Event]) -> Any:
        result = self._log.append(events)
        self._writes.note(events, result.last_position)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def watch_writes(c: ApiContext, runner: ProfileRunner, head: int) -> None:
    """At start, once the writer exists: reads of a person wait for the projection to reach the log's ``head``
    (the backlog folded at start) and every later write this server acknowledged that named the person."""
    writes = c.extras["writes"] = Writes(head, runner)
    if c.writer is not None:
        c.writer.log = _WatchedLog(c.writer.log, writes)  # type: ignore[assignment]


async def _settled(c: ApiContext, position: int | None = None) -> ProfileRunner:
    """The runner; with ``position`` (a write of this request), once its published state reached it (bounded
    wait: 503 ``projection_behind``). Without a thread following the log (a server that is not serving live),
    the request catches up itself."""
    runner = _runner(c)
    if not runner.following:
        await run_in_threadpool(runner.catch_up)
    elif position is not None:
        await runner.published.reach(position)
    return runner


def _ref_identifiers(runner: ProfileRunner, ref: str) -> tuple[str, ...]:
    return (parse_identifier(ref, runner.config.identity),) if ":" in ref else ()


async def _entry(c: ApiContext, runner: ProfileRunner, ref: str) -> Entry:
    """The published profile ``ref`` names, once the projection reached every write this server acknowledged
    that named the person (read your writes; bounded wait, 503 ``projection_behind``). Other people's writes
    are not waited for."""
    found = runner.entry(ref)
    writes = c.extras.get("writes")
    if runner.following and isinstance(writes, Writes):
        target = writes.target((*_ref_identifiers(runner, ref), *(found.identifiers if found else ())))
        if runner.published.position < target:
            await runner.published.reach(target)
            found = runner.entry(ref)
    if found is None:
        raise not_found(f"no profile has the identifier {ref!r}" if ":" in ref else f"no profile {ref!r}")
    return found


async def _policy_settings(c: ApiContext) -> PolicySettings:
    """The workspace's policy settings with its suppression key, made once per server (and again only if its
    settings object is replaced)."""
    made = c.extras.get("policy_settings")
    if isinstance(made, tuple) and made[0] is c.settings:
        return made[1]  # type: ignore[no-any-return]
    policy = await run_in_threadpool(policy_settings, c.storage, c.settings)
    c.extras["policy_settings"] = (c.settings, policy)
    return policy


def _suppression(c: ApiContext, upto: int | None) -> SuppressionLookup:
    return lambda points: suppression_entries(c.storage, points, upto=upto)


async def _entry_facts(c: ApiContext, runner: ProfileRunner, entry: Entry) -> PersonFacts:
    """The person's policy facts from the published state: folded (memoized on the entry), with the suppression
    list as of the published position or later (derived from the log when the projection moved past it: see
    :func:`~takt.policy.suppression_store.sync`); a state folded before the policy section existed is re-read
    from the log. When the list needs no query, the lookup runs inline (no hand-over to a worker thread)."""
    state = entry.state
    if not folded.exact(state):
        return await _facts(c, runner, state)
    base = entry.memo.get("facts")
    if base is None:
        base = entry.memo["facts"] = facts_from_state(state)
    if not base.person.contact_points:
        return base  # nothing to look up on the suppression list
    upto = runner.published.position if runner.following else None
    lookup = _suppression(c, upto)
    if upto is not None and in_memory(c.storage, upto):
        return with_suppression(base, lookup)
    return await run_in_threadpool(with_suppression, base, lookup)


async def _body(request: Request, c: ApiContext, allowed: Sequence[str],
                special: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = await read_capped(request, c.limits.max_request_bytes + c.limits.max_request_bytes // 10 + 1024)
    body = decode_body(raw, request.headers.get("content-encoding"), c.limits)
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object", code="invalid_request")
    errors = []
    for key in sorted(set(body) - set(allowed), key=str):
        reason = (special or {}).get(key) or f"unknown field {key!r} (expected {', '.join(allowed)})"
        errors.append({"field": str(key), "reason": reason})
    if errors:
        raise invalid(f"unknown field{'s' if len(errors) > 1 else ''}: "
                      f"{', '.join(e['field'] for e in errors)}", code="unknown_field", errors=errors)
    return body


def _profile_ref(body: Mapping[str, Any]) -> str:
    ref = body.get("profile")
    if not isinstance(ref, str) or not ref.strip():
        raise invalid("profile is required: a profile id (p_…) or an identifier TYPE:VALUE, e.g. "
                      "email:ann@example.com", code="invalid_request",
                      errors=[{"field": "profile", "reason": "a non-empty string is required"}])
    return ref.strip()


def _state(runner: ProfileRunner, ref: str) -> ProfileState:
    """A copy of the profile a reference names (an identifier ``type:value`` or a profile id): the projector
    changes its states in place while it follows the log."""
    with runner.lock:
        state = runner.projector.profile_for(ref) if ":" in ref else runner.projector.profile(ref)
        state = ProfileState.from_dict(state.to_dict()) if state is not None else None
    if state is None:
        raise not_found(f"no profile has the identifier {ref!r}" if ":" in ref else f"no profile {ref!r}")
    return state


async def _facts(c: ApiContext, runner: ProfileRunner, state: ProfileState) -> PersonFacts:
    positions = sorted(set(state.positions))

    def read() -> PersonFacts:
        events: list[StoredEvent] = c.storage.log.get(positions) if positions else []
        return person_from_profile(state, events, runner.config.identity,
                                   lambda points: suppression_entries(c.storage, points))

    return await run_in_threadpool(read)


def _link(runner: ProfileRunner, state: ProfileState, ref: str) -> dict[str, Any]:
    """Event fields that make identity resolution put an event in this profile without adding traits or
    contact points to it: ``userId``/``anonymousId``, else the identifier under its trait name in the event's
    own ``traits`` (read by identity for every kind, folded into the profile only for ``identify``), else its
    ``context`` path."""
    config = runner.config.identity
    with runner.lock:
        cluster = runner.projector.identity.clusters.get(state.id)
        members = list(cluster.identifiers) if cluster else []
        owned = [i for i in members if runner.projector.identity.profile_of(i) == state.id]
    prio = config.priority
    # user_id first (the usual anchor), then the identifier the caller named, then the rest by priority
    candidates = sorted(owned, key=lambda i: (not i.startswith("user_id:"), i != ref,
                                              prio.get(i.partition(":")[0], len(prio))))
    for ident in candidates:
        type_name, value = split_identifier(ident)
        if type_name == "user_id":
            return {"user_id": value}
        if type_name == "anonymous_id":
            return {"anonymous_id": value}
        t = config.types.get(type_name)
        if t is None:
            continue
        if t.traits:
            return {"traits": {t.traits[0]: value}}
        if t.context:
            out: dict[str, Any] = {}
            cur = out
            parts = t.context[0].split(".")
            for part in parts[:-1]:
                cur = cur.setdefault(part, {})
            cur[parts[-1]] = value
            return {"context": out}
    raise TaktError(f"profile {state.id} has no identifier an event can carry", code="unlinkable", status=409)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise invalid(f"the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                      code="invalid_request")
    return key


def _at(body: Mapping[str, Any], c: ApiContext, stored: bool = False) -> datetime:
    """The body's ``at`` (default now): a view's time within ``c.views``; with ``stored`` (it becomes an
    event's time) within the tighter ``c.limits.window``."""
    raw = body.get("at")
    if raw is None:
        return c.clock()
    now = c.clock()
    try:
        return (c.limits.window if stored else c.views).parse(raw, now, "at")
    except Implausible as e:
        raise invalid(f"at must be a plausible ISO 8601 time: {e.reason}", code="invalid_request",
                      errors=[{"field": "at", "reason": e.reason}]) from None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def _source(key: ApiKey) -> str:
    return f"admin:{key.name}"


# ---- JSON shapes ----
def reason_json(r: Reason) -> dict[str, str]:
    return {"code": r.code, "message": r.sentence, "detail": r.detail}


def _change_json(ch: ConsentChange) -> dict[str, Any]:
    out: dict[str, Any] = {"applied": ch.applied, "status_after": ch.status, "at": _iso(ch.at)}
    if ch.note:
        out["note"] = ch.note
    r = ch.record
    if r is None:
        out["merge"] = True
        return out
    ev = r.evidence
    out.update({
        "status": r.status, "actor": r.actor, "stated_actor": r.stated_actor, "message_id": r.message_id,
        "trust": r.trust,
        "evidence": {k: v for k, v in (("method", ev.method), ("source", ev.source), ("ip", ev.ip),
                                       ("user_agent", ev.user_agent), ("notice_version", ev.notice_version),
                                       ("at", _iso(ev.at))) if v is not None},
    })
    return out


def state_json(s: ConsentState) -> dict[str, Any]:
    return {"purpose": s.purpose, "channel": s.channel, "contact_point": s.contact_point, "status": s.status,
            "confirmed": s.confirmed, "actor": s.actor, "since": _iso(s.since),
            "history": [_change_json(ch) for ch in s.history]}


# ---- endpoints ----
async def record_consent(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, CONSENT_BODY, {
        "actor": f"actor is not given: a change recorded through this endpoint is by {ADMIN_ACTOR!r} (a "
                 f"customer's own change comes from their session as a 'Consent Updated' track call)"})
    ref = _profile_ref(body)
    props = validate_consent({**{k: v for k, v in body.items() if k != "profile"}, "actor": ADMIN_ACTOR})
    idem = _idempotency_key(request)
    runner = await _settled(c)
    state = (await _entry(c, runner, ref)).state
    now = c.clock()
    message_id = "consent:" + _digest(state.id, props, idem if idem is not None else _iso(now))
    event = Event(kind=CONSENT, message_id=message_id, source=_source(key), timestamp=now, received_at=now,
                  provenance=ADMIN_PROVENANCE, properties=props, **_link(runner, state, ref))
    duplicate = state.has(event.source, message_id)  # the profile holds every event linked to it
    written = await c.require_writer().submit([event])
    runner = await _settled(c, written.last_position)  # read your write: the projection has it
    entry = await _entry(c, runner, state.id)
    state = entry.state
    facts = await _entry_facts(c, runner, entry)
    target = facts.person.consent.state(props["purpose"], props.get("channel"), props.get("contact_point"))
    mine = [ch for ch in target.history if ch.record is not None and ch.record.message_id == message_id]
    applied = mine[-1].applied if mine else False
    # the answer holds the person's consent state and its history (contact points): audited before returned
    await audit(c.storage, c.clock(), key.id, "consent.write", state.id)
    return JSON({"success": True, "profile_id": state.id, "message_id": message_id,
                 "duplicate": duplicate, "applied": applied,
                 "note": mine[-1].note if mine and mine[-1].note else None,
                 "state": state_json(target)})


async def consent_history(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    runner = await _settled(c)
    ref = request.path_params["profile_id"]
    entry = await _entry(c, runner, ref)
    state = entry.state
    facts = await _entry_facts(c, runner, entry)
    ledger = facts.person.consent
    changes = [{"position": pos, "message_id": e.message_id, "source": e.source, "provenance": e.provenance,
                "trust": e.trust, "timestamp": _iso(e.timestamp), **e.properties}
               for pos, e in facts.consent_events]
    await audit(c.storage, c.clock(), key.id, "consent.read", state.id)
    return JSON({"profile_id": state.id,
                 "states": [state_json(s) for s in ledger.states().values()],
                 "changes": changes,
                 "skipped": [s.to_json() for s in facts.skipped]})


def _channels(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(ch, str) for ch in raw):
        raise invalid("channels must be a non-empty list of channel names", code="invalid_request",
                      errors=[{"field": "channels", "reason": "a non-empty list of strings is required"}])
    return list(raw)


async def decide_endpoint(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), DECIDE_KINDS)
    body = await _body(request, c, DECIDE_BODY)
    ref = _profile_ref(body)
    purpose = body.get("intent")
    campaign = body.get("campaign")
    if not isinstance(purpose, str):
        raise invalid("intent is required: marketing, transactional or service", code="invalid_request",
                      errors=[{"field": "intent", "reason": "one of marketing, transactional, service"}])
    if campaign is not None and (not isinstance(campaign, str) or not campaign.strip()):
        raise invalid("campaign must be a non-empty string", code="invalid_request",
                      errors=[{"field": "campaign", "reason": "a non-empty string"}])
    intent = Intent(purpose, campaign)
    channels = _channels(body.get("channels"))
    at = _at(body, c)
    settings = await _policy_settings(c)
    runner = await _settled(c)
    entry = await _entry(c, runner, ref)
    state = entry.state
    facts = await _entry_facts(c, runner, entry)
    d = decide(facts.person, intent, channels, at, settings)
    # the answer names the contact point to use (and those rejected): audited before returned
    await audit(c.storage, c.clock(), key.id, "decision.read", state.id)
    return JSON({
        "profile_id": state.id, "intent": intent.purpose, "at": _iso(at),
        "allowed": d.allowed, "channel": d.channel, "contact_point": d.contact_point,
        "reasons": [reason_json(r) for r in d.reasons],
        "rejected": {ch: [reason_json(r) for r in rs] for ch, rs in d.rejected.items()},
    })


async def record_message(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, MESSAGE_BODY)
    ref = _profile_ref(body)
    props = validate_message({k: v for k, v in body.items() if k not in ("profile", "at")})
    at = _at(body, c, stored=True)
    runner = await _settled(c)
    state = (await _entry(c, runner, ref)).state
    now = c.clock()
    # one event per (person, message, status): a retry, or a second open, stores nothing new
    message_id = "message:" + _digest(state.id, props["message_id"], props["status"])
    event = Event(kind=MESSAGE, message_id=message_id, source=_source(key), timestamp=at, received_at=now,
                  provenance=ADMIN_PROVENANCE, properties=props, **_link(runner, state, ref))
    duplicate = state.has(event.source, message_id)
    await c.require_writer().submit([event])
    return JSON({"success": True, "profile_id": state.id, "message_id": message_id, "duplicate": duplicate})


def routes() -> list[Route]:
    return [
        Route("/v1/consent", record_consent, methods=["POST"]),
        Route("/v1/profiles/{profile_id}/consent", consent_history, methods=["GET"]),
        Route("/v1/decide", decide_endpoint, methods=["POST"]),
        Route("/v1/messages", record_message, methods=["POST"]),
    ]


# ---- OpenAPI ----




def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def openapi_paths() -> dict[str, Any]:
    from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES, MESSAGE_STATUSES, METHODS, PURPOSES, STATUSES

    # at least one character that is not whitespace (as str.strip sees it)
    text: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 1024,
                            "pattern": "[^\\s\\x1c-\\x1f\\x85]"}
    nullable_text: dict[str, Any] = {"type": "string", "nullable": True}
    profile = {**text, "maxLength": 2048,
               "description": "A profile id (p_…) or an identifier TYPE:VALUE, e.g. email:ann@example.com."}
    at = {"type": "string", "format": "date-time"}
    reason = {"type": "object", "required": ["code", "message"],
              "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                             "detail": {"type": "string"}}}
    state = {"type": "object", "required": ["purpose", "status", "history"], "additionalProperties": True,
             "properties": {"purpose": {"type": "string"}, "channel": nullable_text,
                            "contact_point": nullable_text,
                            "status": {"type": "string", "enum": list(STATE_STATUSES)},
                            "confirmed": {"type": "boolean"}, "actor": nullable_text,
                            "since": {"type": "string", "nullable": True},
                            "history": {"type": "array", "items": {"type": "object"}}}}
    auth_errors = {"401": _err("Missing, unknown or revoked key."),
                   "403": _err("The key's kind may not use this endpoint.")}
    write_errors = {"400": _err("Invalid body: unknown fields, values or a missing field, each named."),
                    **auth_errors, "404": _err("No such profile."),
                    "409": _err("The profile has no identifier an event could carry."),
                    "429": {**_err("The writer's queue is full; retry later."),
                            "headers": {"Retry-After": {"schema": {"type": "string"}}}},
                    "503": _err("Storage or the profile projection is unavailable, or the projection did not "
                                "publish the write in time (`projection_behind`: it is stored; retry the read).")}
    evidence = {"type": "object", "additionalProperties": False, "properties": {
        "method": {"type": "string", "enum": list(METHODS)}, "source": text, "ip": text, "user_agent": text,
        "notice_version": text, "at": at}}
    consent_body = {
        "type": "object", "additionalProperties": False, "required": ["profile", "purpose", "status"],
        "properties": {
            "profile": profile, "purpose": {"type": "string", "enum": list(PURPOSES)},
            "channel": {"type": "string", "enum": list(CHANNELS)}, "contact_point": text,
            "status": {"type": "string", "enum": list(STATUSES)},
            "evidence": evidence,
        },
        # a grant names its channel and how it was given; in_app has no contact points
        "anyOf": [{"properties": {"status": {"enum": ["withdrawn", "objected"]}}},
                  {"required": ["channel", "evidence"],
                   "properties": {"evidence": {"required": ["method"]}}}],
        "not": {"required": ["contact_point"], "properties": {"channel": {"enum": ["in_app"]}}},
    }
    decide_body = {
        "type": "object", "additionalProperties": False, "required": ["profile", "intent", "channels"],
        "properties": {"profile": profile, "intent": {"type": "string", "enum": list(MESSAGE_PURPOSES)},
                       "channels": {"type": "array", "minItems": 1,
                                    "items": {"type": "string", "enum": list(CHANNELS)}},
                       "at": at, "campaign": text},
    }
    message_body = {
        "type": "object", "additionalProperties": False,
        "required": ["profile", "message_id", "status", "channel", "intent"],
        "properties": {"profile": profile, "message_id": text,
                       "status": {"type": "string", "enum": list(MESSAGE_STATUSES)},
                       "channel": {"type": "string", "enum": list(CHANNELS)}, "contact_point": text,
                       "campaign": text, "intent": {"type": "string", "enum": list(MESSAGE_PURPOSES)}, "at": at},
    }
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
            "description": "The same key with the same body stores the change once."}
    return {
        "/v1/consent": {"post": {
            "summary": "Record a consent change for a person (admin key; actor admin)",
            "description": "Validated like every consent event; committed before the answer. An admin change "
                           "never lifts a customer's withdrawal or objection: `applied` says whether it "
                           "changed the state.",
            "operationId": "record_consent", "security": [{"bearer": []}],
            "parameters": [idem],
            "requestBody": _json_body(consent_body),
            "responses": {"200": _ok("The change is committed", {
                "type": "object", "required": ["success", "profile_id", "message_id", "applied", "state"],
                "properties": {"success": {"type": "boolean"}, "profile_id": {"type": "string"},
                               "message_id": {"type": "string"}, "duplicate": {"type": "boolean"},
                               "applied": {"type": "boolean"}, "note": nullable_text, "state": state}}),
                **write_errors}}},
        "/v1/profiles/{profile_id}/consent": {"get": {
            "summary": "A person's consent: state and history per (purpose, channel, contact point)",
            "operationId": "profile_consent", "security": [{"bearer": []}],
            "parameters": [{"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "A profile id or an identifier TYPE:VALUE."}],
            "responses": {"200": _ok("The consent state", {
                "type": "object", "required": ["profile_id", "states", "changes", "skipped"],
                "properties": {"profile_id": {"type": "string"}, "states": {"type": "array", "items": state},
                               "changes": {"type": "array", "items": {"type": "object"}},
                               "skipped": {"type": "array", "items": {"type": "object"}}}}),
                "400": _err("The identifier is malformed."), **auth_errors, "404": _err("No such profile."),
                "503": _err("Profiles are not projected by this server (`unavailable`), or the projection did "
                                                          "not publish this server's writes about the person in time "
                                                          "(`projection_behind`: retry).")}}},
        "/v1/decide": {"post": {
            "summary": "May a message reach a person now, on which one channel, and why (read or admin key)",
            "operationId": "decide", "security": [{"bearer": []}],
            "requestBody": _json_body(decide_body),
            "responses": {"200": _ok("The decision", {
                "type": "object", "required": ["allowed", "channel", "contact_point", "reasons", "rejected"],
                "properties": {"profile_id": {"type": "string"}, "intent": {"type": "string"}, "at": at,
                               "allowed": {"type": "boolean"}, "channel": nullable_text,
                               "contact_point": nullable_text,
                               "reasons": {"type": "array", "items": reason},
                               "rejected": {"type": "object",
                                            "additionalProperties": {"type": "array", "items": reason}}}}),
                "400": _err("Invalid body: unknown fields, intent, channels or time."), **auth_errors,
                "404": _err("No such profile."), "503": _err("Profiles are not projected by this server (`unavailable`), or the projection did "
                                                          "not publish this server's writes about the person in time "
                                                          "(`projection_behind`: retry).")}}},
        "/v1/messages": {"post": {
            "summary": "Record a message lifecycle step for a person (admin key)",
            "description": "One event per (person, message_id, status): retries store nothing new. `sent` "
                           "counts toward the contact budget; `complained` starts the cooling-off period.",
            "operationId": "record_message", "security": [{"bearer": []}],
            "requestBody": _json_body(message_body),
            "responses": {"200": _ok("The step is committed", {
                "type": "object", "required": ["success", "profile_id", "message_id"],
                "properties": {"success": {"type": "boolean"}, "profile_id": {"type": "string"},
                               "message_id": {"type": "string"}, "duplicate": {"type": "boolean"}}}),
                **write_errors}}},
    }
