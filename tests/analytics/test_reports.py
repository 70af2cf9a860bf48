"""Touchpoints and paths against a plain Python reading of the same events; small groups are suppressed."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from takt.analytics.attribution import attribution
from takt.analytics.config import DEFAULT_PURPOSES, AnalyticsConfig
from takt.analytics.paths import paths
from takt.analytics.privacy import suppress
from takt.analytics.scope import Scope
from takt.analytics.touchpoints import touchpoints
from takt.segments import parse
from tests.analytics.support import END, T0, duckdb_engine, is_interaction, journeys, random_people

EVERY = AnalyticsConfig(min_group_size=1)


def test_touchpoints_count_events_and_people_per_touchpoint_and_purpose() -> None:
    people = random_people(11, 120)
    start = T0 + timedelta(days=10)
    events: Counter[tuple[str, str]] = Counter()
    who: dict[tuple[str, str], set[str]] = {}
    for p in people:
        for t in p.touches:
            if is_interaction(t) and start <= t.at < END:
                purpose = "browse" if t.kind == "page" else DEFAULT_PURPOSES.get(t.event or "", "other")
                events[(t.touchpoint, purpose)] += 1
                who.setdefault((t.touchpoint, purpose), set()).add(p.pid)
    with duckdb_engine(people) as engine:
        report = touchpoints(engine, Scope(start, END), EVERY)
    got = {(r["touchpoint"], r["purpose"]): (r["events"], r["people"]) for r in report["by_purpose"]}
    assert got == {k: (n, len(who[k])) for k, n in events.items()}
    assert report["events"] == sum(events.values())
    assert {"service", "search", "message response", "buy", "browse"} <= {p for _, p in got}
    assert sum(r["events"] for r in report["hour_of_week"]) == report["events"]
    assert sum(r["events"] for r in report["trend"]) == report["events"]
    assert all(0 <= r["hour_of_week"] < 168 for r in report["hour_of_week"])
    assert sum(r["events"] for r in report["hour_of_week_by_touchpoint"]) == report["events"]
    converters = {r["touchpoint"] for r in report["converters"] if r["group"] == "converters"}
    assert converters and all(0 < r["share"] <= 1 for r in report["converters"])


def test_a_segment_limits_the_people() -> None:
    people = random_people(12, 90)
    german = {p.pid for p in people if p.country == "DE"}
    with duckdb_engine(people) as engine:
        report = touchpoints(engine, Scope(T0, END, segment=parse('trait.country = "DE"'), label="de"), EVERY)
        credits = attribution(engine, Scope(T0, END, segment=parse('trait.country = "DE"')), EVERY)
    assert report["people"] == len({p.pid for p in people if p.pid in german
                                    and any(is_interaction(t) for t in p.touches)})
    assert credits["conversions"] == len(journeys(people, T0, END, 30, german))


def test_paths_are_the_collapsed_steps_before_each_conversion() -> None:
    people = random_people(13, 150)
    expected: Counter[tuple[str, ...]] = Counter()
    for _, steps, _ in journeys(people, T0, END, 30):
        if steps:
            tps = tuple(s.touchpoint for s in steps)
            expected[("…", *tps[-3:]) if len(tps) > 3 else tps] += 1
    with duckdb_engine(people) as engine:
        report = paths(engine, Scope(T0, END), EVERY, days=30, length=3, top=1000)
        top = paths(engine, Scope(T0, END), EVERY, days=30, length=3, top=2)["paths"]
    got = {tuple(p["path"]): p["conversions"] for p in report["paths"]}
    assert got == dict(expected)
    assert report["conversions"] - report["without_touches"] == sum(expected.values())
    assert [p["conversions"] for p in top] == sorted(expected.values(), reverse=True)[:2]


@pytest.mark.parametrize("k", [5, 20])
def test_no_report_shows_a_group_smaller_than_the_minimum(k: int) -> None:
    people = random_people(14, 150)
    config = AnalyticsConfig(min_group_size=k)
    with duckdb_engine(people) as engine:
        tp = touchpoints(engine, Scope(T0, END), config)
        pa = paths(engine, Scope(T0, END), config, top=1000)
        at = attribution(engine, Scope(T0, END), config)
        full = touchpoints(engine, Scope(T0, END), EVERY)
    for section in ("by_touchpoint", "by_purpose", "hour_of_week", "hour_of_week_by_touchpoint", "trend",
                    "converters"):
        assert all(r["people"] >= k for r in tp[section]), section
        small = sum(1 for r in full[section] if r["people"] < k)
        assert tp["suppressed"][section] >= small, section
        assert len(tp[section]) + tp["suppressed"][section] == len(full[section]), section
    assert tp["suppressed"]["hour_of_week_by_touchpoint"] > 0 and any("not shown" in n for n in tp["notes"])
    assert all(r["people"] >= k for r in pa["paths"]) and pa["suppressed"] > 0
    assert all(r["people"] >= k for r in at["touchpoints"])


def test_a_scope_smaller_than_the_minimum_shows_nothing() -> None:
    people = random_people(15, 30)
    config = AnalyticsConfig(min_group_size=50)
    with duckdb_engine(people) as engine:
        tp = touchpoints(engine, Scope(T0, END), config)
        pa = paths(engine, Scope(T0, END), config)
        at = attribution(engine, Scope(T0, END), config)
    assert tp["people"] is None and tp["by_touchpoint"] == [] and "fewer than 50 people" in tp["notes"][0]
    assert pa["paths"] == [] and pa["conversions"] is None
    assert at["touchpoints"] == [] and at["conversions"] is None


def test_one_hidden_row_takes_the_next_smallest_with_it() -> None:
    rows = [{"people": 3}, {"people": 60}, {"people": 55}, {"people": 80}]
    shown, hidden = suppress(rows, 50)
    assert hidden == 2 and [r["people"] for r in shown] == [60, 80]
    shown, hidden = suppress(rows, 50, complementary=False)
    assert hidden == 1 and len(shown) == 3
