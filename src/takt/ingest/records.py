"""Imported CRM and commerce records: one row of a file becomes one ``record`` event in the log.

Four record types (customers, orders, service cases, the product catalog) each have a :class:`RecordSpec`:
its fields, the default column each is read from, which are required, which field is the row key and which
gives the event's time. A :data:`Mapping` (field → column) overrides the defaults.

Every row passes a data-quality check before it becomes an event. A row with problems (a missing required
field, an invalid email or phone number, an impossible date or amount, a repeated row key) is **rejected**:
written to the rejects file with its row number and reasons, never silently dropped. Good rows are appended
in batches through :meth:`EventLog.append`; their message ids derive from the record type, the row key and the
row's content, so importing the same file again stores nothing new (a changed row is stored as a new version).

The ``properties`` of a record event, by record type (the profile fold reads exactly these keys):

* customer: ``record_type, row_key, identifiers{crm_id,email,phone}, traits{…},
  contact_points_customer_given, postal_address{…}`` (the address only when the row has one)
* order: ``record_type, row_key, identifiers, order_id, revenue, currency, products[{product_id, category,
  price, quantity}], categories, store, status``
* case: ``record_type, row_key, identifiers, case_id, status (open|closed), subject, channel, product_id,
  in_repair``
* product: ``record_type, row_key, product_id, name, category, price, interests`` (no identifiers)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

import orjson
import phonenumbers

from takt.errors import TaktError
from takt.events.model import PROVENANCE_RANK, Event, register_kind
from takt.ingest.readers import UNREADABLE, RowReader, file_error, open_rows
from takt.ingest.window import TimeWindow
from takt.log.base import EventLog

RECORD_KIND = register_kind("record", "imported CRM/commerce record")

RECORD_TYPES = ("customer", "order", "case", "product")
PLURALS = {"customers": "customer", "orders": "order", "cases": "case", "products": "product"}

# Reasons a row is rejected (the rejects file and the summary use these codes).
MISSING = "missing_field"
BAD_EMAIL = "invalid_email"
BAD_PHONE = "invalid_phone"
BAD_DATE = "invalid_date"
BAD_AMOUNT = "invalid_amount"
BAD_VALUE = "invalid_value"
DUPLICATE = "duplicate"
UNREADABLE_ROW = "unreadable_row"
REASONS = (MISSING, BAD_EMAIL, BAD_PHONE, BAD_DATE, BAD_AMOUNT, BAD_VALUE, DUPLICATE, UNREADABLE_ROW)

EARLIEST_BIRTHDAY = datetime(1900, 1, 1, tzinfo=UTC)
"""A date of birth is not an event time: it is checked against this and ``now``, not the time window."""

Mapping_ = dict[str, str]


# ---- specs ----
@dataclass(frozen=True)
class RecordSpec:
    record_type: str
    fields: tuple[str, ...]
    """Every field this type reads; the default column of each is its own name (``row_key``: see below)."""
    row_key_column: str
    """The default column of the ``row_key`` field: the row's natural key."""
    time_field: str | None
    """The field whose date becomes the event's timestamp (else the import's ``now``)."""
    required: tuple[str, ...]
    """Fields every row needs."""
    one_of: tuple[str, ...] = ()
    """At least one of these fields is needed (the identifiers)."""

    def default_mapping(self) -> Mapping_:
        return {f: (self.row_key_column if f == "row_key" else f) for f in self.fields}


CUSTOMER_TRAITS = ("first_name", "last_name", "country", "city", "birthday", "gender", "language",
                   "loyalty_tier", "created_at")
ADDRESS_FIELDS = ("street", "postal_code", "address_city", "address_country")

