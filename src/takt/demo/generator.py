"""A seeded, deterministic simulation of a travel-and-outdoor retailer's customers.

:func:`generate` yields one :class:`CustomerData` per customer: the Segment-spec payloads that customer's
touchpoints send (grouped by source), and the customer's rows in the CRM exports (customers, orders, service
cases) and in a bought enrichment file. Each customer is simulated on its own random stream
(``seed`` + index), so output is the same for the same seed, end and size, and memory stays flat however many
customers are asked for. Time is a parameter: everything happens in ``[end - days, end]``.

What the simulation contains: anonymous browsing stitched by a later login (``identify`` with userId and
anonymousId), people on two or three devices, shared family tablets (two userIds on one anonymousId), trips
that make interests drift over the months (Krabi in winter, New York later), searches, product views with
interests and dwell time, cart adds, orders, returns, service cases by phone and chat, newsletter opens,
consent given and withdrawn, and visitors who never log in. Customer 0 is the story customer, Ann
(``ann@example.com``): see :func:`_ann`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from takt.demo.catalog import (
    CATALOG,
    DESTINATION,
    DESTINATIONS,
    GEAR,
    PRODUCT,
    TRIP_PRODUCTS,
    Destination,
    Product,
    view_interests,
)
from takt.demo.people import COUNTRIES, Person, make_person, phone_number

SOURCES: dict[str, str] = {
    "website": "customer_provided",
    "app": "customer_provided",
    "store": "observed",
    "callcenter": "observed",
    "newsletter": "customer_provided",
    "crm": "crm_import",
    "enrichment-vendor": "third_party",
}
"""Every source of the demo and the provenance its write key (or import) declares. ``newsletter`` is the email
service's backend: it reports that a customer clicked the double-opt-in confirmation link (a server key: what a
browser asserts is a claim, never the evidence of a double opt-in)."""

EVENT_SOURCES = ("website", "app", "store", "callcenter", "newsletter")
"""Sources that send Segment calls (the other two are file imports)."""

TOUCHPOINTS = ("web", "app", "email", "store", "call_center", "chat", "social", "sms")

LIBRARIES: dict[str, dict[str, str]] = {
    "web": {"name": "analytics.js", "version": "5.2.1"},
    "social": {"name": "analytics.js", "version": "5.2.1"},
    "sms": {"name": "analytics.js", "version": "5.2.1"},
    "email": {"name": "takt-demo-newsletter", "version": "1.0"},
    "store": {"name": "takt-demo-pos", "version": "3.4"},
    "call_center": {"name": "takt-demo-callcenter", "version": "2.1"},
    "chat": {"name": "takt-demo-chat", "version": "1.7"},
}
APP_LIBRARIES = ({"name": "analytics-ios", "version": "4.1.8"}, {"name": "analytics-android", "version": "4.11.3"})

STORES = ("berlin-mitte", "hamburg-hafen", "muenchen-isartor", "koeln-dom", "wien-neubau", "zuerich-west")

CUSTOMER_COLUMNS = ["crm_id", "email", "phone", "first_name", "last_name", "birthday", "gender", "language",
                    "country", "city", "street", "postal_code", "loyalty_tier", "created_at", "updated_at"]
ENRICHMENT_COLUMNS = ["vendor_ref", "email", "phone", "city"]
ORDER_COLUMNS = ["order_id", "crm_id", "email", "revenue", "currency", "products", "store", "status", "ordered_at"]
CASE_COLUMNS = ["case_id", "crm_id", "status", "subject", "channel", "product_id", "in_repair", "opened_at"]
PRODUCT_COLUMNS = ["product_id", "name", "category", "price", "interests"]

ENRICHMENT_MAPPING = {"row_key": "vendor_ref"}
"""The enrichment file's row key is the vendor's reference (it does not know CRM ids)."""

STORY_EMAIL = "ann@example.com"
STORY_CRM_ID = "C100001"
STORY_VENDOR_PHONE = "+49 151 23456789"


@dataclass(frozen=True)
class DemoConfig:
    end: datetime
    customers: int = 2000
    days: int = 365
    seed: int = 1

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.days < 7:
            raise ValueError("days must be at least 7")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


@dataclass
class CustomerData:
    index: int
    crm_id: str
    email: str
    payloads: dict[str, list[dict[str, Any]]]
    customers: list[dict[str, str]] = field(default_factory=list)
    enrichment: list[dict[str, str]] = field(default_factory=list)
    orders: list[dict[str, str]] = field(default_factory=list)
    cases: list[dict[str, str]] = field(default_factory=list)

    def event_count(self) -> int:
        return sum(len(v) for v in self.payloads.values())


def product_rows() -> list[dict[str, str]]:
    """The catalog, as the products file the demo imports."""
    return [p.as_row() for p in CATALOG]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def crm_id(index: int) -> str:
    return f"C{100001 + index}"


# ---- per-customer simulation ----
@dataclass
class _Device:
    anon_id: str
    source: str  # website | app
    kind: str  # laptop | phone | tablet | app
    library: dict[str, str]
    anon_sessions: int  # sessions before the first login on it
    seen: int = 0
    logged_in: bool = False
    shared: bool = False


@dataclass
class _Trip:
    dest: Destination
    departure: datetime
    plan_from: datetime
    plan_to: datetime


@dataclass
class _Purchase:
    at: datetime
    order_id: str
    products: list[Product]


class _Sim:
    """Builds one customer's payloads and rows."""

    def __init__(self, cfg: DemoConfig, index: int):
        self.cfg = cfg
        self.index = index
        self.rng = random.Random(f"takt-demo:{cfg.seed}:{index}")
        self.n = 0
        self.crm_id = crm_id(index)
        self.payloads: dict[str, list[dict[str, Any]]] = {s: [] for s in EVENT_SOURCES}
        self.purchases: list[_Purchase] = []
        self.consent = {"email": False, "sms": False, "push": False}
        self.consent_log: list[tuple[datetime, str, bool]] = []
        self.registered_at: datetime | None = None
        self.orders_n = 0
        self.cases: list[dict[str, str]] = []

    # ---- emitting ----
    def mid(self) -> str:
        self.n += 1
        return f"demo-{self.cfg.seed}-{self.index}-{self.n}"

    def emit(self, source: str, kind: str, at: datetime, channel: str, *, user: str | None = None,
             anon: str | None = None, library: dict[str, str] | None = None,
             extra_context: dict[str, Any] | None = None, **fields: Any) -> bool:
        """Append one payload if ``at`` is inside the window; returns whether it was."""
        if at < self.cfg.start or at > self.cfg.end:
            return False
        context: dict[str, Any] = {"channel": channel, "library": library or LIBRARIES[channel]}
        if extra_context:
            context.update(extra_context)
        p: dict[str, Any] = {"type": kind, "messageId": self.mid(), "timestamp": iso(at), "context": context}
        if user is not None:
            p["userId"] = user
        if anon is not None:
            p["anonymousId"] = anon
        p.update(fields)
        self.payloads[source].append(p)
        return True

    def between(self, a: datetime, b: datetime) -> datetime:
        if b <= a:
            return a
        return a + timedelta(seconds=self.rng.uniform(0, (b - a).total_seconds()))

    def poisson(self, lam: float) -> int:
        # Knuth's method is fine for the small rates used here.
        if lam <= 0:
            return 0
        limit, k, p = math.exp(-min(lam, 30.0)), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def anon_id(self, prefix: str) -> str:
        return f"{prefix}-{self.rng.getrandbits(64):016x}"

    # ---- building blocks ----
    def identify(self, dev: _Device, at: datetime, person: Person, channel: str) -> None:
        traits = {"email": person.email, "first_name": person.first_name, "last_name": person.last_name}
        stored = self.emit(dev.source, "identify", at, channel, user=self.crm_id, anon=dev.anon_id,
                           library=dev.library, traits=traits)
        if stored and self.registered_at is None:
            self.registered_at = at
            # registration asks for newsletter consent
            status = "granted" if self.rng.random() < 0.65 else "withdrawn"
            self.consent_update(dev, at + timedelta(seconds=20), channel, "email", status)
            if status == "granted" and _confirms_by_email(self.crm_id):
                # most click the confirmation link: the grant becomes a double opt-in (decided from the id, not
                # the shared random stream, so the rest of the data stays as it was)
                self.consent_update(dev, at + timedelta(minutes=3), "email", "email", "granted",
                                    method="double_opt_in", source="newsletter")

    def consent_update(self, dev: _Device, at: datetime, channel: str, consent_channel: str, status: str,
                       method: str | None = None, source: str | None = None) -> None:
        self.consent[consent_channel] = status == "granted"
        self.consent_log.append((at, consent_channel, status == "granted"))
        props: dict[str, object] = {"purpose": "marketing", "channel": consent_channel, "status": status}
        if method is not None:
            props["evidence"] = {"method": method}
        if source is not None:  # a backend reporting it: the user's id, no device
            self.emit(source, "track", at, channel, user=self.crm_id, event="Consent Updated", properties=props)
            return
        self.emit(dev.source, "track", at, channel, user=self.crm_id, anon=dev.anon_id, library=dev.library,
                  event="Consent Updated", properties=props)

    def product_view(self, dev: _Device, at: datetime, channel: str, user: str | None, product: Product,
                     dest: Destination | None) -> None:
        props = {**product.as_segment(), "interests": view_interests(product, dest),
                 "dwell_seconds": round(self.rng.lognormvariate(3.4, 0.8), 1)}
        self.emit(dev.source, "track", at, channel, user=user, anon=dev.anon_id, library=dev.library,
                  event="Product Viewed", properties=props)

    def order_props(self, order_id: str, products: list[Product], store: str) -> dict[str, Any]:
        lines = [{"product_id": p.product_id, "name": p.name, "category": p.category, "price": p.price,
                  "quantity": 1} for p in products]
        revenue = round(sum(p.price for p in products), 2)
        return {"order_id": order_id, "revenue": revenue, "total": revenue, "currency": "EUR", "products": lines,
                "categories": sorted({p.category for p in products}), "store": store}

    def next_order_id(self, prefix: str) -> str:
        self.orders_n += 1
        return f"{prefix}{self.index:06d}-{self.orders_n}"

    def web_order(self, dev: _Device, at: datetime, channel: str, products: list[Product]) -> None:
        order_id = self.next_order_id("W")
        if self.emit(dev.source, "track", at, channel, user=self.crm_id, anon=dev.anon_id, library=dev.library,
                     event="Order Completed", properties=self.order_props(order_id, products, "online")):
            self.purchases.append(_Purchase(at, order_id, products))

    def store_order(self, at: datetime, products: list[Product], store: str) -> None:
        order_id = self.next_order_id("S")
        if self.emit("store", "track", at, "store", user=self.crm_id, event="Order Completed",
                     properties=self.order_props(order_id, products, store),
                     extra_context={"location": {"store": store}}):
            self.purchases.append(_Purchase(at, order_id, products))

    def returns(self) -> None:
        for pur in list(self.purchases):
            if self.rng.random() < 0.1:
                back = pur.products[: max(1, len(pur.products) // 2)]
                at = pur.at + timedelta(days=self.rng.uniform(4, 25))
                props = self.order_props(pur.order_id, back, self.rng.choice(STORES))
                props["reason"] = self.rng.choice(("wrong size", "not as expected", "damaged", "changed mind"))
                self.emit("store", "track", at, "store", user=self.crm_id, event="Order Refunded", properties=props)

    def service_case(self, pur: _Purchase, at: datetime, channel: str, subject: str, in_repair: bool,
                     close_after: timedelta | None) -> None:
        case_id = f"K{self.index:06d}-{len(self.cases) + 1}"
        product = pur.products[0]
        props = {"case_id": case_id, "subject": subject, "channel": channel, "product_id": product.product_id,
                 "order_id": pur.order_id, "in_repair": in_repair}
        if not self.emit("callcenter", "track", at, channel, user=self.crm_id, event="Case Opened",
                         properties=props):
            return
        closed = False
        if close_after is not None:
            closed = self.emit("callcenter", "track", at + close_after, channel, user=self.crm_id,
                               event="Case Closed",
                               properties={"case_id": case_id, "resolution": "repaired" if in_repair else "resolved",
                                           "in_repair": False})
        self.cases.append({"case_id": case_id, "crm_id": self.crm_id, "status": "closed" if closed else "open",
                           "subject": subject, "channel": channel, "product_id": product.product_id,
                           "in_repair": "false" if closed else str(in_repair).lower(), "opened_at": iso(at)})

    def cases_and_returns(self, rate: float) -> None:
        self.returns()
        if self.purchases and self.rng.random() < rate:
            pur = self.rng.choice(self.purchases)
            at = pur.at + timedelta(days=self.rng.uniform(3, 60))
            channel = "call_center" if self.rng.random() < 0.6 else "chat"
            subject, repair = self.rng.choice((("Zipper broken", True), ("Delivery late", False),
                                               ("Sole coming off", True), ("Invoice question", False),
                                               ("Tent pole snapped", True), ("Exchange size", False)))
            close = timedelta(days=self.rng.uniform(1, 21)) if self.rng.random() < 0.85 else None
            self.service_case(pur, at, channel, subject, repair, close)

    def granted_periods(self, consent_channel: str) -> list[tuple[datetime, datetime]]:
        """When consent for ``consent_channel`` was granted, as (from, to) periods up to the end."""
        periods: list[tuple[datetime, datetime]] = []
        since: datetime | None = None
        for at, ch, granted in sorted(self.consent_log, key=lambda x: x[0]):
            if ch != consent_channel:
                continue
            if granted and since is None:
                since = at
            elif not granted and since is not None:
                periods.append((since, at))
                since = None
        if since is not None:
            periods.append((since, self.cfg.end))
        return periods

    def newsletter(self) -> None:
        """Newsletter opens, only while email consent is granted."""
        for start, stop in self.granted_periods("email"):
            for _ in range(self.poisson((stop - start).days / 30 * 0.7)):
                self.newsletter_open(self.between(start + timedelta(minutes=5), stop))

    def newsletter_open(self, at: datetime) -> None:
        campaign = f"newsletter-{at:%Y-%m}"
        self.emit("website", "track", at, "email", user=self.crm_id, event="Email Opened",
                  properties={"campaign_id": campaign, "subject": "New gear for your next trip"},
                  extra_context={"campaign": {"name": campaign, "source": "newsletter", "medium": "email"}})


# ---- sessions ----
def _pick_destination(rng: random.Random, when: datetime) -> Destination:
    weights = [4.0 if when.month in d.months else 0.5 for d in DESTINATIONS]
    return rng.choices(DESTINATIONS, weights=weights)[0]


def _trips(sim: _Sim) -> list[_Trip]:
    rng, cfg = sim.rng, sim.cfg
    n = sim.poisson(1.6 * cfg.days / 365) if rng.random() < 0.85 else 0
    trips = []
    for _ in range(n):
        departure = sim.between(cfg.start + timedelta(days=14), cfg.end + timedelta(days=45))
        dest = _pick_destination(rng, departure)
        plan = timedelta(days=rng.uniform(25, 70))
        trips.append(_Trip(dest, departure, departure - plan, departure - timedelta(days=2)))
    return trips


def _session(sim: _Sim, person: Person, dev: _Device, at: datetime, trip: _Trip | None, registered: bool,
             hobby: list[Product]) -> datetime:
    rng = sim.rng
    channel = "app" if dev.source == "app" else "web"
    campaign: dict[str, Any] | None = None
    if channel == "web":
        r = rng.random()
        if r < 0.12 and sim.consent["email"]:
            channel, campaign = "email", {"source": "newsletter", "medium": "email", "name": f"newsletter-{at:%Y-%m}"}
        elif r < 0.27:
            channel, campaign = "social", {"source": rng.choice(("instagram", "facebook", "tiktok")),
                                           "medium": "social", "name": "travel-inspiration"}
        elif r < 0.31 and sim.consent["sms"]:
            channel, campaign = "sms", {"source": "sms", "medium": "sms", "name": "flash-sale"}
    library = dev.library if channel in ("web", "app") else LIBRARIES[channel]
    extra: dict[str, Any] = {"device": {"type": dev.kind}}
    if campaign:
        extra["campaign"] = campaign
    dev.seen += 1
    login_now = registered and (dev.shared or (not dev.logged_in and dev.seen > dev.anon_sessions))
    user = sim.crm_id if dev.logged_in and not dev.shared else None
    t = at

    def step(lo: float = 15, hi: float = 150) -> datetime:
        nonlocal t
        t = t + timedelta(seconds=rng.uniform(lo, hi))
        return t

    landing = "Home" if campaign is None else "Landing"
    if dev.source == "app":
        sim.emit("app", "screen", t, "app", user=user, anon=dev.anon_id, library=library, name=landing,
                 extra_context=extra)
    else:
        sim.emit(dev.source, "page", t, channel, user=user, anon=dev.anon_id, library=library, name=landing,
                 properties={"path": "/" if campaign is None else "/inspiration"}, extra_context=extra)
    if login_now and (dev.shared or rng.random() < 0.5):
        sim.identify(dev, step(), person, channel)
        dev.logged_in, user, login_now = True, sim.crm_id, False
    dest = trip.dest if trip else None
    if dest is not None and rng.random() < 0.7:
        sim.emit(dev.source, "track", step(), channel, user=user, anon=dev.anon_id, library=library,
                 event="Products Searched", properties={"query": rng.choice(dest.searches)}, extra_context=extra)
    pool = TRIP_PRODUCTS[dest.slug] if dest is not None else hobby
    viewed: list[Product] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        p = rng.choice(pool)
        viewed.append(p)
        sim.product_view(dev, step(), channel, user, p, dest)
    if rng.random() < 0.3:
        p = rng.choice(viewed)
        sim.emit(dev.source, "track", step(), channel, user=user, anon=dev.anon_id, library=library,
                 event="Product Added", properties={**p.as_segment(), "quantity": 1})
        if registered and rng.random() < 0.5:
            if user is None:  # log in at checkout
                sim.identify(dev, step(), person, channel)
                dev.logged_in, user = True, sim.crm_id
            basket = list(dict.fromkeys([p, *rng.sample(viewed, k=min(len(viewed), rng.randint(0, 2)))]))
            sim.web_order(dev, step(60, 400), channel, basket)
    if user is not None and sim.registered_at is not None and rng.random() < 0.04:
        ch = rng.choice(("email", "sms", "push"))
        sim.consent_update(dev, step(), channel, ch, "withdrawn" if sim.consent[ch] else "granted")
    return t


def _customer(sim: _Sim) -> CustomerData:
    cfg, rng = sim.cfg, sim.rng
    person = make_person(rng, sim.index, cfg.end.year)
    registered = rng.random() < 0.85
    store_affinity = rng.random() < 0.55
    devices = [_Device(sim.anon_id("web"), "website", "laptop", LIBRARIES["web"], rng.choice((0, 1, 1, 2, 3)))]
    if rng.random() < 0.45:
        devices.append(_Device(sim.anon_id("app"), "app", "app", rng.choice(APP_LIBRARIES), rng.choice((0, 1, 2))))
    if rng.random() < 0.15:
        devices.append(_Device(sim.anon_id("web"), "website", "phone", LIBRARIES["web"], rng.choice((0, 1))))
    pair = sim.index // 2
    household = random.Random(f"takt-demo-household:{cfg.seed}:{pair}")
    if household.random() < 0.08 and registered:
        devices.append(_Device(f"tablet-{household.getrandbits(64):016x}", "website", "tablet",
                               LIBRARIES["web"], 0, shared=True))
    hobby_tags = set(rng.sample(sorted({t for p in GEAR for t in p.interests if t.startswith("activity:")}), 2))
    hobby = [p for p in GEAR if hobby_tags.intersection(p.interests)] or list(GEAR)
    trips = _trips(sim)
    rate = rng.lognormvariate(math.log(8), 0.6) * cfg.days / 365
    n_sessions = sim.poisson(rate) if registered else sim.poisson(rate / 4)
    sessions: list[tuple[datetime, _Trip | None]] = []
    for _ in range(n_sessions):
        if trips and rng.random() < 0.65:
            chosen = rng.choice(trips)
            sessions.append((sim.between(max(chosen.plan_from, cfg.start), min(chosen.plan_to, cfg.end)), chosen))
        else:
            sessions.append((sim.between(cfg.start, cfg.end), None))
    sessions.sort(key=lambda s: s[0])
    for at, focus in sessions:
        dev = rng.choices(devices, weights=[3 if d.kind == "laptop" else 2 if d.kind == "app" else 1
                                            for d in devices])[0]
        _session(sim, person, dev, at, focus, registered, hobby)
    if store_affinity:
        for _ in range(sim.poisson(1.4 * cfg.days / 365)):
            at = sim.between(cfg.start, cfg.end).replace(hour=rng.randint(9, 19))
            basket = rng.sample(hobby, k=min(len(hobby), rng.choice((1, 1, 2, 3))))
            sim.store_order(at, basket, rng.choice(STORES))
    sim.cases_and_returns(0.1 * cfg.days / 365)
    sim.newsletter()
    _anonymous_visitor(sim)
    return _rows(sim, person, registered or store_affinity)


def _anonymous_visitor(sim: _Sim) -> None:
    """Someone who browses and never logs in."""
    rng, cfg = sim.rng, sim.cfg
    if rng.random() >= 0.35:
        return
    dev = _Device(sim.anon_id("web"), "website", rng.choice(("laptop", "phone")), LIBRARIES["web"], 99)
    for _ in range(rng.randint(1, 3)):
        at = sim.between(cfg.start, cfg.end)
        trip = _Trip(_pick_destination(rng, at), at, at, at) if rng.random() < 0.5 else None
        _session(sim, _NOBODY, dev, at, trip, False, list(GEAR))


def _rows(sim: _Sim, person: Person, in_crm: bool) -> CustomerData:
    rng, cfg = sim.rng, sim.cfg
    data = CustomerData(sim.index, sim.crm_id, person.email, sim.payloads, cases=sim.cases)
    if not in_crm:
        return data
    created = sim.registered_at or sim.between(cfg.start - timedelta(days=900), cfg.start)
    row = {
        "crm_id": sim.crm_id, "email": person.email, "phone": person.phone or "", "first_name": person.first_name,
        "last_name": person.last_name, "birthday": person.birthday.isoformat(), "gender": person.gender,
        "language": person.country.language, "country": person.country.code, "city": person.city,
        "street": person.street, "postal_code": person.postal_code,
        "loyalty_tier": rng.choice(("basic", "basic", "silver", "gold")),
        "created_at": created.date().isoformat(), "updated_at": iso(sim.between(created, cfg.end)),
    }
    quirk = rng.random()
    if sim.index != 0 and quirk < 0.004:
        row["email"] = row["email"].replace("@", " at ")  # a typo the import rejects
    elif sim.index != 0 and quirk < 0.007:
        row["phone"] = "0" + "".join(rng.choice("0123456789") for _ in range(4))  # too short
    data.customers.append(row)
    if sim.index != 0 and 0.007 <= quirk < 0.010:
        data.customers.append({**row, "loyalty_tier": "gold"})  # the export repeated the customer
    if rng.random() < 0.22:
        phone = phone_number(rng, person.country) if person.phone is None or rng.random() < 0.5 else person.phone
        data.enrichment.append({"vendor_ref": f"V{9_000_000 + sim.index * 7}", "email": person.email,
                                "phone": phone, "city": person.city})
    for k in range(rng.choice((0, 0, 1, 1, 2, 3))):
        at = sim.between(cfg.start - timedelta(days=365), cfg.start - timedelta(days=1))
        basket = rng.sample(CATALOG, k=rng.randint(1, 3))
        lines = [{"product_id": p.product_id, "category": p.category, "price": p.price, "quantity": 1} for p in basket]
        data.orders.append({
            "order_id": f"H{sim.index:06d}-{k + 1}", "crm_id": sim.crm_id, "email": "",
            "revenue": f"{sum(p.price for p in basket):.2f}", "currency": "EUR",
            "products": orjson.dumps(lines).decode(), "store": rng.choice(("online", *STORES)),
            "status": "returned" if rng.random() < 0.06 else "completed", "ordered_at": iso(at),
        })
    return data


_NOBODY = Person("", "", "", None, COUNTRIES[0], "", "", "", date(2000, 1, 1), "")


# ---- the story customer ----
def _story_times(cfg: DemoConfig) -> tuple[datetime, datetime]:
    """When Ann plans Krabi (a February inside the window, else early in it) and New York (recently)."""
    recent = cfg.end - timedelta(days=min(12, cfg.days // 6))
    for year in (cfg.end.year, cfg.end.year - 1):
        feb = datetime(year, 2, 10, 19, 30, tzinfo=UTC)
        if cfg.start + timedelta(days=3) <= feb <= recent - timedelta(days=30):
            return feb, recent
    return cfg.start + timedelta(days=max(2, cfg.days // 10)), recent


def _ann(sim: _Sim) -> CustomerData:
    """Ann browses anonymously on her laptop, searches Krabi in February, logs in, buys snorkel gear, installs
    the app and logs in there too, has a case about her backpack, and lately plans New York. The CRM knows her
    without a phone number; the enrichment vendor sells one she never gave."""
    cfg = sim.cfg
    person = Person("Ann", "Berg", STORY_EMAIL, None, COUNTRIES[0], "Berlin", "Lindenallee 12", "10115",
                    date(1988, 6, 14), "female")
    laptop = _Device("anon-ann-laptop", "website", "laptop", LIBRARIES["web"], 1)
    phone = _Device("anon-ann-phone", "app", "app", APP_LIBRARIES[0], 0)
    krabi, ny = DESTINATION["krabi"], DESTINATION["new-york"]
    feb, recent = _story_times(cfg)
    t = feb - timedelta(days=3)
    # anonymous browsing first
    sim.emit("website", "page", t, "web", anon=laptop.anon_id, name="Home", properties={"path": "/"})
    sim.emit("website", "track", t + timedelta(minutes=1), "web", anon=laptop.anon_id, event="Products Searched",
             properties={"query": "thailand beach"})
    sim.product_view(laptop, t + timedelta(minutes=3), "web", None, PRODUCT["G500"], krabi)
    # February: searches Krabi, logs in, buys
    t = feb
    sim.emit("website", "track", t, "web", anon=laptop.anon_id, event="Products Searched",
             properties={"query": "krabi snorkeling"})
    snorkel = next(p for p in TRIP_PRODUCTS["krabi"] if p.category == "snorkel-gear")
    swim = next(p for p in TRIP_PRODUCTS["krabi"] if p.category == "swimwear")
    sim.product_view(laptop, t + timedelta(minutes=2), "web", None, snorkel, krabi)
    sim.product_view(laptop, t + timedelta(minutes=5), "web", None, swim, krabi)
    sim.identify(laptop, t + timedelta(minutes=7), person, "web")
    laptop.logged_in = True
    sim.emit("website", "track", t + timedelta(minutes=8), "web", user=sim.crm_id, anon=laptop.anon_id,
             event="Product Added", properties={**snorkel.as_segment(), "quantity": 1})
    # still planning the trip: Krabi, more than the gear she buys, is what she is into (her top interest)
    for k, q in enumerate(("railay beach", "krabi boat tour", "krabi")):
        sim.emit("website", "track", t + timedelta(minutes=9, seconds=20 * k), "web", user=sim.crm_id,
                 anon=laptop.anon_id, event="Products Searched", properties={"query": q})
    backpack = next(p for p in GEAR if p.category == "backpacks")
    sim.web_order(laptop, t + timedelta(minutes=12), "web", [snorkel, swim, backpack])
    # the app on her phone: anonymous first, then logged in
    t = feb + timedelta(days=4)
    sim.emit("app", "screen", t, "app", anon=phone.anon_id, library=phone.library, name="Home")
    sim.emit("app", "track", t + timedelta(minutes=1), "app", anon=phone.anon_id, library=phone.library,
             event="Products Searched", properties={"query": "krabi island hopping"})
    sim.identify(phone, t + timedelta(minutes=2), person, "app")
    phone.logged_in = True
    sim.product_view(phone, t + timedelta(minutes=3), "app", sim.crm_id, PRODUCT["G500"], krabi)
    sim.consent_update(phone, t + timedelta(minutes=4), "app", "push", "granted")
    sim.consent_update(phone, t + timedelta(minutes=5), "app", "sms", "granted")
    # a case about the backpack, by chat
    sim.service_case(sim.purchases[0], feb + timedelta(days=9), "chat", "Backpack zipper broken", True,
                     timedelta(days=12))
    # withdraws sms later
    mid = feb + (recent - feb) / 2
    sim.consent_update(laptop, mid, "web", "sms", "withdrawn")
    # recently: New York
    for k, q in enumerate(("new york", "nyc winter")):
        at = recent + timedelta(days=k * 2)
        dev = laptop if k == 0 else phone
        ch = "web" if k == 0 else "app"
        sim.emit(dev.source, "track", at, ch, user=sim.crm_id, anon=dev.anon_id, library=dev.library,
                 event="Products Searched", properties={"query": q})
        for j, p in enumerate([PRODUCT["G502"], *(x for x in TRIP_PRODUCTS["new-york"]
                                                     if x.category in ("down-jackets", "city-bags"))][:3]):
            sim.product_view(dev, at + timedelta(minutes=2 + j * 3), ch, sim.crm_id, p, ny)
    sim.newsletter()
    data = CustomerData(0, sim.crm_id, STORY_EMAIL, sim.payloads, cases=sim.cases)
    data.customers.append({
        "crm_id": sim.crm_id, "email": STORY_EMAIL, "phone": "", "first_name": "Ann", "last_name": "Berg",
        "birthday": "1988-06-14", "gender": "female", "language": "de", "country": "DE", "city": "Berlin",
        "street": "Lindenallee 12", "postal_code": "10115", "loyalty_tier": "silver",
        "created_at": (feb.date()).isoformat(), "updated_at": iso(feb + timedelta(minutes=30)),
    })
    data.enrichment.append({"vendor_ref": "V9000000", "email": STORY_EMAIL, "phone": STORY_VENDOR_PHONE,
                            "city": "Berlin"})
    hist = cfg.start - timedelta(days=200)
    tent = next(p for p in GEAR if p.category == "tents")
    data.orders.append({"order_id": "H000000-1", "crm_id": sim.crm_id, "email": STORY_EMAIL,
                        "revenue": f"{tent.price:.2f}", "currency": "EUR",
                        "products": orjson.dumps([{"product_id": tent.product_id, "category": tent.category,
                                                   "price": tent.price, "quantity": 1}]).decode(),
                        "store": "berlin-mitte", "status": "completed", "ordered_at": iso(hist)})
    return data


def customer(cfg: DemoConfig, index: int) -> CustomerData:
    """The data of customer ``index`` (0 is Ann)."""
    sim = _Sim(cfg, index)
    return _ann(sim) if index == 0 else _customer(sim)


def generate(cfg: DemoConfig) -> Iterator[CustomerData]:
    """Every customer's data, one at a time."""
    for i in range(cfg.customers):
        yield customer(cfg, i)


def _confirms_by_email(crm_id: str | None) -> bool:
    """About four in five newsletter sign-ups click the double opt-in link (stable per customer)."""
    return crm_id is not None and int(hashlib.sha256(crm_id.encode()).hexdigest()[:8], 16) % 5 != 0
