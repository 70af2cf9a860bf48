"""The consent ledger: ``consent`` events, their validation, and a pure fold into consent states.

A ``consent`` event's ``properties``::

    {"purpose": "marketing",                 # see takt.policy.vocab.PURPOSES
     "channel": "email",                     # see CHANNELS; optional for withdrawals (= every channel)
     "contact_point": "ada@example.com",     # optional: without it the change covers the whole channel
     "status": "granted" | "withdrawn" | "objected",
     "actor": "customer" | "import" | "admin" | "third_party",
     "evidence": {"method": "double_opt_in", "source": "newsletter-form", "ip": "203.0.113.9",
                  "user_agent": "...", "notice_version": "2026-03", "at": "2026-11-01T09:00:00Z"}}

``evidence`` (with ``method``) is required for grants and optional otherwise. Unknown fields are errors.

**Scopes.** A change covers one purpose. A grant covers one channel, and one contact point when it names one
(else every contact point on the channel). A withdrawal covers what it names, every channel when it names
none. An objection (GDPR Art. 21) covers its purpose on *every* channel and contact point, whatever channel
it names. The state of a target ``(purpose, channel, contact_point)`` is the fold, in log order, of every
change that covers it:

* a withdrawal or objection always applies (anyone may restrict);
* a grant by ``third_party`` never applies: consent must be given to this company;
* a grant over a withdrawal or objection applies only when its actor is ``customer``: imports, admins and
  merges never lift what the customer withdrew;
* a grant is *confirmed* when its evidence method is ``double_opt_in`` and the event has ``server`` trust, or
  when it renews a confirmed grant. Whether email marketing needs confirmation is policy's business
  (``policy.email_marketing_requires_double_opt_in``), not the ledger's.

**Trust.** Who vouches for the event (:data:`~takt.events.model.TRUSTS`) bounds what a change can do:

* ``public`` (a browser or app key anyone can read): the change is the visitor's *claim*. A withdrawal or
  objection applies like any other (a customer saying stop is always honoured). A grant is recorded with its
  evidence and makes the state ``claimed`` where nothing was on record (or only a claim): shown as pending, it
  is not consent; a later grant from a trusted source turns it into a grant. A claim never confirms, never
  lifts a withdrawal or objection, and changes nothing over a grant;
* ``verified`` (a public client whose identity was signed by the company's server): grants count as the
  customer's, but their double-opt-in evidence is not a confirmation (only takt's own double opt-in or a
  server key confirms);
* ``server``: the company's statement, as above.

**Order.** A person's changes fold in the order the customer acted: by event time (the skew-corrected
``timestamp``, never later than when takt received the event), with the log position breaking ties, so a change
that reached the log late (an app's offline queue) takes its place in time. A grant dated before the
restriction it would lift never lifts it.

**Actors and provenance.** The actor an event states is trusted only as far as its source: ``customer`` needs a
``customer_provided`` source (from a ``crm_import`` or ``observed`` source it counts as ``import``), and any
actor from a ``third_party`` source counts as ``third_party``.

**Merges.** :meth:`ConsentLedger.merge` joins two people's ledgers: for every target the most restrictive of the
two states wins (objected, withdrawn, granted unconfirmed, granted confirmed; a side with no record for the
target does not count), and only later changes move it, by the rules above, so only the customer lifts a
restriction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from takt.errors import TaktError, invalid
from takt.events.model import Event, StoredEvent, parse_time, register_kind
from takt.policy.vocab import (
    ACTORS,
    CHANNEL_KIND,
    CHANNELS,
    METHODS,
    PURPOSES,
    STATUSES,
    normalize_contact_value,
)

CONSENT = register_kind(
    "consent",
    "A change of consent: properties.purpose, channel, contact_point (optional), status "
    "(granted/withdrawn/objected), actor (customer/import/admin/third_party), evidence {method, source, ip, "
    "user_agent, notice_version, at}.",
)

CONSENT_FIELDS = ("purpose", "channel", "contact_point", "status", "actor", "evidence")
EVIDENCE_FIELDS = ("method", "source", "ip", "user_agent", "notice_version", "at")
CONSENT_UPDATED = "Consent Updated"
MAX_TEXT = 1024

RESTRICTIVE = ("withdrawn", "objected")


# ---- validation ----
def _text(errors: list[dict[str, Any]], name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append({"field": name, "reason": f"{name} must be a non-empty string"})
        return None
    if len(value) > MAX_TEXT:
        errors.append({"field": name, "reason": f"{name} is longer than {MAX_TEXT} characters"})
        return None
    return value


def _choice(errors: list[dict[str, Any]], name: str, value: Any, choices: tuple[str, ...],
            required: bool) -> str | None:
    if value is None:
        if required:
            errors.append({"field": name, "reason": f"{name} is required (one of {', '.join(choices)})"})
        return None
    if value not in choices:
        errors.append({"field": name, "reason": f"unknown {name} {value!r} (expected one of "
                                                f"{', '.join(choices)})"})
        return None
    return str(value)


def _evidence(errors: list[dict[str, Any]], raw: Any, required: bool) -> dict[str, Any]:
    if raw is None:
        if required:
            errors.append({"field": "evidence", "reason": "a grant needs evidence with its method (how the "
                                                          "customer gave consent)"})
        return {}
    if not isinstance(raw, Mapping):
        errors.append({"field": "evidence", "reason": "evidence must be an object"})
        return {}
    out: dict[str, Any] = {}
    for key in sorted(set(raw) - set(EVIDENCE_FIELDS), key=str):
        errors.append({"field": f"evidence.{key}", "reason": f"unknown evidence field {key!r} (expected "
                                                              f"{', '.join(EVIDENCE_FIELDS)})"})
    method = _choice(errors, "evidence.method", raw.get("method"), METHODS, required)
    if method is not None:
        out["method"] = method
    for key in ("source", "ip", "user_agent", "notice_version"):
        value = _text(errors, f"evidence.{key}", raw.get(key))
        if value is not None:
            out[key] = value
    at = raw.get("at")
    if at is not None:
        try:
            if not isinstance(at, str | datetime):
                raise ValueError
            out["at"] = parse_time(at).isoformat().replace("+00:00", "Z")
        except ValueError:
            errors.append({"field": "evidence.at", "reason": f"evidence.at must be an ISO 8601 time, got "
                                                             f"{str(at)[:60]!r}"})
    return out


def validate_consent(properties: Any) -> dict[str, Any]:
    """Check a consent payload; return it normalized (contact point in its one form) or raise a
    :class:`TaktError` (code ``invalid_consent``) listing every problem."""
    if not isinstance(properties, Mapping):
        raise invalid("a consent change must be an object", code="invalid_consent")
    errors: list[dict[str, Any]] = []
    for key in sorted(set(properties) - set(CONSENT_FIELDS), key=str):
        errors.append({"field": str(key), "reason": f"unknown consent field {key!r} (expected "
                                                    f"{', '.join(CONSENT_FIELDS)})"})
    purpose = _choice(errors, "purpose", properties.get("purpose"), PURPOSES, True)
    status = _choice(errors, "status", properties.get("status"), STATUSES, True)
    actor = _choice(errors, "actor", properties.get("actor"), ACTORS, True)
    channel = _choice(errors, "channel", properties.get("channel"), CHANNELS, status == "granted")
    contact_point = _text(errors, "contact_point", properties.get("contact_point"))
    if contact_point is not None and properties.get("channel") is None:
        errors.append({"field": "contact_point", "reason": "a contact point needs its channel"})
    kind = CHANNEL_KIND.get(channel) if channel else None
    if contact_point is not None and channel == "in_app":
        errors.append({"field": "contact_point", "reason": "in_app has no contact points"})
    evidence = _evidence(errors, properties.get("evidence"), status == "granted")
    if errors:
        raise invalid("invalid consent change", code="invalid_consent", errors=errors)
    out: dict[str, Any] = {"purpose": purpose, "status": status, "actor": actor}
    if channel is not None:
        out["channel"] = channel
    if contact_point is not None and kind is not None:
        out["contact_point"] = normalize_contact_value(kind, contact_point)
    if evidence:
        out["evidence"] = evidence
    return out


# ---- records ----
@dataclass(frozen=True, slots=True)
class Evidence:
    method: str | None = None
    source: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    notice_version: str | None = None
    at: datetime | None = None


def effective_actor(actor: str, provenance: str) -> str:
    """The actor an event counts as: never more trusted than the source it came from."""
    if provenance == "third_party":
        return "third_party"
    if actor == "customer" and provenance != "customer_provided":
        return "import"
    return actor


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One validated consent change, as the ledger folds it."""

    purpose: str
    status: str
    actor: str
    """The effective actor (see :func:`effective_actor`)."""
    at: datetime
    channel: str | None = None
    contact_point: str | None = None
    stated_actor: str | None = None
    evidence: Evidence = field(default_factory=Evidence)
    message_id: str = ""
    trust: str = "server"
    """Who vouches for the change (see :data:`~takt.events.model.TRUSTS`)."""
    position: int = 0
    """The log position (0 when unknown): breaks ties between changes made at the same time."""
    received_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        """A double opt-in the company vouches for (a client's say-so is not a confirmation)."""
        return self.evidence.method == "double_opt_in" and self.trust == "server"

    @property
    def is_claim(self) -> bool:
        """A public client's assertion: recorded, never enough to grant (see the module doc)."""
        return self.trust == "public"

    @property
    def acted_at(self) -> datetime:
        """When the customer acted, as far as takt can know: the event time, never after its receipt."""
        if self.received_at is not None and self.received_at < self.at:
            return self.received_at
        return self.at

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.acted_at, self.position)

    @property
    def scope(self) -> tuple[str, str | None, str | None]:
        """``(purpose, channel, contact_point)`` this change covers; ``None`` is "every"."""
        if self.status == "objected":
            return (self.purpose, None, None)
        return (self.purpose, self.channel, self.contact_point if self.channel else None)

    def covers(self, purpose: str, channel: str | None, contact_point: str | None) -> bool:
        p, ch, cp = self.scope
        return p == purpose and (ch is None or ch == channel) and (cp is None or cp == contact_point)