SPECS: dict[str, RecordSpec] = {
    "customer": RecordSpec(
        "customer",
        ("row_key", "crm_id", "email", "phone", *CUSTOMER_TRAITS, *ADDRESS_FIELDS, "updated_at"),
        row_key_column="crm_id", time_field="updated_at", required=("row_key",),
        one_of=("crm_id", "email", "phone"),
    ),
    "order": RecordSpec(
        "order",
        ("row_key", "order_id", "crm_id", "email", "revenue", "currency", "products", "product_id", "category",
         "price", "quantity", "store", "status", "ordered_at"),
        row_key_column="order_id", time_field="ordered_at", required=("row_key", "order_id", "revenue"),
        one_of=("crm_id", "email"),
    ),
    "case": RecordSpec(
        "case",
        ("row_key", "case_id", "crm_id", "email", "status", "subject", "channel", "product_id", "in_repair",
         "opened_at"),
        row_key_column="case_id", time_field="opened_at", required=("row_key", "case_id", "status"),
        one_of=("crm_id", "email"),
    ),
    "product": RecordSpec(
        "product",
        ("row_key", "product_id", "name", "category", "price", "interests", "updated_at"),
        row_key_column="product_id", time_field="updated_at", required=("row_key", "product_id", "name"),
    ),
}


def spec_for(record_type: str) -> RecordSpec:
    rt = PLURALS.get(record_type, record_type)
    if rt not in SPECS:
        raise TaktError(f"unknown record type {record_type!r}; use one of {', '.join(RECORD_TYPES)}",
                        code="usage")
    return SPECS[rt]


# ---- mapping ----
def resolve_mapping(spec: RecordSpec, overrides: Mapping[str, str] | None = None) -> Mapping_:
    """The default columns with ``overrides`` (field → column) applied; an unknown field is an error."""
    mapping = spec.default_mapping()
    for fld, column in (overrides or {}).items():
        if fld not in mapping:
            raise TaktError(
                f"unknown {spec.record_type} field {fld!r} in the column mapping; fields are: "
                + ", ".join(spec.fields), code="invalid_mapping",
            )
        if not isinstance(column, str) or not column.strip():
            raise TaktError(f"the column for field {fld!r} must be a non-empty string", code="invalid_mapping")
        mapping[fld] = column.strip()
    return mapping


def parse_map_flags(flags: Iterable[str]) -> Mapping_:
    """``--map field=column`` flags to a mapping."""
    out: Mapping_ = {}
    for flag in flags:
        fld, sep, column = flag.partition("=")
        if not sep or not fld.strip() or not column.strip():
            raise TaktError(f"--map expects FIELD=COLUMN, got {flag!r}", code="invalid_mapping")
        out[fld.strip()] = column.strip()
    return out


def load_mapping_file(path: str | Path, record_type: str) -> Mapping_:
    """A TOML or JSON mapping file: either flat ``field = "column"`` pairs, or one table per record type
    (``[customer]``/``[customers]``) of them."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise file_error(p, f"cannot read the mapping file: {e.strerror}") from None
    try:
        data: Any = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise file_error(p, f"not a valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'} mapping: {e}") from None
    if not isinstance(data, dict):
        raise file_error(p, "a mapping file must hold a table of field = column pairs")
    rt = PLURALS.get(record_type, record_type)
    plural = next((k for k, v in PLURALS.items() if v == rt), rt)
    for name in (rt, plural):
        if isinstance(data.get(name), dict):
            data = data[name]
            break
    else:
        tables = [k for k, v in data.items() if isinstance(v, dict)]
        if tables:
            raise file_error(p, f"no table for {plural} (has: {', '.join(tables)})")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise file_error(p, f"columns must be strings; not for: {', '.join(bad)}")
    return dict(data)


# ---- data quality ----
# Letters and digits of any script are allowed (internationalized addresses, IDN domains).
_EMAIL_LOCAL = re.compile(r"^[\w!#$%&'*+/=?^`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^[^\W_](?:[\w-]{0,61}[^\W_])?$")


def normalize_email(value: str) -> str | None:
    """The email lower-cased and trimmed if its syntax is plausible (local@domain.tld), else ``None``."""
    s = value.strip()
    if len(s) > 254 or s.count("@") != 1:
        return None
    local, domain = s.split("@")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) and "_" not in label for label in labels):
        return None
    if not labels[-1].isalpha() or len(labels[-1]) < 2:
        return None
    return s.lower()


def normalize_phone(value: str, default_region: str | None) -> str | None:
    """The number in E.164 if ``phonenumbers`` judges it valid (numbers without ``+`` need a region)."""
    try:
        num = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


_DATE_FORMATS = ("%d.%m.%Y", "%Y/%m/%d", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S")


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date or time (or ``DD.MM.YYYY``); a value without a zone is UTC. ``None`` if unparseable."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, date):
        t = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        s = value.strip()
        try:
            t = datetime.fromisoformat(s)
        except ValueError:
            for fmt in _DATE_FORMATS:
                try:
                    t = datetime.strptime(s, fmt)
                    break
                except ValueError:
                    continue
            else:
                return None
    else:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    try:
        return t.astimezone(UTC)
    except OverflowError:  # year 9999 at a negative offset, year 1 at a positive one: no such UTC time
        return None


def parse_amount(value: Any) -> float | None:
    """A finite number from a number or a string (``12.50``, ``12,50``); ``None`` if not numeric."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        f = float(value)
    elif isinstance(value, str):
        s = value.strip().replace(" ", "")
        if "," in s and "." not in s:
            s = s.replace(",", ".")
        try:
            f = float(Decimal(s))
        except (InvalidOperation, ValueError):
            return None
    else:
        return None
    return f if math.isfinite(f) else None


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass(frozen=True)
class Problem:
    reason: str
    field: str
    message: str


