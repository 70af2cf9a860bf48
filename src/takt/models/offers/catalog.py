"""The offer catalog: what an offer is, how it is validated, and how a catalog file is read.

An offer (see ``docs/offers.md``)::

    id            "nyc-city-break"            letters, digits and . _ : - (1 to 128 characters)
    title         "3 nights in New York"
    interests     ["destination:new-york"]    interest keys (family:value) the offer is about
    categories    ["guidebooks"]              product categories: the interest keys category:<slug>
    eligibility   'trait.country = "DE"'      a segment expression the person must match (optional)
    value         420.0                       what a conversion is worth (>= 0)
    valid_from    2026-11-01T00:00:00Z        optional; shown from this time on
    valid_until   2026-12-31T23:59:59Z        optional; not after this time
    channels      ["email", "in_app"]         channels it may go out on (default: any)
    placements    ["home_hero"]               inbound slots it may fill (default: any)
    intents       ["marketing"]               message purposes it may be sent with (default: marketing)
    products      ["sku-123"]                 not offered to someone who already bought one of these
    cap           {"max": 3, "days": 30}      sent at most ``max`` times per person in ``days`` days
    model         "purchase_30d:category:x"   propensity score to use (default: none, see rank.py)

Validation collects every problem with the field that has it; an eligibility expression that does not parse
gives the segment language's positioned error (line, column, hint). Nothing here reads the clock or storage.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from takt.errors import TaktError
from takt.events.model import parse_time
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES
from takt.profiles.interests import slug
from takt.segments import SegmentError, parse
from takt.segments import ast as seg_ast

OFFER_FIELDS = ("id", "title", "description", "interests", "categories", "eligibility", "value", "valid_from",
                "valid_until", "channels", "placements", "intents", "products", "cap", "model")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_PLACEMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
MAX_OFFERS = 10_000
MAX_LIST = 200


@dataclass(frozen=True)
class Cap:
    """At most ``max`` sends of the offer to one person within ``days`` days (outbound only)."""

    max: int
    days: float


@dataclass(frozen=True)
class Offer:
    id: str
    title: str
    value: float
    description: str | None = None
    interests: tuple[str, ...] = ()
    eligibility: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    channels: tuple[str, ...] = ()
    placements: tuple[str, ...] = ()
    intents: tuple[str, ...] = ("marketing",)
    products: tuple[str, ...] = ()
    cap: Cap | None = None
    model: str | None = None
    version: int = 0
    updated_at: datetime | None = None
    condition: seg_ast.Condition | None = field(default=None, compare=False, repr=False)
    needs_events: bool = field(default=False, compare=False, repr=False)

    def definition(self) -> dict[str, Any]:
        """The offer as it is written in a catalog (what :func:`validate_offer` reads back)."""
        out: dict[str, Any] = {"id": self.id, "title": self.title, "value": self.value}
        if self.description is not None:
            out["description"] = self.description
        if self.interests:
            out["interests"] = list(self.interests)
        if self.eligibility is not None:
            out["eligibility"] = self.eligibility
        if self.valid_from is not None:
            out["valid_from"] = _iso(self.valid_from)
        if self.valid_until is not None:
            out["valid_until"] = _iso(self.valid_until)
        if self.channels:
            out["channels"] = list(self.channels)
        if self.placements:
            out["placements"] = list(self.placements)
        if self.intents != ("marketing",):
            out["intents"] = list(self.intents)
        if self.products:
            out["products"] = list(self.products)
        if self.cap is not None:
            out["cap"] = {"max": self.cap.max, "days": self.cap.days}
        if self.model is not None:
            out["model"] = self.model
        return out

    def to_json(self) -> dict[str, Any]:
        return dict(self._json)

    @cached_property
    def _json(self) -> dict[str, Any]:
        return {**self.definition(), "version": self.version,
                "updated_at": _iso(self.updated_at) if self.updated_at else None}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _needs_events(node: seg_ast.Condition) -> bool:
    """Whether evaluating ``node`` reads the person's events (aggregates, exists, within/before/after)."""
    return any(isinstance(seg_ast.operand_of(n), seg_ast.Aggregate) for n in seg_ast.walk(node))


# ---- validation ----
class _Errors:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.items: list[dict[str, Any]] = []

    def add(self, name: str, reason: str, **extra: Any) -> None:
        self.items.append({"field": f"{self.prefix}{name}", "reason": reason, **extra})


def _text(raw: Mapping[str, Any], name: str, errs: _Errors, *, required: bool = False,
          limit: int = 1024) -> str | None:
    v = raw.get(name)
    if v is None or (isinstance(v, str) and not v.strip() and not required):
        if required:
            errs.add(name, "is required")
        return None
    if not isinstance(v, str) or not v.strip():
        errs.add(name, "must be a non-empty string")
        return None
    if len(v) > limit:
        errs.add(name, f"must be at most {limit} characters")
        return None
    return v.strip()


