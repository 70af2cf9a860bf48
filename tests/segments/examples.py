"""The fixed example definitions: each parses, explains, compiles to a golden file per dialect and is part of
the differential tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow
from tests.segments.strategies import NOW

EXAMPLES: dict[str, str] = {
    "trait_equals": 'trait.country = "DE"',
    "trait_exists": "trait.email exists",
    "trait_provenance": "trait.email from customer_provided",
    "trait_provenance_compare": 'trait.country from crm_import = "AT"',
    "comparisons": 'trait.age >= 18 and trait.age < 65 and trait.country != "FR"',
    "in_list": 'trait.country in ["DE", "AT"]',
    "contains": 'trait.email contains "@example"',
    "boolean": 'not (trait.country = "DE" or trait.vip = true) and trait.age <= 40',
    "orders_last_365d": 'count(track "Order Completed" in last 365d) >= 2',
    "revenue_last_90d": 'sum(track "Order Completed".revenue in last 90d) > 100',
    "no_krabi_pages": 'count(page where properties.path contains "/krabi" in last 30d) = 0',
    "orders_between": 'count(track "Order Completed" between 2026-01-01 and 2026-03-31) >= 1',
    "avg_min_max": 'avg(track "Order Completed".revenue) > 20 and min(track "Order Completed".revenue) >= 5 '
                   'and max(track "Order Completed".revenue in last 365d) < 1000',
    "all_time_pages": 'count(page "Home") >= 1',
    "last_seen": "last_seen within 30d",
    "first_seen": "first_seen before 2026-01-01",
    "touchpoint": 'touchpoint("app").count >= 1',
    "interest": 'interest("destination:new-york") > 0.4',
    "top_interest": 'top_interest = "destination:new-york"',
    "interest_shifted": "interest_shifted within 7d",
    "segment_reference": 'in segment("buyers") and trait.country = "DE"',
    "explained": 'count(track "Order Completed" in last 365d) >= 2 and trait.country = "DE"',
}

FUNCTION_EXAMPLES: dict[str, str] = {
    "model_score": 'score("churn_30d") > 0.7',
    "clv_value_and_p_alive": 'clv("value") > 500 and clv("p_alive") < 0.3',
}
"""Examples over the models' tables (model_scores, clv_scores): golden SQL only (the differential databases have
no model tables; tests/test_segment_model_names.py runs them on workspaces)."""

SEGMENTS_TEXT: dict[str, str] = {"buyers": 'count(track "Order Completed") >= 1'}


# ---------------------------------------------------------------- a fixed dataset with hand-worked members
def _views() -> list[ProfileView]:
    now = NOW

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    def order(ts: datetime, revenue: object) -> EventRow:
        return EventRow("track", ts, event="Order Completed", properties={"revenue": revenue})

    def page(ts: datetime, name: str, path: str) -> EventRow:
        return EventRow("page", ts, name=name, properties={"path": path})

    ny, krabi = "destination:new-york", "destination:krabi"
    return [
        ProfileView(
            "ana", first_seen=datetime(2025, 6, 1, tzinfo=UTC), last_seen=ago(1), top_interest=ny,
            interest_shifted_at=ago(3),
            traits={"country": ("DE", "customer_provided"), "email": ("ana@example.com", "customer_provided"),
                    "age": (33, "observed")},
            interests=(InterestRow(ny, 0.9, ago(10), 30.0),),
            touchpoints={"app": TouchpointRow(2, ago(1))},
            events=(order(ago(5), 80), order(ago(50), 30), order(datetime(2026, 2, 10, 9, tzinfo=UTC), 5),
                    page(ago(3), "Krabi", "/krabi/beach")),
        ),
        ProfileView(
            "ben", first_seen=datetime(2024, 1, 1, tzinfo=UTC), last_seen=ago(45), top_interest=krabi,
            interest_shifted_at=ago(20),
            traits={"country": ("AT", "crm_import"), "email": ("ben@shop.test", "crm_import"),
                    "age": (70, "crm_import"), "vip": (True, "crm_import")},
            interests=(InterestRow(ny, 0.5, ago(60), 30.0),),
            touchpoints={"web": TouchpointRow(1, ago(45))},
            events=(order(ago(400), 500), page(ago(100), "Home", "/home")),
        ),
        ProfileView(
            "cem", first_seen=datetime(2026, 3, 1, tzinfo=UTC), last_seen=now,
            traits={"country": ("FR", "observed"), "age": ("17", "observed")},
            touchpoints={"app": TouchpointRow(0, None)},
            events=(order(ago(2), 150), order(ago(10), "abc")),
        ),
        ProfileView("dan"),
        ProfileView(
            "eva", first_seen=datetime(2026, 1, 1, tzinfo=UTC), last_seen=ago(30),
            traits={"country": ("DE", "crm_import"), "age": (40, "observed"), "email": (None, "customer_provided")},
            events=(page(ago(1), "Home", "/home"), order(ago(300), 1000), order(ago(200), 20)),
        ),
    ]


FIXTURE_VIEWS = _views()

EXPECTED: dict[str, set[str]] = {
    "trait_equals": {"ana", "eva"},
    "trait_exists": {"ana", "ben"},  # eva's email is JSON null: missing
    "trait_provenance": {"ana"},
    "trait_provenance_compare": {"ben"},
    "comparisons": {"ana", "eva"},  # cem's age is "17": numeric, too young
    "in_list": {"ana", "ben", "eva"},
    "contains": {"ana"},
    "boolean": {"cem"},  # not(...) holds for cem (no vip trait); dan has no age
    "orders_last_365d": {"ana", "cem", "eva"},
    "revenue_last_90d": {"ana", "cem"},  # 80 + 30; 150 + "abc" (not a number, ignored)
    "no_krabi_pages": {"ben", "cem", "dan", "eva"},
    "orders_between": {"ana", "eva"},  # 2026-02-10 and 2026-01-28
    "avg_min_max": {"ana", "cem"},  # ben: no order in 365d (max missing); eva: max 1000 is not < 1000
    "all_time_pages": {"ben", "eva"},
    "last_seen": {"ana", "cem"},  # eva was last seen exactly 30 days ago: not within
    "first_seen": {"ana", "ben"},  # eva: exactly 2026-01-01 00:00 is not before
    "touchpoint": {"ana"},
    "interest": {"ana"},  # 0.9 * 2^(-10/30) = 0.714; ben 0.5 * 2^(-2) = 0.125
    "top_interest": {"ana"},
    "interest_shifted": {"ana"},
    "segment_reference": {"ana", "eva"},
    "explained": {"ana", "eva"},
}