def record_from_event(event: Event | StoredEvent) -> ConsentRecord:
    """The consent change a ``consent`` event holds (validated); a stored event gives its log position."""
    e = event.event if isinstance(event, StoredEvent) else event
    position = event.position if isinstance(event, StoredEvent) else 0
    if e.kind != CONSENT:
        raise invalid(f"expected a {CONSENT!r} event, got {e.kind!r}", code="invalid_consent")
    props = validate_consent(e.properties)
    ev = props.get("evidence", {})
    return ConsentRecord(
        purpose=props["purpose"],
        status=props["status"],
        actor=effective_actor(props["actor"], e.provenance),
        stated_actor=props["actor"],
        at=e.timestamp,
        channel=props.get("channel"),
        contact_point=props.get("contact_point"),
        evidence=Evidence(
            method=ev.get("method"), source=ev.get("source"), ip=ev.get("ip"), user_agent=ev.get("user_agent"),
            notice_version=ev.get("notice_version"), at=parse_time(ev["at"]) if "at" in ev else None,
        ),
        message_id=e.message_id,
        trust=e.trust,
        position=position,
        received_at=e.received_at,
    )


# ---- states ----
@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One entry of a state's history: a change (or a merge, ``record is None``), whether it applied, why not,
    and the status after it."""

    record: ConsentRecord | None
    applied: bool
    status: str
    note: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The consent for one target. ``status`` is ``none`` (nothing on record), ``claimed`` (a public client's
    grant, pending: not consent), ``granted``, ``withdrawn`` or ``objected``; ``confirmed`` says a grant was
    confirmed by double opt-in."""

    purpose: str
    channel: str | None
    contact_point: str | None
    status: str = "none"
    confirmed: bool = False
    actor: str | None = None
    since: datetime | None = None
    history: tuple[ConsentChange, ...] = ()

    @property
    def granted(self) -> bool:
        return self.status == "granted"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view, history included (for the preference center and audits)."""
        return {
            "purpose": self.purpose, "channel": self.channel, "contact_point": self.contact_point,
            "status": self.status, "confirmed": self.confirmed, "actor": self.actor,
            "since": _iso(self.since),
            "history": [
                {"at": _iso(c.at), "status": c.status, "applied": c.applied, "note": c.note,
                 "change": None if c.record is None else {
                     "purpose": c.record.purpose, "channel": c.record.channel,
                     "contact_point": c.record.contact_point, "status": c.record.status,
                     "actor": c.record.actor, "stated_actor": c.record.stated_actor,
                     "method": c.record.evidence.method, "message_id": c.record.message_id,
                     "trust": c.record.trust}}
                for c in self.history
            ],
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


STATE_STATUSES = ("none", "claimed", "granted", "withdrawn", "objected")
"""Every status a :class:`ConsentState` may have."""

_RANK = {"objected": 0, "withdrawn": 1, "claimed": 2, "granted": 3}


def _restrictiveness(s: ConsentState) -> tuple[int, int]:
    return (_RANK[s.status], 1 if s.confirmed else 0)


def most_restrictive(a: ConsentState, b: ConsentState) -> ConsentState:
    """The more restrictive of two states for one target; a side with nothing on record does not count."""
    if a.status == "none":
        return b
    if b.status == "none":
        return a
    return a if _restrictiveness(a) <= _restrictiveness(b) else b


def _keep(s: ConsentState, r: ConsentRecord, note: str) -> ConsentState:
    return ConsentState(s.purpose, s.channel, s.contact_point, s.status, s.confirmed, s.actor, s.since,
                        (*s.history, ConsentChange(r, False, s.status, note, r.at)))


CLAIM_NOTE = ("a claim from a public client (browser or app key): recorded as pending, it counts once the "
              "customer confirms it through the company or a double opt-in takt sends")


def _step(s: ConsentState, r: ConsentRecord) -> ConsentState:
    if r.status in RESTRICTIVE:
        change = ConsentChange(r, True, r.status, at=r.at)
        return ConsentState(s.purpose, s.channel, s.contact_point, r.status, False, r.actor, r.at,
                            (*s.history, change))
    if r.actor == "third_party":
        return _keep(s, r, "ignored: consent must be given to this company; a third party cannot grant it")
    if r.is_claim:
        if s.status in RESTRICTIVE:
            return _keep(s, r, f"ignored: a claim from a public client (browser or app key) never lifts a "
                               f"consent that is {s.status}")
        if s.status == "granted":
            return _keep(s, r, "ignored: already granted; a claim from a public client changes nothing")
        return ConsentState(s.purpose, s.channel, s.contact_point, "claimed", False, r.actor, r.at,
                            (*s.history, ConsentChange(r, True, "claimed", CLAIM_NOTE, r.at)))
    if s.status in RESTRICTIVE and r.actor != "customer":
        return _keep(s, r, f"ignored: only the customer can lift a consent that is {s.status} (this grant is "
                           f"by {r.actor})")
    if s.status in RESTRICTIVE and s.since is not None and r.acted_at < s.since:
        return _keep(s, r, f"ignored: this grant was made before the consent became {s.status}")
    confirmed = r.confirmed or (s.status == "granted" and s.confirmed)
    return ConsentState(s.purpose, s.channel, s.contact_point, "granted", confirmed, r.actor, r.at,
                        (*s.history, ConsentChange(r, True, "granted", at=r.at)))


@dataclass(frozen=True, slots=True)
class ConsentLedger:
    """One person's consent changes in the order the customer acted (:attr:`ConsentRecord.order`; records
    given in log order keep it between equals), on top of an optional merge of two earlier ledgers."""

    records: tuple[ConsentRecord, ...] = ()
    merged: tuple[ConsentLedger, ConsentLedger] | None = None
    merged_at: datetime | None = None

    def __post_init__(self) -> None:
        # a stable sort: changes with the same time and position keep the order they were given in
        object.__setattr__(self, "records", tuple(sorted(self.records, key=_order)))

    def apply(self, *records: ConsentRecord) -> ConsentLedger:
        return ConsentLedger((*self.records, *records), self.merged, self.merged_at)

    def merge(self, other: ConsentLedger, at: datetime) -> ConsentLedger:
        """The ledger of one person made of two: the most restrictive state wins for every target until the
        customer acts again."""
        return ConsentLedger((), (self, other), at)

    def state(self, purpose: str, channel: str | None, contact_point: str | None = None) -> ConsentState:
        """The consent for a target, with the history of every change that covered it."""
        if self.merged is not None:
            a = self.merged[0].state(purpose, channel, contact_point)
            b = self.merged[1].state(purpose, channel, contact_point)
            w = most_restrictive(a, b)
            merge = ConsentChange(None, True, w.status, "merged two people's ledgers: the most restrictive "
                                                         "state wins until the customer acts again",
                                  self.merged_at)
            s = ConsentState(purpose, channel, contact_point, w.status, w.confirmed, w.actor, w.since,
                             (*a.history, *b.history, merge))
        else:
            s = ConsentState(purpose, channel, contact_point)
        for r in self.records:
            if r.covers(purpose, channel, contact_point):
                s = _step(s, r)
        return s

    def scopes(self) -> list[tuple[str, str | None, str | None]]:
        """Every scope some change names, in first-seen order."""
        seen: dict[tuple[str, str | None, str | None], None] = {}
        if self.merged is not None:
            for side in self.merged:
                seen.update(dict.fromkeys(side.scopes()))
        for r in self.records:
            seen.setdefault(r.scope, None)
        return list(seen)

    def states(self) -> dict[tuple[str, str | None, str | None], ConsentState]:
        """The state of every scope some change names, keyed by ``(purpose, channel, contact_point)``."""
        return {key: self.state(*key) for key in self.scopes()}


def _order(r: ConsentRecord) -> tuple[datetime, int]:
    return r.order


EMPTY = ConsentLedger()


def fold_consent(events: Iterable[Event | StoredEvent], ledger: ConsentLedger = EMPTY) -> ConsentLedger:
    """Fold events (in log order; stored events give their positions) into ``ledger``; events of other kinds
    are skipped."""
    new: list[ConsentRecord] = []
    for item in events:
        e = item.event if isinstance(item, StoredEvent) else item
        if e.kind == CONSENT:
            new.append(record_from_event(e))
    return ledger.apply(*new) if new else ledger


def merge_ledgers(a: ConsentLedger, b: ConsentLedger, at: datetime) -> ConsentLedger:
    return a.merge(b, at)


@dataclass(frozen=True, slots=True)
class MergeStep:
    """In a timeline for :func:`fold_consent_timeline`: the person ``other`` became part of ``into`` at ``at``."""

    into: str
    other: str
    at: datetime


def fold_consent_timeline(
    steps: Iterable[tuple[str, Event | StoredEvent] | MergeStep],
    ledgers: Mapping[str, ConsentLedger] | None = None,
) -> dict[str, ConsentLedger]:
    """Fold a timeline of ``(person key, event)`` pairs and :class:`MergeStep` s, in the order given, into one
    ledger per surviving person. A merge joins the two ledgers as :meth:`ConsentLedger.merge` does (the most
    restrictive state wins until the customer acts again); later events of the merged-away key count for the
    person it joined. Events of other kinds are skipped."""
    out: dict[str, ConsentLedger] = dict(ledgers or {})
    alias: dict[str, str] = {}

    def resolve(key: str) -> str:
        while key in alias:
            key = alias[key]
        return key

    pending: dict[str, list[ConsentRecord]] = {}

    def flush(key: str) -> ConsentLedger:
        ledger = out.get(key, EMPTY)
        records = pending.pop(key, None)
        if records:
            ledger = ledger.apply(*records)
        out[key] = ledger
        return ledger

    for step in steps:
        if isinstance(step, MergeStep):
            into, other = resolve(step.into), resolve(step.other)
            if into == other:
                continue
            merged = flush(into).merge(flush(other), step.at)
            del out[other]
            alias[other] = into
            out[into] = merged
            continue
        key, item = step
        e = item.event if isinstance(item, StoredEvent) else item
        if e.kind == CONSENT:
            pending.setdefault(resolve(key), []).append(record_from_event(e))
    for key in list(pending):
        flush(key)
    return out


# ---- Consent Updated ----
TRACK_FIELDS = ("purpose", "channel", "contact_point", "status", "evidence", "consents")
TRACK_EVIDENCE_FIELDS = ("method", "notice_version")


def consent_events_from_track(event: Event) -> tuple[Event, ...]:
    """The ``consent`` events a ``Consent Updated`` track call from the customer's own session stands for.

    Its properties are one change (``purpose``, ``channel``, ``contact_point``, ``status``, optional
    ``evidence`` with ``method`` (default ``web_form``) and ``notice_version``) or ``consents``: a list of such
    changes. The actor is ``customer``; ip, user agent, source, time and trust come from the call itself. (Whether
    the source may speak for the customer is decided by the event's provenance, see :func:`effective_actor`;
    what it may change, by its trust: a public client's grant is a claim.)
    """
    if event.kind != "track" or event.event != CONSENT_UPDATED:
        raise invalid(f"expected a track call {CONSENT_UPDATED!r}", code="invalid_consent")
    props = event.properties
    unknown = sorted(set(props) - set(TRACK_FIELDS))
    if unknown:
        raise invalid(f"{CONSENT_UPDATED}: unknown properties {', '.join(map(repr, unknown))} (expected "
                      f"{', '.join(TRACK_FIELDS)})", code="invalid_consent")
    if "consents" in props:
        if set(props) != {"consents"}:
            raise invalid(f"{CONSENT_UPDATED}: give either consents or one change, not both",
                          code="invalid_consent")
        items = props["consents"]
        if not isinstance(items, list) or not items:
            raise invalid(f"{CONSENT_UPDATED}: consents must be a non-empty list", code="invalid_consent")
    else:
        items = [props]
    out: list[Event] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            out.append(_consent_event(event, item, i))
        except TaktError as e:
            errors.extend({"index": i, **err} for err in (e.errors or [{"reason": e.message}]))
    if errors:
        raise invalid(f"invalid {CONSENT_UPDATED} call", code="invalid_consent", errors=errors)
    return tuple(out)


def _consent_event(event: Event, item: Any, i: int) -> Event:
    if not isinstance(item, Mapping):
        raise invalid("a consent change must be an object", code="invalid_consent")
    raw_evidence = item.get("evidence") or {}
    if not isinstance(raw_evidence, Mapping):
        raise invalid("evidence must be an object", code="invalid_consent")
    extra = sorted(set(raw_evidence) - set(TRACK_EVIDENCE_FIELDS))
    if extra:
        raise invalid(f"evidence fields {', '.join(map(repr, extra))} come from the call itself; a "
                      f"{CONSENT_UPDATED} call may give only {', '.join(TRACK_EVIDENCE_FIELDS)}",
                      code="invalid_consent")
    evidence: dict[str, Any] = {"method": raw_evidence.get("method", "web_form"), "source": event.source,
                                "at": event.timestamp}
    if "notice_version" in raw_evidence:
        evidence["notice_version"] = raw_evidence["notice_version"]
    ip, agent = event.context.get("ip"), event.context.get("userAgent")
    if isinstance(ip, str) and ip:
        evidence["ip"] = ip
    if isinstance(agent, str) and agent:
        evidence["user_agent"] = agent[:MAX_TEXT]
    fields = {k: v for k, v in item.items() if k != "evidence"}
    for name in ("consents", "actor"):
        if name in fields:
            raise invalid(f"unknown field in a {CONSENT_UPDATED} change: {name} (the actor is the customer)",
                          code="invalid_consent")
    props = validate_consent({**fields, "actor": "customer", "evidence": evidence})
    return Event(
        kind=CONSENT, message_id=f"{event.message_id}:consent:{i}", source=event.source,
        timestamp=event.timestamp, received_at=event.received_at, provenance=event.provenance,
        user_id=event.user_id, anonymous_id=event.anonymous_id, properties=props, context=event.context,
        trust=event.trust,
    )
