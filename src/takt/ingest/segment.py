"""Segment-spec payloads in, canonical events out.

Pure functions: a decoded JSON body, the source it came from and the time it was received give a list of
:class:`~takt.events.Event` or one :class:`~takt.errors.TaktError` that lists every bad item with its index
and reason. A batch is all or nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from takt.errors import TaktError, invalid, too_large
from takt.events.model import PROVENANCE_RANK, TRUST_RANK, Event, lower_provenance
from takt.ingest.verification import USER_HASH, VerificationError, trust_of
from takt.ingest.window import Implausible, TimeWindow, parse_any

KIND_ALIASES = {
    "track": "track", "t": "track",
    "identify": "identify", "i": "identify",
    "page": "page", "p": "page",
    "screen": "screen", "s": "screen",
    "group": "group", "g": "group",
    "alias": "alias", "a": "alias",
}

MAX_MESSAGE_ID = 100

MAX_BODY_DEPTH = 200
"""No JSON body nests deeper than this: the serializer that writes events and audit records stops at 254 levels
and a body is wrapped in a few more. ``ingest.max_nesting_depth`` (at most this) limits each event's fields."""


@dataclass(frozen=True)
class Source:
    """Who sent the events: the write key's source, the provenance it declares and its trust
    (:data:`takt.events.model.TRUSTS`: ``server`` for a secret backend key, ``public`` for a browser key).
    With a public key, ``verification_secret`` checks ``context.userHash`` (:mod:`takt.ingest.verification`)."""

    name: str
    provenance: str
    trust: str = "server"
    verification_secret: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCE_RANK:
            raise ValueError(f"unknown provenance {self.provenance!r}")
        if self.trust not in TRUST_RANK:
            raise ValueError(f"unknown trust {self.trust!r}")


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    max_depth: int = 32
    """Deepest nesting of objects and arrays inside an event's fields (``ingest.max_nesting_depth``)."""
    window: TimeWindow = field(default_factory=TimeWindow)
    """Plausible event times (``ingest.earliest_time``, ``ingest.max_future_hours``)."""


class ItemError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


# ---- bodies ----
def decode_body(raw: bytes, content_encoding: str | None, limits: Limits) -> Any:
    """Decompress (gzip or deflate, capped at the request limit) and parse JSON."""
    return decode_body_depth(raw, content_encoding, limits)[0]


def decode_body_depth(raw: bytes, content_encoding: str | None, limits: Limits) -> tuple[Any, int]:
    """:func:`decode_body` and how deeply the body nests (:func:`json_depth`, measured once for both checks)."""
    enc = (content_encoding or "").strip().lower()
    if enc in ("gzip", "x-gzip"):
        raw = _inflate(raw, zlib.MAX_WBITS | 16, limits.max_request_bytes)
    elif enc == "deflate":
        raw = _inflate(raw, zlib.MAX_WBITS, limits.max_request_bytes)
    elif enc not in ("", "identity"):
        raise invalid(f"unsupported Content-Encoding {content_encoding!r} (use gzip)", "unsupported_encoding")
    if len(raw) > limits.max_request_bytes:
        raise too_large(f"request body is {len(raw)} bytes; the limit is {limits.max_request_bytes}")
    if not raw.strip():
        raise invalid("empty request body", "malformed_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e):
            raise invalid(f"the JSON body nests deeper than {MAX_BODY_DEPTH} levels", "too_deep") from None
        raise invalid(f"malformed JSON: {e}", "malformed_json") from None
    depth = json_depth(body, MAX_BODY_DEPTH + 1)
    if depth > MAX_BODY_DEPTH:
        raise invalid(f"the JSON body nests deeper than {MAX_BODY_DEPTH} levels", "too_deep")
    return body, depth


def json_depth(value: Any, stop: int | None = None) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0, ``{}`` is 1). Iterative, so any depth
    is measured without recursion; with ``stop`` it returns as soon as that depth is reached."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        v, d = pop()
        if d > deepest:
            deepest = d
            if stop is not None and d >= stop:
                return d
        for c in v.values() if type(v) is dict else v:
            if type(c) is dict or type(c) is list:
                push((c, d + 1))
    return deepest


def _check_depth(item: Mapping[str, Any], limit: int) -> None:
    """Every field of an item nests at most ``limit`` levels, else the item is refused naming the field."""
    for key, v in item.items():
        if isinstance(v, dict | list) and json_depth(v, limit + 1) > limit:
            raise ItemError(str(key), f"{key} nests deeper than {limit} levels (objects and arrays); "
                            "flatten it or store less structure")


def _inflate(raw: bytes, wbits: int, cap: int) -> bytes:
    """Inflate at most ``cap`` bytes; a body that inflates past it is refused before it is all in memory."""
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(raw, cap + 1)
    except zlib.error as e:
        raise invalid(f"body is not valid compressed data: {e}", "malformed_body") from None
    if len(out) > cap or d.unconsumed_tail:
        raise too_large(f"decompressed request body exceeds the limit of {cap} bytes")
    if not d.eof:
        raise invalid("compressed body is truncated", "malformed_body")
    return out


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


