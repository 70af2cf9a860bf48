"""The fixed example definitions: each parses, explains, compiles to a golden file per dialect and is part of
the differential tests."""

from __future__ import annotations

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

SEGMENTS_TEXT: dict[str, str] = {"buyers": 'count(track "Order Completed") >= 1'}
