"""Offers: catalog validation and files, the versioned store on both backends, and the pure ranking."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from takt.errors import TaktError
from takt.models.offers.catalog import read_catalog, validate_catalog, validate_offer
from takt.models.offers.rank import PersonOffers, RankConfig, Request, rank
from takt.models.offers.store import CatalogCache, OfferStore
from takt.policy.decide import Decision
from takt.policy.messages import MessageRecord
from takt.policy.reasons import Reason
from takt.segments.view import ProfileView

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY = 86400.0
HALF_LIFE = 21 * DAY

KRABI = {"id": "krabi", "title": "Krabi", "interests": ["destination:krabi"], "value": 900}
NYC = {"id": "nyc", "title": "New York", "interests": ["Destination:New York"], "value": 700}
PLAIN = {"id": "socks", "title": "Hiking socks", "value": 20}


def person(interests: dict[str, list[float]], **kw: Any) -> PersonOffers:
    return PersonOffers(profile_id="p1", interests=interests, half_life=lambda k: HALF_LIFE,
                        view=ProfileView("p1", traits=kw.pop("traits", {})), **kw)


def at(days_ago: float) -> float:
    return NOW.timestamp() - days_ago * DAY


# Kim searched Krabi six times in February (weight 2 each, summed at the last search) and New York once,
# a week ago
KIM = {"destination:krabi": [12.0, at(280)], "destination:new-york": [2.0, at(7)]}


# ---- ranking ----
def test_decayed_interest_ranks_new_york_first_and_without_decay_krabi_would_win() -> None:
    offers = validate_catalog([KRABI, NYC, PLAIN])
    decayed = rank(offers, person(KIM), Request(NOW, placement="home"))
    assert [r.offer.id for r in decayed.offers] == ["nyc", "krabi", "socks"]
    nyc, krabi, socks = decayed.offers
    assert nyc.interest_normalized == 1.0 and nyc.relevance == 1.0 and nyc.score == 700.0
    assert krabi.interest_key == "destination:krabi" and krabi.interest_normalized < 0.001
    assert krabi.relevance == pytest.approx(0.1, abs=1e-3)  # the floor: Krabi's value alone carries it
    assert socks.relevance == 0.1 and socks.interest_key is None and socks.score == pytest.approx(2.0)
    # the same person with decay off: the stale February interest drives the offer
    stale = rank(offers, person(KIM), Request(NOW, placement="home"), config=RankConfig(decay=False))
    assert stale.offers[0].offer.id == "krabi"


def test_score_is_propensity_times_relevance_times_value() -> None:
    offers = validate_catalog([KRABI, {**NYC, "model": "purchase_30d:destination:new-york"}])
    props = {"nyc": (0.1, "model:x")}
    out = rank(offers, person(KIM), Request(NOW, placement="home"),
               propensity=lambda o: props.get(o.id, (1.0, "default")))
    by = {r.offer.id: r for r in out.offers}
    assert by["nyc"].score == pytest.approx(0.1 * 1.0 * 700)
    assert by["nyc"].propensity_source == "model:x"
    assert by["krabi"].score == pytest.approx(by["krabi"].relevance * 900)
    # a low propensity outweighs New York's fresher interest: 0.1 × 1.0 × 700 = 70 < ~0.1 × 900
    assert [r.offer.id for r in out.offers] == ["krabi", "nyc"]


def test_rules_validity_eligibility_bought_and_caps() -> None:
    offers = validate_catalog([
        {**KRABI, "valid_from": "2026-12-01T00:00:00Z"},
        {**NYC, "valid_until": "2026-11-01T00:00:00Z"},
        {"id": "de", "title": "DE", "value": 5, "eligibility": 'trait.country = "DE"'},
        {"id": "bag", "title": "Bag", "value": 5, "products": ["sku-1"]},
        {"id": "capped", "title": "Capped", "value": 5, "cap": {"max": 2, "days": 7}, "channels": ["email"]},
    ])
    msgs = [MessageRecord(f"m{i}", "email", "marketing", NOW - timedelta(days=i + 1), campaign="capped",
                          statuses=frozenset({"sent"})) for i in range(2)]
    p = person(KIM, traits={"country": ("FR", "customer_provided")}, purchased=frozenset({"sku-1"}),
               messages=msgs)
    allow = Decision(True, "email", "a@example.com", (Reason("allowed", "email"),))
    out = rank(offers, p, Request(NOW, intent="marketing", channels=("email",)), policy=lambda ch: allow)
    assert out.offers == ()
    assert {e.offer_id: e.code for e in out.excluded} == {
        "krabi": "not_yet_valid", "nyc": "expired", "de": "not_eligible", "bag": "already_bought",
        "capped": "cap_reached"}
    # a German who bought nothing and was not messaged: the eligible offers remain
    p2 = person(KIM, traits={"country": ("DE", "customer_provided")}, purchased=frozenset(), messages=[])
    out2 = rank(offers, p2, Request(NOW, intent="marketing", channels=("email",)), policy=lambda ch: allow)
    assert sorted(r.offer.id for r in out2.offers) == ["bag", "capped", "de"]
    assert all(r.decision is allow for r in out2.offers)


def test_policy_blocks_are_excluded_with_the_decision() -> None:
    offers = validate_catalog([KRABI, NYC])
    no = Decision(False, None, None, (Reason("no_consent", "email: no marketing consent on record"),))
    calls: list[tuple[str, ...]] = []

    def policy(ch: tuple[str, ...]) -> Decision:
        calls.append(ch)
        return no

    out = rank(offers, person(KIM), Request(NOW, intent="marketing", channels=("email",), limit=1), policy=policy)
    assert out.offers == () and [e.code for e in out.excluded] == ["contact_policy", "contact_policy"]
    assert out.excluded[0].decision is no and out.excluded[1].decision is no
    assert calls == [("email",)]  # asked once per set of channels


def test_limit_and_ties() -> None:
    offers = validate_catalog([{**PLAIN, "id": f"o{i}", "value": 10} for i in range(5)])
    out = rank(offers, person({}), Request(NOW, placement="home", limit=2))
    assert [r.offer.id for r in out.offers] == ["o0", "o1"] and out.considered == 5


# ---- validation and files ----
def test_every_problem_is_named() -> None:
    with pytest.raises(TaktError) as e:
        validate_offer({"id": "bad id", "value": -1, "channels": ["fax"], "interests": ["krabi"],
                        "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-11-01T00:00:00Z",
                        "cap": {"max": 0, "days": 3}, "colour": "red"})
    fields = {d["field"] for d in e.value.errors}
    assert fields == {"id", "title", "value", "channels", "interests", "valid_until", "cap.max", "colour"}
    assert e.value.code == "invalid_offer"


def test_eligibility_error_is_positioned() -> None:
    with pytest.raises(TaktError) as e:
        validate_offer({**KRABI, "eligibility": "count(track \"Order Completed\") >= "})
    d = e.value.errors[0]
    assert d["field"] == "eligibility" and d["line"] == 1 and d["column"] > 30
    assert "^" in d["reason"]


def test_catalog_files(tmp_path: Path) -> None:
    (tmp_path / "o.yaml").write_text(
        "offers:\n  - id: krabi\n    title: Krabi\n    interests: [destination:krabi]\n    value: 900\n"
        "    cap: {max: 2, days: 30}\n  - id: nyc\n    title: New York\n    value: 700\n", encoding="utf-8")
    (tmp_path / "o.json").write_text(json.dumps([KRABI, NYC]), encoding="utf-8")
    (tmp_path / "o.csv").write_text("id,title,interests,value,channels,cap\n"
                                    "krabi,Krabi,destination:krabi|activity:diving,900,email|in_app,2/30\n",
                                    encoding="utf-8")
    y = read_catalog(tmp_path / "o.yaml")
    assert [o.id for o in y] == ["krabi", "nyc"] and y[0].cap is not None and y[0].cap.max == 2
    assert [o.interests for o in read_catalog(tmp_path / "o.json")][1] == ("destination:new-york",)
    c = read_catalog(tmp_path / "o.csv")[0]
    assert c.interests == ("destination:krabi", "activity:diving") and c.channels == ("email", "in_app")
    assert c.value == 900.0 and c.cap is not None and c.cap.days == 30
    (tmp_path / "bad.yaml").write_text("offers: [\n", encoding="utf-8")
    with pytest.raises(TaktError, match="not valid YAML at line"):
        read_catalog(tmp_path / "bad.yaml")
    (tmp_path / "dup.json").write_text(json.dumps([KRABI, KRABI]), encoding="utf-8")
    with pytest.raises(TaktError) as e:
        read_catalog(tmp_path / "dup.json")
    assert "duplicate id" in e.value.errors[0]["reason"]
    with pytest.raises(TaktError, match="unknown offer file type"):
        (tmp_path / "o.txt").write_text("x", encoding="utf-8")
        read_catalog(tmp_path / "o.txt")


# ---- the store, on both backends ----
def test_store_versions_replace_and_tombstones(storage: Any) -> None:
    store = OfferStore(storage)
    assert store.current() == [] and store.revision() == 0
    w = store.put(validate_catalog([KRABI, NYC]), NOW)
    assert [(x.id, x.version, x.changed) for x in w] == [("krabi", 1, True), ("nyc", 1, True)]
    assert [x.changed for x in store.put(validate_catalog([KRABI]), NOW)] == [False]
    store.put(validate_catalog([{**KRABI, "value": 1000}, PLAIN]), NOW + timedelta(hours=1), replace=True)
    cur = {o.id: o for o in store.current()}
    assert sorted(cur) == ["krabi", "socks"] and cur["krabi"].version == 2 and cur["krabi"].value == 1000
    assert cur["krabi"].updated_at == NOW + timedelta(hours=1)
    assert [h["deleted"] for h in store.history("nyc")] == [True, False]
    # a retired offer comes back with a new version
    assert store.put(validate_catalog([NYC]), NOW)[0].version == 3
    store.delete("socks", NOW)
    with pytest.raises(TaktError) as e:
        store.get("socks")
    assert e.value.status == 404
    with pytest.raises(TaktError):
        store.delete("socks", NOW)
    cache = CatalogCache(store, ttl=3600)
    assert sorted(o.id for o in cache.offers()) == ["krabi", "nyc"]
    store.put(validate_catalog([PLAIN]), NOW)
    assert sorted(o.id for o in cache.offers()) == ["krabi", "nyc"]  # within the ttl: not re-read
    cache.invalidate()
    assert sorted(o.id for o in cache.offers()) == ["krabi", "nyc", "socks"]
    # the stored definition round-trips, eligibility included
    store.put(validate_catalog([{**PLAIN, "eligibility": 'trait.country = "DE"'}]), NOW)
    assert store.get("socks").condition is not None


def test_propensity_comes_from_the_model_factory_scores(storage: Any) -> None:
    import numpy as np

    from takt.models.offers.propensity import propensity_for
    from takt.models.scoring import registry_of

    offers = {o.id: o for o in validate_catalog([
        {**KRABI, "model": "purchase_30d:destination:krabi"}, {**NYC, "model": "not-trained"}, PLAIN])}
    registry_of(storage).write_scores("purchase_30d:destination:krabi", 3, ["p1", "p2"], np.array([0.25, 0.9]),
                                      NOW)
    p = propensity_for(storage, "p1")
    assert p(offers["krabi"]) == (0.25, "model:purchase_30d:destination:krabi@v3")
    assert p(offers["nyc"])[0] == 1.0 and p(offers["nyc"])[1].startswith("default")
    assert p(offers["socks"]) == (1.0, "default")
    ranked = rank(list(offers.values()), person(KIM), Request(NOW, placement="home"), propensity=p)
    assert {r.offer.id: r.propensity for r in ranked.offers}["krabi"] == 0.25


def test_offers_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from takt.cli.main import main
    from takt.workspace import init

    ws = init(tmp_path / "ws").path
    f = tmp_path / "offers.yaml"
    f.write_text("offers:\n  - {id: krabi, title: Krabi, interests: [destination:krabi], value: 900}\n"
                 "  - {id: nyc, title: New York, interests: [destination:new-york], value: 700}\n", encoding="utf-8")
    run = CliRunner().invoke
    r = run(main, ["offers", "load", "-w", str(ws), str(f)])
    assert r.exit_code == 0, r.output
    assert "2 new, 0 changed (new version), 0 unchanged" in r.output
    f.write_text("offers:\n  - {id: krabi, title: Krabi, interests: [destination:krabi], value: 950}\n",
                 encoding="utf-8")
    r = run(main, ["offers", "load", "-w", str(ws), str(f), "--replace"])
    assert r.exit_code == 0 and "0 new, 1 changed" in r.output and "retired 1: nyc" in r.output
    listed = json.loads(run(main, ["offers", "list", "-w", str(ws), "--json"]).output)
    assert [(o["id"], o["version"], o["value"]) for o in listed] == [("krabi", 2, 950.0)]
    shown = json.loads(run(main, ["offers", "show", "-w", str(ws), "nyc"]).output)
    assert [v["deleted"] for v in shown["versions"]] == [True, False]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "title": "X", "value": 1, "eligibility": "trait.country = "}]),
                   encoding="utf-8")
    r = run(main, ["offers", "load", "-w", str(ws), str(bad)])
    assert r.exit_code == 2 and "offers[0].eligibility" in r.output and "^" in r.output
    assert run(main, ["offers", "load", "-w", str(ws), str(bad), "--check"]).exit_code == 2
    r = run(main, ["offers", "delete", "-w", str(ws), "krabi"])
    assert r.exit_code == 0 and "retired krabi (version 3)" in r.output
    assert run(main, ["offers", "delete", "-w", str(ws), "krabi"]).exit_code == 2
