"""The canonical event: what the log stores and every projection folds.

One frozen record covers the Segment spec calls (``track``, ``identify``, ``page``, ``screen``, ``group``,
``alias``) and takt's own kinds (imported records, consent changes, message lifecycle, derived events), which
other packages declare with :func:`register_kind`. The record is versioned: :data:`CURRENT_VERSION` is what
is written, and :func:`upcast` brings any older stored record up to it, one registered step at a time, so old
logs stay readable.

Mappings inside an event (``properties``, ``traits``, ``context``, ``integrations``) are plain dicts for speed;
treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

SEGMENT_KINDS = ("track", "identify", "page", "screen", "group", "alias")

PROVENANCES = ("customer_provided", "crm_import", "observed", "third_party")
"""From most to least trusted. An event may lower its provenance below its source's, never raise it."""

PROVENANCE_RANK = {p: i for i, p in enumerate(PROVENANCES)}

TRUSTS = ("server", "verified", "public")
"""Who vouches for an event, from most to least: ``server`` (a secret key of the company's backend or an
import: the company's statement), ``verified`` (a public client whose identity claim carried a valid
server-computed signature), ``public`` (a browser or app key anyone can read from a page: the visitor's
claim, which never confirms consent, lifts a withdrawal or makes a contact point usable by itself).
Records without the field were written before keys had a trust and keep their meaning: ``server``."""

TRUST_RANK = {t: i for i, t in enumerate(TRUSTS)}

CURRENT_VERSION = 1

_KINDS: dict[str, str] = {k: "Segment spec call" for k in SEGMENT_KINDS}


def register_kind(kind: str, description: str) -> str:
    """Declare one of takt's own event kinds (e.g. ``consent``); returns the kind."""
    if kind in _KINDS and _KINDS[kind] != description:
        raise RuntimeError(f"event kind {kind!r} registered twice")
    _KINDS[kind] = description
    return kind


def known_kinds() -> dict[str, str]:
    return dict(_KINDS)


def lower_provenance(source_provenance: str, asked: str | None) -> str:
    """The provenance an event gets: its source's, or a less trusted one the event asks for."""
    if asked is None or asked not in PROVENANCE_RANK:
        return source_provenance
    return asked if PROVENANCE_RANK[asked] > PROVENANCE_RANK[source_provenance] else source_provenance


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    message_id: str
    source: str
    timestamp: datetime
    received_at: datetime
    provenance: str = "observed"
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None
    name: str | None = None
    group_id: str | None = None
    previous_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    integrations: dict[str, Any] = field(default_factory=dict)
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    version: int = CURRENT_VERSION
    trust: str = "server"

    @property
    def is_claim(self) -> bool:
        """True when the event is only a public client's assertion (see :data:`TRUSTS`)."""
        return self.trust == "public"

    def with_changes(self, **changes: Any) -> Event:
        return replace(self, **changes)

    # ---- serialization ----
    def to_record(self, times: bool = True) -> dict[str, Any]:
        """A JSON-ready dict in the Segment spec's own field names (plus takt's). With ``times=False`` the
        timestamps stay ``datetime`` objects (for orjson, which formats them natively and faster)."""
        fmt: Callable[[datetime], Any] = _iso if times else _same
        rec: dict[str, Any] = {
            "v": self.version,
            "type": self.kind,
            "messageId": self.message_id,
            "source": self.source,
            "provenance": self.provenance,
            "timestamp": fmt(self.timestamp),
            "receivedAt": fmt(self.received_at),
        }
        for key, value in (
            ("userId", self.user_id),
            ("anonymousId", self.anonymous_id),
            ("event", self.event),
            ("name", self.name),
            ("groupId", self.group_id),
            ("previousId", self.previous_id),
        ):
            if value is not None:
                rec[key] = value
        for key, mapping in (
            ("properties", self.properties),
            ("traits", self.traits),
            ("context", self.context),
            ("integrations", self.integrations),
        ):
            if mapping:
                rec[key] = mapping
        if self.original_timestamp is not None:
            rec["originalTimestamp"] = fmt(self.original_timestamp)
        if self.sent_at is not None:
            rec["sentAt"] = fmt(self.sent_at)
        if self.trust != "server":
            rec["trust"] = self.trust
        return rec

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_record(times=False), option=orjson.OPT_UTC_Z)

    @staticmethod
    def from_record(rec: dict[str, Any]) -> Event:
        rec = upcast(rec)
        return Event(
            kind=rec["type"],
            message_id=rec["messageId"],
            source=rec["source"],
            provenance=rec.get("provenance", "observed"),
            timestamp=parse_time(rec["timestamp"]),
            received_at=parse_time(rec["receivedAt"]),
            user_id=rec.get("userId"),
            anonymous_id=rec.get("anonymousId"),
            event=rec.get("event"),
            name=rec.get("name"),
            group_id=rec.get("groupId"),
            previous_id=rec.get("previousId"),
            properties=rec.get("properties") or {},
            traits=rec.get("traits") or {},
            context=rec.get("context") or {},
            integrations=rec.get("integrations") or {},
            original_timestamp=parse_time(rec["originalTimestamp"]) if rec.get("originalTimestamp") else None,
            sent_at=parse_time(rec["sentAt"]) if rec.get("sentAt") else None,
            version=CURRENT_VERSION,
            trust=rec.get("trust", "server"),
        )

    @staticmethod
    def from_json(data: bytes | str) -> Event:
        return Event.from_record(orjson.loads(data))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log holds it: with its position, the order projections fold in."""

    position: int
    event: Event


# ---- upcasting ----
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[int, Upcaster] = {}


def register_upcaster(from_version: int, fn: Upcaster) -> None:
    """Register the step that turns a record of ``from_version`` into one of ``from_version + 1``."""
    if from_version in _UPCASTERS and _UPCASTERS[from_version] is not fn:
        raise RuntimeError(f"an upcaster from version {from_version} is already registered")
    _UPCASTERS[from_version] = fn


def upcast(rec: dict[str, Any]) -> dict[str, Any]:
    version = int(rec.get("v", 0))
    if version > CURRENT_VERSION:
        raise ValueError(f"event record version {version} is newer than this takt ({CURRENT_VERSION})")
    while version < CURRENT_VERSION:
        step = _UPCASTERS.get(version)
        if step is None:
            raise ValueError(f"no upcaster from event record version {version}")
        rec = step(dict(rec))
        version += 1
        rec["v"] = version
    return rec


def _v0_to_v1(rec: dict[str, Any]) -> dict[str, Any]:
    """Version 0 records (takt's pre-release format) kept the write key's source as ``writeKeySource`` and had no
    provenance; version 1 names it ``source`` and carries the provenance, unknown ones being ``observed``."""
    rec["source"] = rec.pop("writeKeySource", rec.get("source", "unknown"))
    rec.setdefault("provenance", "observed")
    return rec


register_upcaster(0, _v0_to_v1)


# ---- time ----
def _same(t: datetime) -> datetime:
    return t


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str | datetime) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is taken as UTC."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)