def _strings(raw: Mapping[str, Any], name: str, errs: _Errors) -> list[str]:
    v = raw.get(name)
    if v is None:
        return []
    if isinstance(v, str):  # a CSV cell or a single value: split on | or ,
        v = [p for p in re.split(r"[|,]", v) if p.strip()]
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        errs.add(name, "must be a list of non-empty strings")
        return []
    if len(v) > MAX_LIST:
        errs.add(name, f"must have at most {MAX_LIST} items")
        return []
    out: list[str] = []
    for x in v:
        if x.strip() not in out:
            out.append(x.strip())
    return out


def _time(raw: Mapping[str, Any], name: str, errs: _Errors) -> datetime | None:
    v = raw.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else None
    try:
        if not isinstance(v, str):
            raise ValueError
        return parse_time(v)
    except ValueError:
        errs.add(name, f"must be an ISO 8601 time such as 2026-12-01T00:00:00Z, got {str(v)[:60]!r}")
        return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _interest_key(text: str) -> str | None:
    fam, sep, value = text.partition(":")
    if not sep or not slug(fam) or not slug(value):
        return None
    return f"{slug(fam)}:{slug(value)}"


def validate_offer(raw: Any, *, where: str = "") -> Offer:
    """An :class:`Offer` from its JSON form, or a :class:`TaktError` (code ``invalid_offer``) naming every
    problem. ``where`` prefixes field names (``offers[3].``) when the offer comes from a list."""
    errs = _Errors(where)
    if not isinstance(raw, Mapping):
        raise TaktError(f"{where or 'an offer '}must be an object with id, title and value", code="invalid_offer",
                        errors=[{"field": where.rstrip('.') or "offer", "reason": "must be an object"}])
    for k in sorted(set(raw) - set(OFFER_FIELDS), key=str):
        errs.add(str(k), f"unknown field (expected {', '.join(OFFER_FIELDS)})")
    offer_id = _text(raw, "id", errs, required=True, limit=128)
    if offer_id is not None and not _ID.match(offer_id):
        errs.add("id", "must start with a letter or digit and hold only letters, digits and . _ : -")
        offer_id = None
    title = _text(raw, "title", errs, required=True, limit=512)
    description = _text(raw, "description", errs, limit=4096)
    value: float | None = None
    if raw.get("value") is None or raw.get("value") == "":
        errs.add("value", "is required: what a conversion is worth, a number >= 0")
    else:
        value = _number(raw.get("value"))
        if value is None or value < 0:
            errs.add("value", f"must be a number >= 0, got {str(raw.get('value'))[:40]!r}")
            value = None
    interests: list[str] = []
    for item in _strings(raw, "interests", errs):
        key = _interest_key(item)
        if key is None:
            errs.add("interests", f"{item!r} is not an interest key family:value, e.g. destination:new-york")
        elif key not in interests:
            interests.append(key)
    for item in _strings(raw, "categories", errs):
        s = slug(item.partition(":")[2] if item.startswith("category:") else item)
        if not s:
            errs.add("categories", f"{item!r} is not a category name")
        elif f"category:{s}" not in interests:
            interests.append(f"category:{s}")
    eligibility = _text(raw, "eligibility", errs, limit=8192)
    condition: seg_ast.Condition | None = None
    if eligibility is not None:
        try:
            condition = parse(eligibility)
        except SegmentError as e:
            detail = dict(e.errors[0]) if e.errors else {"reason": e.reason}
            reason = detail.pop("reason", e.reason)
            detail.pop("field", None)
            errs.add("eligibility", f"{reason}\n{e.message}", **detail)
        if condition is not None and any(isinstance(n, seg_ast.InSegment) for n in seg_ast.walk(condition)):
            errs.add("eligibility", "in segment(...) cannot be used in an offer's eligibility; write the "
                     "segment's condition itself")
            condition = None
    valid_from = _time(raw, "valid_from", errs)
    valid_until = _time(raw, "valid_until", errs)
    if valid_from and valid_until and valid_until <= valid_from:
        errs.add("valid_until", "must be later than valid_from")
    channels = _strings(raw, "channels", errs)
    for ch in channels:
        if ch not in CHANNELS:
            errs.add("channels", f"unknown channel {ch!r} (expected {', '.join(CHANNELS)})")
    placements = _strings(raw, "placements", errs)
    for p in placements:
        if not _PLACEMENT.match(p):
            errs.add("placements", f"{p!r} is not a placement name (letters, digits and . _ : / -)")
    intents = _strings(raw, "intents", errs) or ["marketing"]
    for i in intents:
        if i not in MESSAGE_PURPOSES:
            errs.add("intents", f"unknown intent {i!r} (expected {', '.join(MESSAGE_PURPOSES)})")
    products = _strings(raw, "products", errs)
    cap: Cap | None = None
    rc = raw.get("cap")
    if rc is not None and rc != "":
        if isinstance(rc, str):  # CSV: "3/30" = 3 per 30 days
            a, _, b = rc.partition("/")
            rc = {"max": a, "days": b}
        if not isinstance(rc, Mapping) or set(rc) - {"max", "days"}:
            errs.add("cap", 'must be {"max": N, "days": D} (at most N sends per person in D days)')
        else:
            mx, days = _number(rc.get("max")), _number(rc.get("days"))
            if mx is None or mx < 1 or mx != int(mx):
                errs.add("cap.max", "must be a whole number >= 1")
            elif days is None or days <= 0:
                errs.add("cap.days", "must be a number of days > 0")
            else:
                cap = Cap(int(mx), days)
    model = _text(raw, "model", errs, limit=256)
    if errs.items:
        name = f"offer {offer_id!r}" if offer_id else "the offer"
        n = len(errs.items)
        raise TaktError(f"{name} is invalid ({n} problem{'s' if n > 1 else ''})", code="invalid_offer",
                        errors=errs.items)
    assert offer_id is not None and title is not None and value is not None
    return Offer(id=offer_id, title=title, value=value, description=description, interests=tuple(interests),
                 eligibility=eligibility, valid_from=valid_from, valid_until=valid_until,
                 channels=tuple(channels), placements=tuple(placements), intents=tuple(intents),
                 products=tuple(products), cap=cap, model=model, condition=condition,
                 needs_events=condition is not None and _needs_events(condition))