class _Cells:
    """One row seen through the mapping; each accessor checks its value and records problems."""

    def __init__(self, row: Mapping[str, Any], mapping: Mapping_, now: datetime, default_region: str | None,
                 window: TimeWindow | None = None):
        self.row = row
        self.mapping = mapping
        self.now = now
        self.window = window or TimeWindow()
        self.region = default_region
        self.problems: list[Problem] = []

    def raw(self, fld: str) -> Any:
        v = self.row.get(self.mapping[fld])
        if v is None:
            return None
        if isinstance(v, str):
            v = v.strip()
            return v or None
        if isinstance(v, float) and math.isnan(v):
            return None
        return v

    def problem(self, reason: str, fld: str, message: str) -> None:
        self.problems.append(Problem(reason, fld, message))

    def missing(self, fld: str) -> None:
        self.problem(MISSING, fld, f"{fld} (column {self.mapping[fld]!r}) is required")

    def text(self, fld: str, required: bool = False) -> str | None:
        v = self.raw(fld)
        if v is None:
            if required:
                self.missing(fld)
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, dict | list):
            self.problem(BAD_VALUE, fld, f"{fld} must be a single value")
            return None
        return str(v)

    def email(self, fld: str = "email") -> str | None:
        v = self.text(fld)
        if v is None:
            return None
        e = normalize_email(v)
        if e is None:
            self.problem(BAD_EMAIL, fld, f"{fld} {v[:80]!r} is not a valid email address")
        return e

    def phone(self, fld: str = "phone") -> str | None:
        v = self.text(fld)
        if v is None:
            return None
        p = normalize_phone(v, self.region)
        if p is None:
            hint = "" if self.region or v.strip().startswith("+") else " (no country code; try --default-region)"
            self.problem(BAD_PHONE, fld, f"{fld} {v[:40]!r} is not a valid phone number{hint}")
        return p

    def time(self, fld: str, required: bool = False, window: TimeWindow | None = None) -> datetime | None:
        """A date or time inside the plausible window (``ingest.earliest_time`` to ``now`` plus
        ``ingest.max_future_hours``): outside it the row is rejected with the reason."""
        v = self.raw(fld)
        if v is None:
            if required:
                self.missing(fld)
            return None
        t = parse_datetime(v)
        if t is None:
            self.problem(BAD_DATE, fld, f"{fld} {str(v)[:40]!r} is not a date")
            return None
        reason = (window or self.window).problem(t, self.now, fld)
        if reason is not None:
            self.problem(BAD_DATE, fld, reason)
            return None
        return t

    def day(self, fld: str) -> str | None:
        t = self.time(fld)
        return t.date().isoformat() if t is not None else None

    def birthday(self, fld: str) -> str | None:
        """A date of birth: from 1900 to today (older customers than the CRM window are customers too)."""
        t = self.time(fld, window=TimeWindow(EARLIEST_BIRTHDAY, timedelta(days=1)))
        return t.date().isoformat() if t is not None else None

    def amount(self, fld: str, required: bool = False, value: Any = None) -> float | None:
        v = self.raw(fld) if value is None else value
        if v is None:
            if required:
                self.missing(fld)
            return None
        a = parse_amount(v)
        if a is None:
            self.problem(BAD_AMOUNT, fld, f"{fld} {str(v)[:40]!r} is not a number")
        elif a < 0:
            self.problem(BAD_AMOUNT, fld, f"{fld} {a} is negative")
            a = None
        return a

    def quantity(self, fld: str, value: Any) -> int | None:
        a = parse_amount(value)
        if a is None or not a.is_integer() or a < 1:
            self.problem(BAD_VALUE, fld, f"{fld} {str(value)[:40]!r} is not a positive whole number")
            return None
        return int(a)

    def flag(self, fld: str) -> bool:
        v = self.raw(fld)
        if v is None:
            return False
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s not in _FALSE:
            self.problem(BAD_VALUE, fld, f"{fld} {s[:20]!r} is not true or false")
        return False

    def strings(self, fld: str) -> list[str]:
        """A list from a list value, a JSON array, or ``;``/``|``-separated text."""
        v = self.raw(fld)
        if v is None:
            return []
        if isinstance(v, str) and v.startswith("["):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                self.problem(BAD_VALUE, fld, f"{fld} is not a valid JSON list")
                return []
        if isinstance(v, list | tuple):
            return [str(x).strip() for x in v if x is not None and str(x).strip()]
        return [s.strip() for s in re.split(r"[;|]", str(v)) if s.strip()]

    def identifiers(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        crm = self.text("crm_id") if "crm_id" in self.mapping else None
        email = self.email("email") if "email" in self.mapping else None
        phone = self.phone("phone") if "phone" in self.mapping else None
        for k, v in (("crm_id", crm), ("email", email), ("phone", phone)):
            if v is not None:
                ids[k] = v
        return ids


# ---- builders: one row to properties ----
@dataclass(frozen=True)
class BuildContext:
    now: datetime
    default_region: str | None = None
    customer_given: bool = True
    window: TimeWindow = field(default_factory=TimeWindow)


Built = tuple[dict[str, Any], datetime | None]


def _need_identifier(c: _Cells, ids: dict[str, str], spec: RecordSpec) -> None:
    had_bad = any(p.field in spec.one_of for p in c.problems)
    if not ids and not had_bad:
        c.problem(MISSING, "identifiers", "needs an identifier: one of " + ", ".join(
            f"{f} (column {c.mapping[f]!r})" for f in spec.one_of))


def build_customer(c: _Cells, ctx: BuildContext) -> Built:
    spec = SPECS["customer"]
    row_key = c.text("row_key", required=True)
    ids = c.identifiers()
    _need_identifier(c, ids, spec)
    traits: dict[str, Any] = {}
    for f in CUSTOMER_TRAITS:
        v = c.birthday(f) if f == "birthday" else c.day(f) if f == "created_at" else c.text(f)
        if v is not None:
            traits[f] = v
    address: dict[str, str] = {}
    for f, key in (("street", "street"), ("postal_code", "postal_code"), ("address_city", "city"),
                   ("address_country", "country")):
        v = c.text(f)
        if v is not None:
            address[key] = v
    if address:
        address.setdefault("city", traits.get("city", ""))
        address.setdefault("country", traits.get("country", ""))
        address = {k: v for k, v in address.items() if v}
    ts = c.time("updated_at")
    props: dict[str, Any] = {
        "record_type": "customer", "row_key": row_key, "identifiers": ids, "traits": traits,
        "contact_points_customer_given": ctx.customer_given,
    }
    if address and ("street" in address or "postal_code" in address):
        props["postal_address"] = address
    return props, ts


def _products(c: _Cells) -> list[dict[str, Any]]:
    raw = c.raw("products")
    items: list[Any]
    if raw is None:
        pid = c.text("product_id")
        if pid is None:
            return []
        items = [{"product_id": pid, "category": c.raw("category"), "price": c.raw("price"),
                  "quantity": c.raw("quantity")}]
    else:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                c.problem(BAD_VALUE, "products", "products is not a valid JSON list")
                return []
        if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
            c.problem(BAD_VALUE, "products", "products must be a list of objects")
            return []
        items = raw
    out: list[dict[str, Any]] = []
    for i, it in enumerate(items):
        pid = it.get("product_id")
        if pid is None or str(pid).strip() == "":
            c.problem(MISSING, "products", f"products[{i}] has no product_id")
            continue
        price = c.amount(f"products[{i}].price", value=it.get("price")) if it.get("price") not in (None, "") else None
        qty_raw = it.get("quantity")
        qty = 1 if qty_raw in (None, "") else c.quantity(f"products[{i}].quantity", qty_raw)
        cat = it.get("category")
        out.append({"product_id": str(pid).strip(), "category": str(cat).strip() if cat not in (None, "") else None,
                    "price": price, "quantity": qty})
    return out


def build_order(c: _Cells, ctx: BuildContext) -> Built:
    spec = SPECS["order"]
    row_key = c.text("row_key", required=True)
    ids = c.identifiers()
    _need_identifier(c, ids, spec)
    order_id = c.text("order_id", required=True)
    revenue = c.amount("revenue", required=True)
    products = _products(c)
    categories = sorted({p["category"] for p in products if p["category"]})
    ts = c.time("ordered_at")
    return {
        "record_type": "order", "row_key": row_key, "identifiers": ids, "order_id": order_id,
        "revenue": revenue, "currency": (c.text("currency") or "EUR").upper(), "products": products,
        "categories": categories, "store": c.text("store"), "status": (c.text("status") or "completed").lower(),
    }, ts


def build_case(c: _Cells, ctx: BuildContext) -> Built:
    spec = SPECS["case"]
    row_key = c.text("row_key", required=True)
    ids = c.identifiers()
    _need_identifier(c, ids, spec)
    case_id = c.text("case_id", required=True)
    status = c.text("status", required=True)
    if status is not None:
        status = status.lower()
        if status not in ("open", "closed"):
            c.problem(BAD_VALUE, "status", f"status {status[:20]!r} must be open or closed")
    ts = c.time("opened_at")
    return {
        "record_type": "case", "row_key": row_key, "identifiers": ids, "case_id": case_id, "status": status,
        "subject": c.text("subject"), "channel": c.text("channel"), "product_id": c.text("product_id"),
        "in_repair": c.flag("in_repair"),
    }, ts


def build_product(c: _Cells, ctx: BuildContext) -> Built:
    row_key = c.text("row_key", required=True)
    product_id = c.text("product_id", required=True)
    name = c.text("name", required=True)
    price = c.amount("price")
    ts = c.time("updated_at")
    return {
        "record_type": "product", "row_key": row_key, "product_id": product_id, "name": name,
        "category": c.text("category"), "price": price, "interests": c.strings("interests"),
    }, ts


BUILDERS: dict[str, Callable[[_Cells, BuildContext], Built]] = {
    "customer": build_customer, "order": build_order, "case": build_case, "product": build_product,
}


def message_id(record_type: str, row_key: str, properties: Mapping[str, Any]) -> str:
    """Deterministic from the record type, the row key and the row's content (≤ 100 characters)."""
    content = orjson.dumps(properties, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"record:{record_type}:{row_key}\x00".encode() + content).hexdigest()
    return f"record:{record_type}:{digest[:48]}"


@dataclass(frozen=True)
class RowResult:
    row: int
    event: Event | None
    problems: tuple[Problem, ...]
    row_key: str | None


def build_row(spec: RecordSpec, row_number: int, row: Mapping[str, Any], mapping: Mapping_, ctx: BuildContext,
              source: str, provenance: str) -> RowResult:
    """One row to an event, or to the problems that reject it."""
    if UNREADABLE in row:
        return RowResult(row_number, None, (Problem(UNREADABLE_ROW, "", str(row[UNREADABLE])),), None)
    c = _Cells(row, mapping, ctx.now, ctx.default_region, ctx.window)
    if "_extra_values" in row:
        c.problem(BAD_VALUE, "", f"the row has {len(row['_extra_values'])} more values than the header has columns")
    props, ts = BUILDERS[spec.record_type](c, ctx)
    row_key = props.get("row_key")
    if c.problems:
        return RowResult(row_number, None, tuple(c.problems), row_key)
    assert row_key is not None
    ev = Event(
        kind=RECORD_KIND, message_id=message_id(spec.record_type, row_key, props), source=source,
        provenance=provenance, timestamp=ts or ctx.now, received_at=ctx.now, properties=props,
        context={"library": {"name": "takt-import"}},
    )
    return RowResult(row_number, ev, (), row_key)


# ---- rejects ----
class RejectsWriter:
    """Rejected rows with their row number and reasons: CSV (``.csv``) or JSON lines (anything else)."""

    def __init__(self, path: Path, columns: list[str] | None):
        self.path = path
        self.count = 0
        self.csv = path.suffix.lower() == ".csv"
        self.columns = list(columns or [])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f: TextIO = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as e:
            raise file_error(path, f"cannot write the rejects file: {e.strerror}") from None
        self._w: Any = None
        if self.csv:
            self._w = csv.writer(self._f)
            self._w.writerow(["row", "reasons", "details", *[_neutral(c) for c in self.columns]])

    def write(self, row_number: int, problems: Iterable[Problem], row: Mapping[str, Any]) -> None:
        problems = list(problems)
        reasons = sorted({p.reason for p in problems}, key=REASONS.index)
        details = [p.message for p in problems]
        self.count += 1
        if self.csv:
            cols = self.columns or [k for k in row if not k.startswith("_")]
            if not self.columns:
                self.columns = cols
            self._w.writerow([row_number, ";".join(reasons), _neutral("; ".join(details)),
                              *[_neutral(_cell(row.get(k))) for k in cols]])
        else:
            rec = {"row": row_number, "reasons": reasons, "details": details,
                   "data": {k: v for k, v in row.items() if k != UNREADABLE}}
            self._f.write(orjson.dumps(rec, default=str).decode() + "\n")

    def close(self) -> None:
        self._f.close()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection)."""


def _neutral(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading ``'`` (OWASP's advice
    for CSV injection). Only the CSV rejects file needs it; JSON lines are not opened by spreadsheets."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


def default_rejects_path(input_path: Path, fmt: str) -> Path:
    suffix = ".csv" if fmt == "csv" else ".jsonl"
    return input_path.with_name(f"{input_path.stem}.rejects{suffix}")


# ---- the import ----
@dataclass(frozen=True)
class ImportOptions:
    source: str
    provenance: str = "crm_import"
    mapping: Mapping_ = field(default_factory=dict)
    customer_given: bool = True
    default_region: str | None = None
    batch_size: int = 2000
    window: TimeWindow = field(default_factory=TimeWindow)
    """Plausible dates (``ingest.earliest_time``, ``ingest.max_future_hours``); outside, a row is rejected."""

    def check(self) -> None:
        if not self.source or not self.source.strip():
            raise TaktError("an import needs a source name (--source)", code="usage")
        if self.provenance not in PROVENANCE_RANK:
            raise TaktError(f"provenance must be one of {', '.join(PROVENANCE_RANK)}, got {self.provenance!r}",
                            code="usage")
        if self.default_region is not None and self.default_region.upper() not in \
                phonenumbers.SUPPORTED_REGIONS:
            raise TaktError(f"--default-region {self.default_region!r} is not a region code (e.g. DE, GB, US)",
                            code="usage")
        if self.batch_size < 1:
            raise TaktError("batch size must be positive", code="usage")


@dataclass
class ImportSummary:
    record_type: str
    source: str
    read: int = 0
    imported: int = 0
    already_present: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    rejects_path: Path | None = None

    @property
    def balanced(self) -> bool:
        """Every row read is accounted for."""
        return self.read == self.imported + self.already_present + self.duplicates + self.rejected

    def lines(self) -> list[str]:
        out = [
            f"{self.record_type} rows read: {self.read}",
            f"  imported:        {self.imported}",
            f"  already present: {self.already_present}",
            f"  duplicates:      {self.duplicates}  (same row key as an earlier row)",
            f"  rejected:        {self.rejected}",
        ]
        for reason in REASONS:
            if reason != DUPLICATE and self.reasons.get(reason):
                out.append(f"    {reason}: {self.reasons[reason]}")
        if self.rejects_path is not None:
            n = self.rejected + self.duplicates
            out.append(f"  rejects file:    {self.rejects_path} ({n} row{'s' if n != 1 else ''})")
        return out


def check_columns(reader: RowReader, spec: RecordSpec, mapping: Mapping_, overrides: Mapping_) -> None:
    """For files with a header: every required field's column, and every explicitly mapped column, exists."""
    columns = reader.columns()
    if columns is None:
        return
    have = set(columns)
    missing = [f"{f} (column {mapping[f]!r})" for f in spec.required if mapping[f] not in have]
    if spec.one_of and not any(mapping[f] in have for f in spec.one_of):
        missing.append("one of " + ", ".join(f"{f} (column {mapping[f]!r})" for f in spec.one_of))
    mapped_absent = [f"{f} → {col!r}" for f, col in overrides.items() if col not in have]
    problems = []
    if missing:
        problems.append("missing columns for " + "; ".join(missing))
    if mapped_absent:
        problems.append("mapped columns not in the file: " + ", ".join(mapped_absent))
    if problems:
        raise file_error(reader.path, ". ".join(problems) + f". The file's columns: {', '.join(columns)}. "
                         "Map fields to columns with --map FIELD=COLUMN or --mapping FILE.")


