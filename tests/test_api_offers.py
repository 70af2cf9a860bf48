"""The offer catalog and next-best-offer through the HTTP API, with a fixed clock and real profiles."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
AT = "2026-11-20T10:00:00Z"

KRABI = {"id": "krabi-islands", "title": "Island hopping in Krabi", "interests": ["destination:krabi"],
         "value": 900, "channels": ["email", "in_app"]}
NYC = {"id": "nyc-weekend", "title": "A long weekend in New York", "interests": ["destination:new-york"],
       "value": 700, "channels": ["email", "in_app"]}
BAG = {"id": "daypack", "title": "The 20 l daypack", "categories": ["Bags"], "value": 60,
       "products": ["sku-daypack"], "placements": ["cart"]}


@dataclass
class World:
    client: TestClient
    storage: DuckDBStorage
    keys: dict[str, str]
    app: Starlette

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def track(self, user: str, mid: str, event: str, ts: str, **props: Any) -> None:
        auth = {"Authorization": "Basic " + base64.b64encode(f"{self.keys['website']}:".encode()).decode()}
        r = self.client.post("/v1/track", headers=auth, json={"userId": user, "messageId": mid, "event": event,
                                                            "timestamp": ts, "properties": props})
        assert r.status_code == 200, r.text

    def put(self, body: Any, expect: int = 200, key: str = "admin") -> dict[str, Any]:
        r = self.client.post("/v1/offers", headers=self.bearer(key), json=body)
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]

    def nbo(self, expect: int = 200, key: str = "reader", **body: Any) -> dict[str, Any]:
        body.setdefault("at", AT)
        r = self.client.post("/v1/next-best-offer", headers=self.bearer(key), json=body)
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("read", "reader", None),
                             ("admin", "admin", None)]:
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        yield World(client, storage, keys, app)
    storage.close()


def searched(world: World, user: str, mid: str, ts: str, destination: str) -> None:
    world.track(user, mid, "Products Searched", ts, query=destination, interests=[f"destination:{destination}"])


def test_krabi_in_february_new_york_last_week_gets_new_york(world: World) -> None:
    world.put({"offers": [KRABI, NYC]})
    # Krabi, searched again and again in February; New York once, last week
    for i in range(6):
        searched(world, "kim", f"k{i}", f"2026-02-{10 + i:02d}T20:00:00Z", "krabi")
    searched(world, "kim", "n1", "2026-11-13T19:00:00Z", "new-york")
    out = world.nbo(profile="user_id:kim", placement="home_hero")
    ids = [o["offer_id"] for o in out["offers"]]
    assert ids == ["nyc-weekend", "krabi-islands"]
    top = out["offers"][0]["decomposition"]
    assert top["interest"]["key"] == "destination:new-york" and top["interest"]["normalized"] == 1.0
    assert top["propensity"] == 1.0 and top["propensity_source"] == "default" and top["value"] == 700
    assert out["offers"][0]["score"] == pytest.approx(top["propensity"] * top["relevance"] * top["value"])
    stale = out["offers"][1]["decomposition"]
    assert stale["interest"]["key"] == "destination:krabi" and stale["interest"]["normalized"] < 0.01


def test_business_rules_exclude_with_reasons(world: World) -> None:
    expired = {**NYC, "id": "summer-sale", "valid_until": "2026-09-01T00:00:00Z"}
    germans = {**NYC, "id": "de-only", "eligibility": 'trait.country = "DE"'}
    buyers = {**KRABI, "id": "repeat", "eligibility": 'count(track "Order Completed") >= 1'}
    world.put({"offers": [KRABI, expired, germans, buyers, BAG]})
    world.track("lea", "o1", "Order Completed", "2026-11-01T10:00:00Z", order_id="A1", revenue=60,
                products=[{"product_id": "sku-daypack", "category": "Bags"}])
    out = world.nbo(profile="user_id:lea", placement="cart", limit=10)
    assert [o["offer_id"] for o in out["offers"]] == ["krabi-islands", "repeat"]
    why = {e["offer_id"]: e["code"] for e in out["excluded"]}
    assert why == {"summer-sale": "expired", "de-only": "not_eligible", "daypack": "already_bought"}
    # placement: the daypack shows only in the cart
    other = world.nbo(profile="user_id:lea", placement="home_hero", limit=10)
    assert {e["offer_id"]: e["code"] for e in other["excluded"]}["daypack"] == "other_placement"


def test_outbound_intent_carries_the_contact_policy_decision(world: World) -> None:
    world.put({"offers": [KRABI, NYC]})
    searched(world, "max", "m1", "2026-11-18T19:00:00Z", "krabi")
    # no email address on record: every marketing offer is blocked, with the policy's reasons
    out = world.nbo(profile="user_id:max", intent="marketing", channels=["email"])
    assert out["offers"] == []
    blocked = {e["offer_id"]: e for e in out["excluded"]}
    assert blocked["krabi-islands"]["code"] == "contact_policy"
    assert blocked["krabi-islands"]["channels"] == ["email"] and "contact point" in blocked["krabi-islands"]["reason"]
    # the decision, once for the channel set both offers share
    assert len(out["policy"]) == 1 and out["policy"][0]["channels"] == ["email"]
    assert out["policy"][0]["allowed"] is False
    assert {r["code"] for r in out["policy"][0]["reasons"]} == {"no_contact_point"}
    # a receipt-like (transactional) intent is not what these offers are for
    tx = world.nbo(profile="user_id:max", intent="transactional", channels=["email"])
    assert {e["code"] for e in tx["excluded"]} == {"other_intent"}
    # in_app with a marketing grant: allowed, and the decision names the channel
    r = world.client.post("/v1/consent", headers=world.bearer("admin"),
                          json={"profile": "user_id:max", "purpose": "marketing", "channel": "in_app",
                                "status": "granted", "evidence": {"method": "checkbox"}})
    assert r.status_code == 200, r.text
    ok = world.nbo(profile="user_id:max", intent="marketing", channels=["email", "in_app"])
    assert ok["offers"][0]["offer_id"] == "krabi-islands"
    assert ok["offers"][0]["decision"]["allowed"] is True and ok["offers"][0]["decision"]["channel"] == "in_app"


def test_catalog_versions_and_errors(world: World) -> None:
    first = world.put(KRABI)
    assert first["offers"] == [{"id": "krabi-islands", "version": 1, "changed": True}]
    assert world.put(KRABI)["offers"][0] == {"id": "krabi-islands", "version": 1, "changed": False}
    assert world.put({**KRABI, "value": 950})["offers"][0]["version"] == 2
    got = world.client.get("/v1/offers/krabi-islands", headers=world.bearer("reader")).json()
    assert got["offer"]["value"] == 950 and [v["version"] for v in got["versions"]] == [2, 1]
    # a bad eligibility expression: a positioned segment-language error, and nothing stored
    bad = world.put({"offers": [NYC, {**KRABI, "id": "x", "eligibility": 'trait.country = "DE" andd x'}]},
                    expect=400)
    assert bad["code"] == "invalid_offer"
    err = bad["errors"][0]
    assert err["field"] == "offers[1].eligibility" and err["index"] == 1 and err["column"] == 22
    listed = world.client.get("/v1/offers", headers=world.bearer("reader")).json()
    assert [o["id"] for o in listed["offers"]] == ["krabi-islands"]
    # readers may not write; admins retire offers and the history stays
    world.put(NYC, expect=403, key="reader")
    r = world.client.delete("/v1/offers/krabi-islands", headers=world.bearer("admin"))
    assert r.status_code == 200 and r.json()["version"] == 3
    assert world.client.get("/v1/offers", headers=world.bearer("reader")).json()["offers"] == []
    gone = world.client.get("/v1/offers/krabi-islands", headers=world.bearer("reader")).json()
    assert gone["deleted"] is True and len(gone["versions"]) == 3
    assert world.client.delete("/v1/offers/krabi-islands", headers=world.bearer("admin")).status_code == 404


def test_request_errors(world: World) -> None:
    world.put(KRABI)
    searched(world, "ann", "a1", "2026-11-18T19:00:00Z", "krabi")
    both = world.nbo(expect=400, profile="user_id:ann", placement="home", intent="marketing")
    assert both["errors"][0]["field"] == "placement"
    assert world.nbo(expect=400, profile="user_id:ann", placement="home", limit=0)["errors"][0]["field"] == "limit"
    assert world.nbo(expect=400, profile="user_id:ann", intent="marketing", channels=["fax"])["code"]
    assert world.nbo(expect=400, profile="user_id:ann", placement="home", colour="red")["code"] == "unknown_field"
    assert world.nbo(expect=404, profile="user_id:nobody", placement="home")["code"] == "not_found"


def test_a_ranking_reflects_what_was_just_acknowledged(world: World) -> None:
    world.put({"offers": [KRABI, NYC]})
    searched(world, "joe", "j1", "2026-11-19T10:00:00Z", "krabi")
    assert world.nbo(profile="user_id:joe", placement="home")["offers"][0]["offer_id"] == "krabi-islands"
    for i in range(3):  # acknowledged, then ranked at once: no stale projection in between
        searched(world, "joe", f"j-ny-{i}", "2026-11-20T09:00:00Z", "new-york")
        out = {o["offer_id"]: o for o in world.nbo(profile="user_id:joe", placement="home")["offers"]}
        # each search adds weight 2 (an hour ago: decayed by 2^(-1/504))
        assert out["nyc-weekend"]["decomposition"]["interest"]["score"] == pytest.approx(2 * (i + 1), rel=1e-2)
    assert next(iter(out)) == "nyc-weekend"


def test_outbound_offers_work_once_an_address_is_suppressed(world: World) -> None:
    """Issue 12 item 3: the offers route built its policy settings without the workspace's suppression key, so
    once any address was suppressed every outbound ranking answered 500. Both routes now build them one way."""
    world.put({"offers": [KRABI, NYC]})
    auth = {"Authorization": "Basic " + base64.b64encode(f"{world.keys['website']}:".encode()).decode()}
    for user in ("ivy", "joe"):
        r = world.client.post("/v1/identify", headers=auth, json={
            "userId": user, "messageId": f"i-{user}", "traits": {"email": f"{user}@example.com"}})
        assert r.status_code == 200, r.text
        world.track(user, f"g-{user}", "Consent Updated", "2026-11-19T10:00:00Z", purpose="marketing",
                    channel="email", status="granted", evidence={"method": "double_opt_in"})
        searched(world, user, f"s-{user}", "2026-11-18T19:00:00Z", "krabi")
    r = world.client.post("/v1/suppression", headers=world.bearer("admin"),
                          json={"kind": "email", "value": "joe@example.com"})
    assert r.status_code == 200, r.text
    ivy = world.nbo(profile="user_id:ivy", intent="marketing", channels=["email"])
    assert ivy["offers"] and ivy["offers"][0]["decision"]["allowed"] is True
    joe = world.nbo(profile="user_id:joe", intent="marketing", channels=["email"])
    assert joe["offers"] == [] and {r["code"] for r in joe["policy"][0]["reasons"]} == {"suppressed"}
    # the same person, the same answer from decide
    d = world.client.post("/v1/decide", headers=world.bearer("reader"), json={
        "profile": "user_id:joe", "intent": "marketing", "channels": ["email"], "at": AT}).json()
    assert d["allowed"] is False and {r["code"] for r in d["reasons"]} == {"suppressed"}