def validate_catalog(items: Any) -> list[Offer]:
    """Every offer of a catalog, or one :class:`TaktError` listing the problems of all of them."""
    if isinstance(items, Mapping) and "offers" in items:
        items = items["offers"]
    if not isinstance(items, list):
        raise TaktError('a catalog is a list of offers (or an object {"offers": [...]})', code="invalid_offer")
    if not items:
        raise TaktError("the catalog holds no offers", code="invalid_offer")
    if len(items) > MAX_OFFERS:
        raise TaktError(f"a catalog holds at most {MAX_OFFERS} offers, got {len(items)}", code="invalid_offer")
    offers: list[Offer] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(items):
        try:
            o = validate_offer(raw, where=f"offers[{i}].")
        except TaktError as e:
            errors.extend({"index": i, **d} for d in (e.errors or [{"reason": e.message}]))
            continue
        if o.id in seen:
            errors.append({"index": i, "field": f"offers[{i}].id",
                           "reason": f"duplicate id {o.id!r} (also offers[{seen[o.id]}])"})
            continue
        seen[o.id] = i
        offers.append(o)
    if errors:
        bad = len({e["index"] for e in errors})
        raise TaktError(f"the catalog is invalid: {bad} of {len(items)} offer{'s' if len(items) > 1 else ''} "
                        "with problems; nothing was stored", code="invalid_offer", errors=errors)
    return offers


# ---- files ----
def read_catalog(path: str | Path) -> list[Offer]:
    """Offers from a YAML (``.yaml``/``.yml``), JSON (``.json``) or CSV (``.csv``) file, validated."""
    p = Path(path)
    if not p.exists():
        raise TaktError(f"offer file {str(p)!r} does not exist", code="not_found", status=404)
    if p.is_dir():
        raise TaktError(f"offer file {str(p)!r} is a folder", code="invalid_offer")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TaktError(f"{str(p)!r} is not UTF-8 text", code="invalid_offer") from None
    return validate_catalog(parse_catalog_text(text, p.suffix.lower()))


def parse_catalog_text(text: str, suffix: str) -> Any:
    """The raw items of a catalog in one of the file formats (``.yaml``, ``.yml``, ``.json``, ``.csv``)."""
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise TaktError(f"the offer file is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                            code="invalid_offer") from None
    if suffix in (".yaml", ".yml"):
        import yaml  # PyYAML (a dependency)

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise TaktError(f"the offer file is not valid YAML{where}: {getattr(e, 'problem', None) or e}",
                            code="invalid_offer") from None
    if suffix == ".csv":
        return _csv_items(text)
    raise TaktError(f"unknown offer file type {suffix or '(none)'!r}: use .yaml, .yml, .json or .csv",
                    code="invalid_offer")


def _csv_items(text: str) -> list[dict[str, Any]]:
    """CSV rows: list columns separated by ``|``; ``cap`` as ``MAX/DAYS``; empty cells are absent."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise TaktError("the offer CSV file has no header row", code="invalid_offer")
    items = []
    for row in reader:
        items.append({k.strip(): v for k, v in row.items() if k is not None and v is not None and v.strip()})
    return items


def by_id(offers: Sequence[Offer]) -> dict[str, Offer]:
    return {o.id: o for o in offers}