Progress = Callable[[int], None]


def import_rows(
    log: EventLog,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    record_type: str,
    options: ImportOptions,
    *,
    now: datetime,
    rejects: RejectsWriter | None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Check, build and append rows; rejected rows go to ``rejects`` (required if any row is rejected)."""
    options.check()
    spec = spec_for(record_type)
    mapping = resolve_mapping(spec, options.mapping)
    ctx = BuildContext(now=now, default_region=options.default_region.upper() if options.default_region else None,
                       customer_given=options.customer_given, window=options.window)
    summary = ImportSummary(spec.record_type, options.source,
                            rejects_path=rejects.path if rejects is not None else None)
    seen: set[str] = set()
    pending: list[Event] = []
    since_progress = 0

    def flush() -> None:
        nonlocal since_progress
        if pending:
            result = log.append(pending)
            summary.imported += result.stored
            summary.already_present += result.duplicates
            pending.clear()
        if progress is not None and since_progress:
            progress(since_progress)
            since_progress = 0

    def reject(n: int, problems: Iterable[Problem], row: Mapping[str, Any]) -> None:
        if rejects is None:
            raise TaktError(f"row {n} is rejected but there is no rejects file", code="internal")
        rejects.write(n, problems, row)

    for n, row in rows:
        summary.read += 1
        since_progress += 1
        res = build_row(spec, n, row, mapping, ctx, options.source, options.provenance)
        if res.row_key is not None and res.row_key in seen:
            summary.duplicates += 1
            summary.reasons[DUPLICATE] += 1
            reject(n, (Problem(DUPLICATE, "row_key", f"row key {res.row_key!r} already appeared earlier in the file"),),
                   row)
        elif res.event is None:
            if res.row_key is not None:
                seen.add(res.row_key)
            summary.rejected += 1
            for reason in {p.reason for p in res.problems}:
                summary.reasons[reason] += 1
            reject(n, res.problems, row)
        else:
            assert res.row_key is not None
            seen.add(res.row_key)
            pending.append(res.event)
            if len(pending) >= options.batch_size:
                flush()
    flush()
    return summary


def import_file(
    log: EventLog,
    path: str | Path,
    record_type: str,
    options: ImportOptions,
    *,
    now: datetime,
    rejects_path: str | Path | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
    on_start: Callable[[int | None], None] | None = None,
) -> ImportSummary:
    """Import one CSV, Parquet or JSON-lines file. The rejects file is always written (header only when no
    row is rejected), next to the input unless ``rejects_path`` is given."""
    options.check()
    spec = spec_for(record_type)
    reader = open_rows(path, fmt)
    mapping = resolve_mapping(spec, options.mapping)
    reader.check_encoding()
    check_columns(reader, spec, mapping, options.mapping)
    rpath = Path(rejects_path) if rejects_path is not None else default_rejects_path(reader.path, reader.format)
    if rpath.resolve() == reader.path.resolve():
        raise file_error(rpath, "the rejects file cannot be the input file")
    if on_start is not None:
        on_start(reader.estimate_rows())
    writer = RejectsWriter(rpath, reader.columns())
    try:
        return import_rows(log, reader.rows(), spec.record_type, options, now=now, rejects=writer,
                           progress=progress)
    finally:
        writer.close()
