"""Point-in-time features and labels: hand-checked values, and no leakage from after the cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlglot

from takt.clock import FixedClock
from takt.events.model import Event
from takt.models import features as fx
from takt.models.factory import workspace_connection
from takt.models.features import FeatureSpec, compute
from takt.models.targets import Target, baseline_scores, discover, labels
from takt.settings import Settings
from takt.storage.duckdb import DuckDBStorage

C = datetime(2026, 6, 1, tzinfo=UTC)
_n = [0]


def event(user: str, at: datetime, name: str, **props: Any) -> Event:
    _n[0] += 1
    return Event(kind="track", message_id=f"f-{_n[0]}", source="web", timestamp=at, received_at=at,
                 user_id=user, event=name, properties=props, context={"channel": "web"})


def order(user: str, at: datetime, cats: list[str], revenue: float, oid: str) -> Event:
    return event(user, at, "Order Completed", order_id=oid, revenue=revenue, categories=cats)


def history() -> list[Event]:
    d = timedelta(days=1)
    return [
        order("u1", C - 40 * d, ["tents", "backpacks"], 100.0, "o1"),
        order("u1", C - 5 * d, ["tents"], 50.0, "o2"),
        event("u1", C - 2 * d, "Product Viewed", interests=["activity:camping"]),
        event("u2", C - 100 * d, "Email Opened", topic="newsletter"),
        event("u2", C - 10 * d, "Case Opened", case_id="k1"),
        event("u3", C - 1 * d, "Consent Updated", status="withdrawn"),
    ]


def future() -> list[Event]:
    d = timedelta(days=1)
    return [
        order("u1", C + 3 * d, ["tents"], 80.0, "o3"),
        order("u9", C + 1 * d, ["backpacks"], 30.0, "o4"),  # a new person after the cutoff
        event("u2", C, "Email Opened", topic="newsletter"),  # exactly at the cutoff: not before it
        event("u3", C + 2 * d, "Product Viewed", interests=["activity:camping"]),
    ]


SPEC = FeatureSpec(channels=("web",), categories=("tents", "backpacks"), interests=("activity:camping",),
                   interest_half_life_days=30.0)


def open_ws(tmp_path: Path, events: list[Event]) -> tuple[DuckDBStorage, Any]:
    storage = DuckDBStorage(tmp_path / "takt.duckdb")
    storage.log.append(events)
    return storage, workspace_connection(storage, Settings(), FixedClock(C + timedelta(days=60)))


def row(fm: fx.FeatureMatrix, user_profile: dict[str, str], user: str) -> dict[str, float]:
    i = fm.index()[user_profile[user]]
    return dict(zip(fm.names, fm.X[i].tolist(), strict=True))


def profiles_by_user(storage: DuckDBStorage, con: Any) -> dict[str, str]:
    users = {se.position: se.event.user_id for se in storage.log.read(0, 10_000)}
    return {users[pos]: p for p, pos in con.execute("SELECT profile_id, position FROM profile_event_map").fetchall()
            if users.get(pos)}


def test_features_by_hand(tmp_path: Path) -> None:
    storage, con = open_ws(tmp_path, history())
    with storage:
        fm = compute(con, C, SPEC)
        who = profiles_by_user(storage, con)
        assert len(fm) == 3
        u1 = row(fm, who, "u1")
        assert u1["orders_total"] == 2 and u1["revenue_total"] == 150.0 and u1["avg_order_value"] == 75.0
        assert u1["recency_days"] == pytest.approx(2.0) and u1["tenure_days"] == pytest.approx(40.0)
        assert u1["days_since_order"] == pytest.approx(5.0)
        assert u1["orders_90d"] == 2 and u1["orders_365d"] == 2 and u1["events_30d"] == 2
        assert u1["cat_orders:tents"] == 2 and u1["cat_orders:backpacks"] == 1
        assert u1["cat_days_since:tents"] == pytest.approx(5.0)
        assert u1["cat_days_since:backpacks"] == pytest.approx(40.0)
        assert u1["interest:activity:camping"] == pytest.approx(2 ** (-2 / 30))
        assert u1["tp_365d:web"] == 3
        u2 = row(fm, who, "u2")
        assert u2["email_opens_total"] == 1 and u2["email_opens_90d"] == 0
        assert u2["cases_total"] == 1 and u2["days_since_case"] == pytest.approx(10.0)
        assert np.isnan(u2["days_since_order"]) and u2["cat_orders:tents"] == 0
        assert np.isnan(u2["cat_days_since:tents"])
        assert row(fm, who, "u3")["consent_withdrawals"] == 1


def test_no_leakage_from_after_the_cutoff(tmp_path: Path) -> None:
    storage, con = open_ws(tmp_path, history())
    with storage:
        before = compute(con, C, SPEC)
        storage.log.append(future())
        con = workspace_connection(storage, Settings(), FixedClock(C + timedelta(days=60)))
        after = compute(con, C, SPEC)
        assert after.names == before.names
        assert list(after.profile_ids) == list(before.profile_ids)
        np.testing.assert_array_equal(after.X, before.X)
        later = compute(con, C + timedelta(days=5), SPEC)
        assert len(later) == 4  # the future events do count for a later cutoff
        assert not np.array_equal(later.X[:3], before.X)


def test_labels_only_read_the_horizon_after_the_cutoff(tmp_path: Path) -> None:
    storage, con = open_ws(tmp_path, history() + future())
    with storage:
        fm = compute(con, C, SPEC)
        who = profiles_by_user(storage, con)
        targets = discover(con, C, 30)
        names = [t.name for t in targets]
        assert "purchase_30d:category:tents" in names and "churn_30d" in names
        assert "response_30d:topic:newsletter" in names and "unsubscribe_30d" in names
        y = labels(con, targets, fm)
        assert "u9" not in {u for u, p in who.items() if p in fm.index()}  # u9 had nothing before the cutoff
        i1, i2, i3 = (fm.index()[who[u]] for u in ("u1", "u2", "u3"))
        assert y["purchase_30d:category:tents"][[i1, i2, i3]].tolist() == [1, 0, 0]
        assert y["purchase_30d:category:backpacks"].sum() == 0  # u9's order belongs to nobody in fm
        assert y["response_30d:topic:newsletter"][i2] == 0  # the open at exactly C is not after it
        assert y["churn_30d"][[i1, i2, i3]].tolist() == [0, 1, 0]  # u2's open at exactly C is not after it
        short = [Target("churn_2d", "churn", 2)]
        # u1 orders on day 3 (outside 2 days), u3 views on day 2 (inside: the window is (C, C + 2d])
        assert labels(con, short, fm)["churn_2d"][[i1, i2, i3]].tolist() == [1, 1, 0]
        base = baseline_scores(con, targets, fm)
        assert base["purchase_30d:category:tents"][i1] == pytest.approx(2 + 1 / (1 + 5))
        assert base["churn_30d"][i3] == pytest.approx(1.0)


def test_feature_sql_is_portable() -> None:
    for q in (fx.feature_query(C, SPEC), fx.category_query(C, ["tents"]),
              fx.interest_query(C, ["activity:camping"], 30.0)):
        for dialect in ("duckdb", "postgres", "spark"):
            text = q.sql(dialect=dialect)
            assert sqlglot.parse_one(text, read=dialect) is not None
            assert "1780272000.0" in text  # the cutoff as epoch seconds, a literal
