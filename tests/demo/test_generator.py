"""The demo generator (deterministic, valid Segment payloads, the story) and `takt demo` end to end."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.demo.feed import KEYS_FILE
from takt.demo.generator import (
    EVENT_SOURCES,
    SOURCES,
    STORY_CRM_ID,
    STORY_EMAIL,
    TOUCHPOINTS,
    CustomerData,
    DemoConfig,
    customer,
    generate,
)
from takt.ingest.records import normalize_email, normalize_phone
from takt.ingest.segment import Limits, Source, normalize
from takt.workspace import init, open_workspace

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CFG = DemoConfig(end=END, customers=300, days=365, seed=7)


@cache
def year() -> tuple[CustomerData, ...]:
    return tuple(generate(CFG))


def dump(data: list[CustomerData] | tuple[CustomerData, ...]) -> bytes:
    return orjson.dumps([(d.payloads, d.customers, d.enrichment, d.orders, d.cases) for d in data])


def all_payloads(data: tuple[CustomerData, ...]) -> list[tuple[str, dict]]:
    return [(s, p) for d in data for s, ps in d.payloads.items() for p in ps]


# ---- determinism ----
def test_same_seed_same_output_and_different_seed_differs() -> None:
    small = DemoConfig(end=END, customers=40, days=90, seed=3)
    first = dump(list(generate(small)))
    assert first == dump(list(generate(small)))
    other = dump(list(generate(DemoConfig(end=END, customers=40, days=90, seed=4))))
    assert other != first
    # one customer alone is the same as inside the run: each customer has its own random stream
    assert dump([customer(small, 17)]) == dump([list(generate(small))[17]])


def test_generation_is_lazy() -> None:
    huge = DemoConfig(end=END, customers=10**9, days=365, seed=1)
    it = generate(huge)
    assert next(it).email == STORY_EMAIL and next(it).index == 1


# ---- validity ----
def test_every_payload_normalizes_and_lies_in_the_window() -> None:
    limits = Limits()
    received = END + timedelta(minutes=1)
    ids: set[tuple[str, str]] = set()
    payloads = all_payloads(year())
    assert len(payloads) > 5000
    for source, p in payloads:
        assert source in EVENT_SOURCES
        ev = normalize(p, None, Source(source, SOURCES[source]), received, limits)
        assert CFG.start <= ev.timestamp <= END, p
        assert ev.provenance == SOURCES[source]
        ids.add((source, ev.message_id))
    assert len(ids) == len(payloads)  # message ids are unique per source


def test_all_touchpoints_present_with_libraries() -> None:
    channels: dict[str, set[str]] = defaultdict(set)
    for _, p in all_payloads(year()):
        channels[p["context"]["channel"]].add(p["context"]["library"]["name"])
    assert set(TOUCHPOINTS) <= set(channels) and len(TOUCHPOINTS) >= 8
    assert channels["store"] == {"takt-demo-pos"} and channels["chat"] == {"takt-demo-chat"}
    assert channels["app"] <= {"analytics-ios", "analytics-android"}


def test_crm_rows_are_mostly_clean_with_a_few_planted_problems() -> None:
    rows = [r for d in year() for r in d.customers]
    bad_email = [r for r in rows if normalize_email(r["email"]) is None]
    bad_phone = [r for r in rows if r["phone"] and normalize_phone(r["phone"], None) is None]
    assert 0 < len(bad_email) + len(bad_phone) < len(rows) * 0.03
    orders = [r for d in year() for r in d.orders]
    assert orders and all(float(r["revenue"]) > 0 and r["ordered_at"] < CFG.start.isoformat() for r in orders)
    cases = [r for d in year() for r in d.cases]
    assert cases and {r["status"] for r in cases} == {"open", "closed"}


# ---- the simulation's features ----
def test_anonymous_browsing_is_stitched_by_login_on_two_devices() -> None:
    ann = year()[0]
    web = ann.payloads["website"]
    assert "userId" not in web[0] and web[0]["anonymousId"] == "anon-ann-laptop"
    identifies = [p for s in ("website", "app") for p in ann.payloads[s] if p["type"] == "identify"]
    assert {(p["userId"], p["anonymousId"]) for p in identifies} == {
        (STORY_CRM_ID, "anon-ann-laptop"), (STORY_CRM_ID, "anon-ann-phone")}
    assert all(p["traits"]["email"] == STORY_EMAIL for p in identifies)
    # across customers: many people use two or more devices
    anons: dict[str, set[str]] = defaultdict(set)
    for _, p in all_payloads(year()):
        if p["type"] == "identify":
            anons[p["userId"]].add(p["anonymousId"])
    assert sum(1 for a in anons.values() if len(a) >= 2) >= 30


def test_shared_family_tablets() -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for _, p in all_payloads(year()):
        if p["type"] == "identify":
            users[p["anonymousId"]].add(p["userId"])
    shared = {a: u for a, u in users.items() if len(u) > 1}
    assert shared and all(a.startswith("tablet-") for a in shared)


def test_story_interests_drift_from_krabi_to_new_york() -> None:
    ann = year()[0]
    events = sorted((p for s in EVENT_SOURCES for p in ann.payloads[s] if p["type"] == "track"),
                    key=lambda p: p["timestamp"])
    searches = [(p["timestamp"][:10], p["properties"]["query"]) for p in events if p["event"] == "Products Searched"]
    krabi = [d for d, q in searches if "krabi" in q]
    new_york = [d for d, q in searches if q in ("new york", "nyc winter")]
    assert krabi and all(d.startswith("2026-02") for d in krabi)
    assert new_york and all(d >= (END - timedelta(days=21)).date().isoformat() for d in new_york)
    views = [(p["timestamp"], p["properties"]["interests"]) for p in events if p["event"] == "Product Viewed"]
    assert all("dwell_seconds" in p["properties"] for p in events if p["event"] == "Product Viewed")
    first_ny = min(t for t, i in views if "destination:new-york" in i)
    last_krabi = max(t for t, i in views if "destination:krabi" in i)
    assert last_krabi < first_ny


def test_interests_drift_for_other_customers_too() -> None:
    drifted = 0
    for d in year()[1:]:
        dests = [next(i for i in p["properties"]["interests"] if i.startswith("destination:"))
                 for s in EVENT_SOURCES for p in sorted(d.payloads[s], key=lambda p: p["timestamp"])
                 if p.get("event") == "Product Viewed" and any(
                     i.startswith("destination:") for i in p["properties"]["interests"])]
        if len(set(dests)) >= 2 and dests[0] != dests[-1]:
            drifted += 1
    assert drifted >= 20


def test_story_customer_has_a_third_party_phone() -> None:
    ann = year()[0]
    (crm_row,) = ann.customers
    assert crm_row["email"] == STORY_EMAIL and crm_row["phone"] == ""
    (vendor,) = ann.enrichment
    assert vendor["email"] == STORY_EMAIL and normalize_phone(vendor["phone"], None) is not None
    assert sum(len(d.enrichment) for d in year()) >= 30


def test_commerce_service_and_consent_events() -> None:
    by_event: dict[str, list[dict]] = defaultdict(list)
    for _, p in all_payloads(year()):
        if p["type"] == "track":
            by_event[p["event"]].append(p)
    for name in ("Products Searched", "Product Viewed", "Product Added", "Order Completed", "Order Refunded",
                 "Case Opened", "Case Closed", "Consent Updated", "Email Opened"):
        assert by_event[name], name
    order = by_event["Order Completed"][0]["properties"]
    assert order["revenue"] == round(sum(x["price"] * x["quantity"] for x in order["products"]), 2)
    assert order["categories"] == sorted({x["category"] for x in order["products"]})
    consent = {(p["properties"]["purpose"], p["properties"]["status"]) for p in by_event["Consent Updated"]}
    assert consent == {("marketing", "granted"), ("marketing", "withdrawn")}
    # consent changes come from the customer's own logged-in session on the website or in the app, except the
    # double-opt-in confirmations: the newsletter service's backend reports the click (a server key)
    changes = [(s, p) for s, p in all_payloads(year()) if p.get("event") == "Consent Updated"]
    assert all(p.get("userId") and p.get("anonymousId") for s, p in changes if s in ("website", "app"))
    assert all(p["properties"].get("evidence", {}).get("method") == "double_opt_in"
               for s, p in changes if s == "newsletter")
    assert {s for s, _ in changes} == {"website", "app", "newsletter"}
    assert not any(p["properties"].get("evidence", {}).get("method") == "double_opt_in"
                   for s, p in changes if s != "newsletter")
    assert {p["context"]["channel"] for p in by_event["Case Opened"]} == {"call_center", "chat"}


# ---- takt demo, end to end ----
def _run_demo(ws: Path, *extra: str) -> str:
    r = CliRunner().invoke(main, ["demo", "--no-serve", "--customers", "200", "--days", "60", "--seed", "2",
                                  "--end", "2026-11-24T12:00:00", "-w", str(ws), *extra])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("transport", ["http", "testclient"])
def test_takt_demo_end_to_end(tmp_path: Path, transport: str) -> None:
    ws_path = tmp_path / "demo"
    out = _run_demo(ws_path, "--transport", transport)
    keys = json.loads((ws_path / KEYS_FILE).read_text())
    assert set(keys["write"]) == set(SOURCES)
    assert {s: v["provenance"] for s, v in keys["write"].items()} == SOURCES
    cfg = DemoConfig(end=datetime(2026, 11, 24, 12, tzinfo=UTC), customers=200, days=60, seed=2)
    expected_events = sum(d.event_count() for d in generate(cfg))
    assert f"events: {expected_events} sent" in out
    ws = open_workspace(ws_path)
    with ws.open_storage() as storage:
        for raw in (*(v["key"] for v in keys["write"].values()), keys["read"], keys["admin"]):
            k = storage.keys.lookup(raw)
            assert k is not None and k.active
        # (projections may add derived events under their own sources: only the demo's sources count here)
        events = [se.event for se in storage.log.iter() if se.event.source in SOURCES]
    by_source: dict[str, set[str]] = defaultdict(set)
    for ev in events:
        by_source[ev.source].add(ev.provenance)
    assert dict(by_source) == {s: {p} for s, p in SOURCES.items()}
    # the website and the app send with public keys, verifying their logged-in users; the rest are backends
    assert {s: v["trust"] for s, v in keys["write"].items()} == {
        s: "public" if s in ("website", "app") else "server" for s in SOURCES}
    site = [ev for ev in events if ev.source in ("website", "app")]
    assert all(ev.trust == ("verified" if ev.user_id else "public") for ev in site)
    assert {ev.trust for ev in site} == {"verified", "public"} and all("userHash" not in ev.context for ev in site)
    assert {ev.trust for ev in events if ev.source not in ("website", "app")} == {"server"}
    assert sum(1 for ev in events if ev.source in EVENT_SOURCES) == expected_events
    assert all(ev.kind == "record" for ev in events if ev.source not in EVENT_SOURCES)
    records = [ev for ev in events if ev.kind == "record"]
    assert {ev.properties["record_type"] for ev in records} == {"customer", "order", "case", "product"}
    ann_vendor = [ev for ev in records if ev.source == "enrichment-vendor"
                  and ev.properties["identifiers"].get("email") == STORY_EMAIL]
    assert len(ann_vendor) == 1 and ann_vendor[0].properties["contact_points_customer_given"] is False
    assert ann_vendor[0].properties["identifiers"]["phone"].startswith("+49")
    # one person, one profile: a customer the till knows by userId (their CRM number) and the CRM knows by crm_id
    # is one profile (a vendor's phone number must not keep them apart)
    till = {ev.user_id for ev in events if ev.source == "store" and ev.user_id}
    crm = {str(ev.properties["identifiers"]["crm_id"]) for ev in records
           if ev.source == "crm" and ev.properties.get("identifiers", {}).get("crm_id")}
    both = till & crm
    assert len(both) > 20
    from takt.profiles.config import ProfileConfig
    from takt.projections.runner import ProfileRunner

    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), lambda: datetime.now(UTC))
        runner.load()
        runner.catch_up()
        split = sorted(c for c in both if runner.find(f"user_id:{c}") != runner.find(f"crm_id:{c}"))
    assert not split, f"{len(split)} of {len(both)} customers are split: {split[:5]}"
    # running it again with --rebuild sends everything again and stores nothing new
    _run_demo(ws_path, "--transport", transport, "--rebuild")
    with ws.open_storage() as storage:
        assert sum(1 for se in storage.log.iter() if se.event.source in SOURCES) == len(events)
    assert json.loads((ws_path / KEYS_FILE).read_text()) == keys


def test_takt_demo_reuses_or_refuses_an_existing_workspace(tmp_path: Path) -> None:
    runner = CliRunner()
    ws = tmp_path / "tiny"
    args = ["demo", "--no-serve", "--customers", "5", "--days", "7", "-w", str(ws), "--transport", "testclient"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    state = json.loads((ws / "demo.json").read_text())
    assert state["customers"] == 5 and state["complete"] is True
    # no --end: the rerun takes the stored end, finds the same demo and leaves it alone
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "already holds this demo" in again.output, again.output
    other = runner.invoke(main, [*args[:3], "6", *args[4:]])
    assert other.exit_code == 2 and "holds a demo built with --customers 5" in other.output
    assert "differs in --customers" in other.output
    init(tmp_path / "shop")
    refused = runner.invoke(main, ["demo", "--no-serve", "-w", str(tmp_path / "shop")])
    assert refused.exit_code == 2 and "did not build" in refused.output
    assert not (tmp_path / "shop" / KEYS_FILE).exists()


def test_a_demo_ending_in_the_future_imports_every_good_row(tmp_path: Path) -> None:
    from takt.clock import FixedClock
    from takt.demo.feed import build_demo

    cfg = DemoConfig(end=datetime(2031, 3, 1, tzinfo=UTC), customers=30, days=30, seed=5)
    result = build_demo(tmp_path / "future", cfg, clock=FixedClock(END), transport="testclient")
    summaries = dict(result.imports)
    assert summaries["customers"].reasons.get("invalid_date", 0) == 0
    assert all(s.balanced for s in summaries.values())
    assert summaries["orders"].imported == sum(len(d.orders) for d in generate(cfg))


def test_newsletters_are_opened_only_while_email_consent_is_granted() -> None:
    checked = 0
    for d in year():
        events = sorted((p for s in ("website", "app") for p in d.payloads[s]
                         if p.get("event") in ("Consent Updated", "Email Opened")), key=lambda p: p["timestamp"])
        granted = False
        for p in events:
            if p["event"] == "Consent Updated" and p["properties"]["channel"] == "email":
                granted = p["properties"]["status"] == "granted"
            elif p["event"] == "Email Opened":
                assert granted, (d.crm_id, p["timestamp"])
                checked += 1
    assert checked > 100


def test_the_story_reaches_the_profile(tmp_path: Path) -> None:
    """Through build_projections: Ann's devices, CRM row and the vendor's phone are one profile whose top
    interest moved from the Krabi trip to New York."""
    from takt.clock import FixedClock
    from takt.demo.feed import build_demo
    from takt.profiles.config import ProfileConfig
    from takt.projections.runner import ProfileRunner

    build_demo(tmp_path / "story", DemoConfig(end=END, customers=20, days=365, seed=9), clock=FixedClock(END),
               transport="testclient")
    ws = open_workspace(tmp_path / "story")
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), FixedClock(END))
        assert runner.load()  # build_projections saved a snapshot
        profile = runner.profile_json(runner.find(f"email:{STORY_EMAIL}"))
    assert {"anonymous_id:anon-ann-laptop", "anonymous_id:anon-ann-phone", f"crm_id:{STORY_CRM_ID}",
            "phone:+4915123456789"} <= set(profile["identifiers"])
    (phone,) = [c for c in profile["contact_points"] if c["type"] == "phone"]
    assert phone["provenance"] == "third_party" and phone["customer_given"] is False
    keys = [i["key"] for i in profile["interests"][:4]]
    assert "destination:new-york" in keys and "destination:krabi" not in keys
    # the taxonomy turns her searches into destination interests: the top one moves from Krabi to New York
    assert profile["top_interest"] == "destination:new-york"
    assert [(s["from"], s["to"]) for s in profile["interest_shifts"]][-1] == (
        "destination:krabi", "destination:new-york")
    # the offer catalog ships with the demo: New York is her next best offer
    with ws.open_storage() as storage:
        from takt.models.offers.store import OfferStore

        assert {"nyc-weekend", "krabi-trip", "daypack"} <= {o.id for o in OfferStore(storage).current()}
    assert (tmp_path / "story" / "offers.yaml").exists()


def test_most_newsletter_sign_ups_are_confirmed_by_double_opt_in() -> None:
    """Without confirmations no one could be emailed for marketing (policy requires double opt-in)."""
    granted: set[str] = set()
    confirmed: set[str] = set()
    for _, p in all_payloads(year()):
        props = p.get("properties") or {}
        if p.get("event") != "Consent Updated" or props.get("channel") != "email" or props.get("status") != "granted":
            continue
        who = str(p.get("userId"))
        if (props.get("evidence") or {}).get("method") == "double_opt_in":
            confirmed.add(who)
        else:
            granted.add(who)
    assert granted, "the demo has newsletter sign-ups"
    assert confirmed <= granted, "a confirmation follows a sign-up"
    assert 0.6 < len(confirmed) / len(granted) < 0.95
