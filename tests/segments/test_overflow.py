"""Segment definitions whose windows, dates or numbers overflow, or that nest too deep, are refused with a
positioned error (issue 11 item 3); and evaluation — live, next change, explain, compiled SQL on DuckDB and
PostgreSQL — is overflow-safe for trees that got past no such check (stored before the limits existed) and for
far-future or far-past events and interests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from takt.profiles.interests import add_weight, decay
from takt.segments import ast as a
from takt.segments.compile import to_sql
from takt.segments.errors import SegmentError
from takt.segments.evaluate import evaluate, members, next_change
from takt.segments.explain import explain
from takt.segments.json_form import from_json, to_json
from takt.segments.parser import parse
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow
from tests.segments.db import DuckDB, Postgres
from tests.segments.strategies import NOW

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text,bad", [
    ("last_seen within 1000000000000d", "1000000000000d"),
    ("last_seen within 99999999999999999999999w", "99999999999999999999999w"),
    ('count(track "E" in last 5000000h) >= 1', "5000000h"),
    ("first_seen after 9999-12-31", "9999-12-31"),
    ("first_seen before 0001-01-01", "0001-01-01"),
    ('count(page between 0001-01-01 and 2026-01-01) >= 1', "0001-01-01"),
    ("trait.n > 100000000000000000000000000000", "100000000000000000000000000000"),
    ("trait.n > 1e400", "1e400"),
    ("trait.n in [1, -1e300]", "-1e300"),
])
def test_overflowing_windows_dates_and_numbers_are_refused_where_they_stand(text: str, bad: str) -> None:
    with pytest.raises(SegmentError) as e:
        parse(text)
    err = e.value.errors[0]
    assert err["line"] == 1 and err["column"] == text.index(bad) + 1, (err, e.value.message)
    assert "^" in e.value.message


@pytest.mark.parametrize("text", [
    "(" * 500 + "trait.a exists" + ")" * 500,
    "not " * 2000 + "trait.a exists",
    " and ".join(["(trait.a exists or (trait.b exists and not (trait.c exists" for _ in range(30)])
    + "))" * 30 + ")" * 30,
])
def test_nesting_deeper_than_the_limit_is_refused_with_a_position(text: str) -> None:
    with pytest.raises(SegmentError) as e:
        parse(text)
    assert e.value.errors[0]["line"] == 1 and "nest" in e.value.reason


def test_nesting_up_to_the_limit_parses() -> None:
    parse("(" * 30 + "trait.a exists" + ")" * 30)
    parse("not " * 30 + "trait.a exists")


def test_the_json_form_is_held_to_the_same_limits() -> None:
    within = to_json(parse("last_seen within 30d"))
    within["duration"] = "1000000000000d"
    with pytest.raises(SegmentError) as e:
        from_json(within)
    assert e.value.errors[0].get("field", "").startswith("$")
    deep = to_json(parse("trait.a exists"))
    for _ in range(100):
        deep = {"type": "not", "item": deep}
    with pytest.raises(SegmentError):
        from_json(deep)


# ---- evaluation is overflow-safe, whatever got stored ----
HUGE = a.Duration(10**12, "d")
LAST = a.ProfileTime("last_seen")
TREES = [
    a.Within(LAST, HUGE),
    a.After(LAST, date(9999, 12, 31)),
    a.Before(LAST, date(1, 1, 1)),
    a.Compare(a.Aggregate("count", a.EventSource("track", "E"), None, None, a.LastWindow(HUGE)), ">=", 1),
    a.Compare(a.Aggregate("count", a.EventSource("track", "E"), None, None,
                          a.BetweenWindow(date(1, 1, 1), date(9999, 12, 31))), ">=", 1),
    a.Compare(a.Interest("k"), ">", 0.5),
    a.Compare(a.Interest("k"), "<", 10**30),
    a.Within(a.Touchpoint("app", "last_at"), HUGE),
]
VIEWS = [
    ProfileView("future", first_seen=FAR_FUTURE, last_seen=FAR_FUTURE,
                events=(EventRow("track", FAR_FUTURE, event="E"),),
                interests=(InterestRow("k", 1.0, FAR_FUTURE, 30.0), InterestRow("k", 2.0, FAR_PAST, 1e300)),
                touchpoints={"app": TouchpointRow(1, FAR_FUTURE)}),
    ProfileView("past", first_seen=FAR_PAST, last_seen=FAR_PAST, events=(EventRow("track", FAR_PAST, event="E"),),
                interests=(InterestRow("k", 5.0, FAR_PAST, 1e-300), InterestRow("k", 1e300, NOW, 1e-9)),
                touchpoints={"app": TouchpointRow(1, FAR_PAST)}),
]


@pytest.mark.parametrize("tree", TREES, ids=lambda t: type(t).__name__)
def test_live_evaluation_next_change_and_explain_never_overflow(tree: a.Condition) -> None:
    for view in VIEWS:
        for now in (NOW, FAR_FUTURE, FAR_PAST + timedelta(days=1)):
            evaluate(tree, view, now)
            next_change(tree, view, now)
    assert explain(tree)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def db(request: pytest.FixtureRequest) -> DuckDB | Postgres:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")  # type: ignore[no-any-return]


@pytest.mark.parametrize("tree", TREES, ids=lambda t: type(t).__name__)
def test_compiled_sql_runs_and_agrees_with_the_evaluator(db: DuckDB | Postgres, tree: a.Condition) -> None:
    db.load(VIEWS)
    for now in (NOW, FAR_PAST + timedelta(days=1)):
        want = members(tree, VIEWS, now)
        for optimize in (False, True):
            sql = to_sql(tree, now=now, dialect_name=db.kind, optimize=optimize, pretty=False)
            assert db.members(sql) == want, sql


def test_interest_decay_with_huge_and_tiny_half_lives_and_far_times() -> None:
    far = FAR_FUTURE.timestamp()
    past = FAR_PAST.timestamp()
    for hl in (1e-300, 1.0, 1e300, float("inf")):
        for as_of, now in ((far, past), (past, far), (far, far)):
            v = decay(3.0, as_of, now, hl)
            assert 0.0 <= v <= 3.0
            score, _ = add_weight([3.0, as_of], 1.0, now, hl)
            assert 0.0 <= score <= 4.0


@pytest.mark.parametrize("command", ["count", "explain"])
def test_an_inline_definition_on_the_command_line_is_refused_with_its_position(tmp_path, command: str) -> None:
    from click.testing import CliRunner

    from takt.cli.main import main
    from takt.workspace import init

    ws = init(tmp_path / "ws")
    text = "last_seen within 1000000000000d"
    r = CliRunner().invoke(main, ["segment", command, text, "-w", str(ws.path)])
    assert r.exit_code != 0, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # a usage error, no traceback
    assert "line 1, column 18" in r.output and "100 years" in r.output, r.output