# ---- items ----
def _opt_id(item: Mapping[str, Any], key: str) -> str | None:
    v = item.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ItemError(key, f"{key} must be a string")
    s = str(v)
    if "\x00" in s:
        raise ItemError(key, f"{key} must not contain NUL characters")
    if len(s) > 1024:
        raise ItemError(key, f"{key} is longer than 1024 characters")
    return s


def _opt_obj(item: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = item.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ItemError(key, f"{key} must be an object")
    return v


def _opt_time(item: Mapping[str, Any], key: str) -> datetime | None:
    v = item.get(key)
    if v is None or v == "":
        return None
    try:
        return parse_any(v, key)
    except Implausible as e:
        raise ItemError(key, e.reason) from None


def auto_message_id(item: Mapping[str, Any]) -> str:
    """A message without an id gets one derived from its content, so a retried identical call is one event."""
    digest = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "takt-auto-" + digest[:40]


def normalize(
    item: Any,
    kind: str | None,
    source: Source,
    received_at: datetime,
    limits: Limits,
    size: int | None = None,
    default_sent_at: datetime | None = None,
    depth_checked: bool = False,
) -> Event:
    """One Segment call to a canonical event. ``kind`` comes from the path; ``None`` reads ``type``.
    ``depth_checked``: the caller has made sure that no field nests deeper than ``limits.max_depth``."""
    if not isinstance(item, dict):
        raise ItemError("", "each event must be a JSON object")
    if not depth_checked:
        _check_depth(item, limits.max_depth)
    if size is None:
        size = len(orjson.dumps(item))
    if size > limits.max_event_bytes:
        raise ItemError("", f"event is {size} bytes; the limit is {limits.max_event_bytes}")
    if kind is None:
        t = item.get("type")
        if not isinstance(t, str) or t not in KIND_ALIASES:
            raise ItemError("type", f"type must be one of track, identify, page, screen, group, alias; got {t!r}")
        kind = KIND_ALIASES[t]

    mid = item.get("messageId")
    if mid is None or mid == "":
        message_id = auto_message_id(item)
    elif not isinstance(mid, str):
        raise ItemError("messageId", "messageId must be a string")
    elif len(mid) > MAX_MESSAGE_ID:
        raise ItemError("messageId", f"messageId is longer than {MAX_MESSAGE_ID} characters")
    elif "\x00" in mid:
        raise ItemError("messageId", "messageId must not contain NUL characters")
    else:
        message_id = mid

    user_id = _opt_id(item, "userId")
    anonymous_id = _opt_id(item, "anonymousId")
    properties = _opt_obj(item, "properties")
    traits = _opt_obj(item, "traits")
    context = _opt_obj(item, "context")
    integrations = _opt_obj(item, "integrations")
    original = _opt_time(item, "originalTimestamp")
    sent_at = _opt_time(item, "sentAt") or default_sent_at
    client_ts = _opt_time(item, "timestamp")

    event_name = None
    name = None
    group_id = None
    previous_id = None
    if kind == "track":
        ev = item.get("event")
        if not isinstance(ev, str) or not ev.strip():
            raise ItemError("event", "track needs a non-empty event name")
        if len(ev) > 512:
            raise ItemError("event", "event name is longer than 512 characters")
        if "\x00" in ev:
            raise ItemError("event", "event name must not contain NUL characters")
        event_name = ev
    elif kind in ("page", "screen"):
        nm = item.get("name")
        if nm is not None and not isinstance(nm, str):
            raise ItemError("name", "name must be a string")
        name = nm or None
    elif kind == "group":
        group_id = _opt_id(item, "groupId")
        if group_id is None:
            raise ItemError("groupId", "group needs a groupId")
    elif kind == "alias":
        previous_id = _opt_id(item, "previousId")
        if previous_id is None:
            raise ItemError("previousId", "alias needs a previousId")
        if user_id is None:
            raise ItemError("userId", "alias needs a userId")
    if user_id is None and anonymous_id is None:
        raise ItemError("userId", "every event needs a userId or an anonymousId")

    if "channel" in item and isinstance(item["channel"], str) and "channel" not in context:
        context = {**context, "channel": item["channel"]}
    asked = context.get("provenance") if isinstance(context.get("provenance"), str) else None
    provenance = lower_provenance(source.provenance, asked)
    # the trust is the key's, raised to "verified" only by a valid identity hash; the hash itself is a per-user
    # credential, never stored
    trust = source.trust
    if USER_HASH in context:
        claimed = context[USER_HASH]
        context = {k: v for k, v in context.items() if k != USER_HASH}
        try:
            trust = trust_of(source.trust, user_id, claimed, source.verification_secret)
        except VerificationError as e:
            raise ItemError(f"context.{USER_HASH}", str(e)) from None

    timestamp = event_time(client_ts, original, sent_at, received_at, limits.window)
    return Event(
        kind=kind,
        message_id=message_id,
        source=source.name,
        provenance=provenance,
        trust=trust,
        timestamp=timestamp,
        received_at=received_at,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=event_name,
        name=name,
        group_id=group_id,
        previous_id=previous_id,
        properties=properties,
        traits=traits,
        context=context,
        integrations=integrations,
        original_timestamp=original,
        sent_at=sent_at,
    )


def event_time(client_ts: datetime | None, original: datetime | None, sent_at: datetime | None,
               received_at: datetime, window: TimeWindow) -> datetime:
    """When the event happened, by Segment's rules, inside the plausible window.

    * ``timestamp``, declared by the sender (a server or a historical import), is kept as it is; outside the
      window the item is **refused** (the sender said when, and said something impossible).
    * Otherwise the time is derived from the device's clocks: ``receivedAt - (sentAt - originalTimestamp)``
      (Segment's clock-skew correction), or ``originalTimestamp`` alone. Outside the window — a device clock
      decades off, or a correction that overflows — it is **clamped** to ``receivedAt``, the best estimate
      there is. The device's readings themselves are stored as they came.
    * Without any of them, the event happened when it arrived.
    """
    if client_ts is not None:
        reason = window.problem(client_ts, received_at, "timestamp")
        if reason is not None:
            raise ItemError("timestamp", reason)
        return client_ts
    derived: datetime | None = None
    if original is not None and sent_at is not None:
        try:
            derived = received_at - (sent_at - original)
        except OverflowError:
            derived = None
    elif original is not None:
        derived = original
    if derived is None or not window.contains(derived, received_at):
        return received_at
    return derived


def events_from_body(
    body: Any, kind: str | None, source: Source, received_at: datetime, limits: Limits,
    body_depth: int | None = None,
) -> list[Event]:
    """A request body to events. ``kind`` is the path's call type, or ``"batch"``. ``body_depth``: the body's
    :func:`json_depth` when the caller measured it already (:func:`decode_body_depth`)."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object", "invalid_event")
    if kind != "batch":
        try:
            return [normalize(_strip(body), kind, source, received_at, limits)]
        except ItemError as e:
            raise TaktError(
                message=f"invalid {kind} event: {e.reason}", code="invalid_event", status=400,
                errors=[{"field": e.field, "reason": e.reason}],
            ) from None
    items = body.get("batch")
    if not isinstance(items, list):
        raise invalid("a batch needs a `batch` array of events", "invalid_batch")
    if not items:
        raise invalid("the batch is empty", "invalid_batch")
    if len(items) > limits.max_batch_events:
        raise too_large(f"batch has {len(items)} events; the limit is {limits.max_batch_events}")
    top_context = body.get("context")
    top_integrations = body.get("integrations")
    if top_context is not None and not isinstance(top_context, dict):
        raise invalid("batch context must be an object", "invalid_batch")
    if top_integrations is not None and not isinstance(top_integrations, dict):
        raise invalid("batch integrations must be an object", "invalid_batch")
    try:
        _check_depth({k: body[k] for k in ("context", "integrations") if k in body}, limits.max_depth)
    except ItemError as e:
        raise invalid(f"batch {e.reason}", "invalid_batch") from None
    # Batching clients (analytics-python, analytics.js) send one `sentAt` for the whole batch.
    # (Not merged into the items, so it never changes the id derived for an item without a messageId.)
    try:
        batch_sent_at = _opt_time(body, "sentAt")
    except ItemError as e:
        raise invalid(f"batch {e.reason}", "invalid_batch") from None
    # One walk of the whole body instead of one per item: in a body that nests at most ``max_depth + 3`` levels
    # (the body, its batch array, an item, then the item's field) no item field nests deeper than the limit.
    if body_depth is None:
        body_depth = json_depth(body, limits.max_depth + 4)
    shallow = body_depth <= limits.max_depth + 3
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, dict):
                if not shallow:
                    _check_depth(item, limits.max_depth)
                size = len(orjson.dumps(item))
                item = _strip(item)
                if top_context and isinstance(item.get("context", {}), dict):
                    item["context"] = {**top_context, **(item.get("context") or {})}
                if top_integrations and isinstance(item.get("integrations", {}), dict):
                    item["integrations"] = {**top_integrations, **(item.get("integrations") or {})}
                events.append(normalize(item, None, source, received_at, limits, size=size,
                                        default_sent_at=batch_sent_at, depth_checked=True))
            else:
                normalize(item, None, source, received_at, limits)
        except ItemError as e:
            errors.append({"index": i, "field": e.field, "reason": e.reason})
    if errors:
        raise TaktError(
            message=f"{len(errors)} of {len(items)} events in the batch are invalid; nothing was stored",
            code="invalid_batch", status=400, errors=errors,
        )
    return events


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    if "writeKey" in item:
        item = {k: v for k, v in item.items() if k != "writeKey"}
    return item
