"""CLV on a workspace's orders: orders by profile after identity resolution, `takt clv fit` without a file,
`--save` / `takt clv score`, the store on both backends and the profile's ``clv`` section."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from takt import workspace as ws_mod
from takt.api.app import create_app
from takt.cli.main import main
from takt.clock import FixedClock
from takt.events.model import Event, StoredEvent
from takt.models.clv import fit_transactions
from takt.models.clv.store import ClvReader, clv_section, save_fit
from takt.models.clv.workspace import collect_orders, order_of
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def ev(mid: str, days: float, kind: str = "track", **kw: Any) -> Event:
    t = T0 + timedelta(days=days)
    return Event(kind=kind, message_id=mid, source="web", timestamp=t, received_at=t, **kw)


def order(mid: str, days: float, user: str | None = None, anon: str | None = None, **props: Any) -> Event:
    return ev(mid, days, event="Order Completed", user_id=user, anonymous_id=anon, properties=props)


def test_orders_are_what_the_profile_fold_counts() -> None:
    events = [
        order("a", 0, "u1", order_id="A1", revenue=50.0),
        order("b", 1, "u1", order_id="A1", revenue=50.0),  # the same order again: counted once
        order("c", 2, "u1", order_id="A2", total=20),  # total when there is no revenue
        ev("d", 3, kind="record", user_id="u1", properties={"record_type": "order", "row_key": "R9",
                                                            "status": "cancelled", "value": 99}),
        ev("e", 4, kind="record", user_id="u2", properties={"record_type": "order", "row_key": "R1", "value": 7}),
        ev("f", 5, event="Product Viewed", user_id="u1"),
        order("g", 6, "u3"),  # no id, no amount: an order worth 0
    ]
    stored = [StoredEvent(i + 1, e) for i, e in enumerate(events)]
    assert order_of(stored[3]) is None and order_of(stored[5]) is None
    df = collect_orders(stored, [("p1", [1, 2, 3, 4, 6]), ("p2", [5]), ("p3", [7])])
    assert df["customer_id"].tolist() == ["p1", "p1", "p2", "p3"]
    assert df["amount"].tolist() == [50.0, 20.0, 7.0, 0.0]
    assert df["order_id"].tolist()[:3] == ["A1", "A2", "R1"] and df["order_id"].isna().tolist()[3]
    assert str(df["date"].dt.tz) == "UTC"


def shop_events(n: int = 60, seed: int = 3) -> list[Event]:
    """People who browse anonymously, buy, log in later (so their first orders are anonymous until the
    merge) and buy again."""
    rng = random.Random(seed)
    out: list[Event] = []
    for p in range(n):
        anon, user = f"anon-{p}", f"user-{p}"
        day = rng.uniform(0, 60)
        out.append(order(f"o{p}-0", day, anon=anon, order_id=f"{p}-0", revenue=round(rng.uniform(10, 90), 2)))
        out.append(ev(f"id{p}", day + 0.1, kind="identify", user_id=user, anonymous_id=anon,
                      traits={"email": f"p{p}@example.com"}))
        for k in range(1, rng.randint(1, 7)):
            day += rng.expovariate(1 / 30)
            if day > 360:
                break
            out.append(order(f"o{p}-{k}", day, user=user, order_id=f"{p}-{k}", revenue=round(rng.uniform(10, 90), 2)))
    out.sort(key=lambda e: e.timestamp)
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = ws_mod.init(tmp_path / "ws")
    storage = DuckDBStorage(ws.duckdb_path)
    storage.log.append(shop_events())
    storage.close()
    return ws.path


def test_fit_without_a_file_uses_the_workspace_orders_by_profile(workspace: Path) -> None:
    r = CliRunner().invoke(main, ["clv", "fit", "-w", str(workspace), "--calibration-end", "2025-12-31",
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["n_customers"] == 60  # one customer per person: anonymous first orders joined their profile
    assert all(c["customer_id"].startswith("p_") for c in out["customers"])
    assert out["bg_nbd"]["log_likelihood"] < 0 and out["gamma_gamma"]["n_customers"] > 0
    # the same as fitting the orders by known person, written out by hand
    events = shop_events()
    rows = []
    for e in events:
        if e.event == "Order Completed":
            person = e.user_id or f"user-{e.anonymous_id.split('-')[1]}"  # type: ignore[union-attr]
            rows.append({"c": person, "d": e.timestamp, "m": e.properties["revenue"]})
    import pandas as pd

    expected = fit_transactions(pd.DataFrame(rows), customer_col="c", date_col="d", amount_col="m",
                                calibration_end=date(2025, 12, 31))
    assert out["bg_nbd"]["r"] == pytest.approx(expected.bg_nbd.r, rel=1e-6)
    assert out["bg_nbd"]["log_likelihood"] == pytest.approx(expected.bg_nbd.log_likelihood, rel=1e-9)
    assert sorted(c["clv"] for c in out["customers"]) == pytest.approx(sorted(expected.customers["clv"]))
    text = CliRunner().invoke(main, ["clv", "fit", "-w", str(workspace), "--calibration-end", "2025-12-31",
                                     "--top", "3"])
    assert text.exit_code == 0 and "BG/NBD" in text.output and "Top 3 customers by CLV" in text.output


def test_score_saves_clv_and_profiles_show_it(workspace: Path) -> None:
    r = CliRunner().invoke(main, ["clv", "score", "-w", str(workspace), "--calibration-end", "2025-12-31",
                                  "--horizon-weeks", "26", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["saved_fit_id"] == 1 and "customers" not in summary
    fit = CliRunner().invoke(main, ["clv", "fit", "-w", str(workspace), "--calibration-end", "2025-12-31",
                                    "--horizon-weeks", "26", "--json"])
    by_id = {c["customer_id"]: c for c in json.loads(fit.output.strip().splitlines()[-1])["customers"]}
    ws = ws_mod.open_workspace(workspace)
    storage = DuckDBStorage(ws.duckdb_path)
    try:
        _, secret = storage.keys.create("read", "r", now=T0)
        app = create_app(storage, load(None, env={}), FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
        with TestClient(app) as client:
            app.state.ctx.extras["profiles"].catch_up()
            h = {"Authorization": f"Bearer {secret.reveal()}"}
            prof = client.get("/v1/profiles", params={"identifier": "user_id:user-7"}, headers=h).json()
            clv = prof["clv"]
            want = by_id[prof["id"]]
            assert clv["clv"] == pytest.approx(want["clv"], rel=1e-6)
            assert clv["expected_purchases"] == pytest.approx(want["expected_purchases"], rel=1e-6)
            assert clv["p_alive"] == pytest.approx(want["p_alive"], rel=1e-6)
            assert clv["horizon_weeks"] == 26 and clv["calibration_end"] == "2025-12-31" and clv["fit_id"] == 1
    finally:
        storage.close()


def test_errors_name_the_problem(workspace: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["clv", "fit", "-w", str(workspace), "--customer-col", "x"])
    assert r.exit_code == 2 and "only apply to a FILE" in r.output
    f = tmp_path / "t.csv"
    f.write_text("c,d,m\na,2025-01-01,3\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["clv", "fit", str(f), "--save", "--customer-col", "c", "--date-col", "d",
                                  "--amount-col", "m", "--calibration-end", "2025-12-31"])
    assert r.exit_code == 2 and "--save" in r.output
    empty = ws_mod.init(tmp_path / "empty")
    r = CliRunner().invoke(main, ["clv", "fit", "-w", str(empty.path)])
    assert r.exit_code == 2 and "no orders" in r.output


def test_store_on_both_backends(storage: Any) -> None:
    import pandas as pd

    rows = []
    for e in shop_events(40, seed=5):  # orders by the known person, as in the workspace test
        if e.event == "Order Completed":
            who = e.user_id or f"user-{e.anonymous_id.split('-')[1]}"  # type: ignore[union-attr]
            rows.append({"c": "p_" + who.split("-")[1], "d": e.timestamp, "m": e.properties["revenue"]})
    fit = fit_transactions(pd.DataFrame(rows), customer_col="c", date_col="d", amount_col="m",
                           calibration_end=date(2025, 12, 31))
    reader = ClvReader(storage)
    assert reader.profile("p_3") is None and reader.latest_fit() is None
    assert save_fit(storage, fit, T0) == 1
    assert save_fit(storage, fit, T0 + timedelta(days=1)) == 2
    got = ClvReader(storage).profile("p_3")
    assert got is not None
    want = fit.customers.set_index("customer_id").loc["p_3"]
    assert got["clv"] == pytest.approx(float(want["clv"]), rel=1e-6) and got["fit_id"] == 2
    assert got["frequency"] == int(want["frequency"]) and got["T"] == pytest.approx(float(want["T"]), rel=1e-6)
    assert clv_section(storage, {"id": "p_nobody"}, T0) is None
    assert clv_section(storage, {"id": "p_4"}, T0)["clv"] > 0  # type: ignore[index]
