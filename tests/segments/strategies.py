"""Hypothesis strategies: segment trees (any valid tree, or ones over the test data's names) and small profiles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from takt.events.model import PROVENANCES
from takt.segments import ast as a
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------- any valid tree (for round trips)
texts = st.text(min_size=0, max_size=12)
names = st.text(min_size=1, max_size=10)
# numbers within what a definition may hold (takt.segments.limits.MAX_NUMBER)
finite = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False, width=64)
values: st.SearchStrategy[a.Value] = st.one_of(texts, st.integers(-10**12, 10**12), finite, st.booleans())
numbers: st.SearchStrategy[a.Value] = st.one_of(st.integers(-10**6, 10**6), finite)
durations = st.builds(a.Duration, st.integers(1, 1000), st.sampled_from(["h", "d", "w"]))
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


def _between() -> st.SearchStrategy[a.BetweenWindow]:
    return st.tuples(days, days).map(lambda p: a.BetweenWindow(min(p), max(p)))


windows = st.one_of(st.none(), st.builds(a.LastWindow, durations), _between())
paths = st.lists(names, min_size=1, max_size=3).map(tuple)


def _json_compare(left: st.SearchStrategy[a.Operand]) -> st.SearchStrategy[a.Condition]:
    eq = st.builds(a.Compare, left, st.sampled_from(["=", "!="]), values)
    order = st.builds(a.Compare, left, st.sampled_from(list(a.COMPARE_OPS)), numbers)
    return st.one_of(
        eq, order,
        st.builds(a.InList, left, st.lists(values, min_size=1, max_size=3).map(tuple)),
        st.builds(a.Contains, left, texts),
        st.builds(a.Exists, left),
    )


def _number_compare(left: st.SearchStrategy[a.Operand]) -> st.SearchStrategy[a.Condition]:
    return st.one_of(
        st.builds(a.Compare, left, st.sampled_from(list(a.COMPARE_OPS)), numbers),
        st.builds(a.InList, left, st.lists(numbers, min_size=1, max_size=3).map(tuple)),
        st.builds(a.Exists, left),
    )


def _time_cond(left: st.SearchStrategy[a.Operand]) -> st.SearchStrategy[a.Condition]:
    return st.one_of(st.builds(a.Within, left, durations), st.builds(a.Before, left, days),
                     st.builds(a.After, left, days), st.builds(a.Exists, left))


def _tree(atom: st.SearchStrategy[a.Condition], leaves: int = 6) -> st.SearchStrategy[a.Condition]:
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.builds(a.And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
            st.builds(a.Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
            st.builds(a.Not, inner),
        ),
        max_leaves=leaves,
    )


event_filters = _tree(_json_compare(st.builds(a.PropertyRef, paths)), leaves=3)
kinds = st.sampled_from(["track", "page", "screen", "identify", "identity.unmerge", "interest_shifted"])
aggregates = st.builds(
    a.Aggregate,
    st.sampled_from(list(a.AGGREGATE_FUNCS)),
    st.builds(a.EventSource, kinds, st.none() | texts),
    paths,
    st.none() | event_filters,
    windows,
) | st.builds(a.Aggregate, st.just("count"), st.builds(a.EventSource, kinds, st.none() | texts), st.none(),
              st.none() | event_filters, windows)

any_atom: st.SearchStrategy[a.Condition] = st.one_of(
    _json_compare(st.builds(a.TraitRef, names, st.none() | st.sampled_from(PROVENANCES))),
    _number_compare(aggregates),
    _number_compare(st.builds(a.Interest, texts)),
    st.builds(a.Compare, st.just(a.TopInterest()), st.sampled_from(["=", "!="]), texts),
    st.builds(a.Contains, st.just(a.TopInterest()), texts),
    _number_compare(st.builds(a.Touchpoint, texts, st.just("count"))),
    _time_cond(st.builds(a.Touchpoint, texts, st.just("last_at"))),
    _time_cond(st.builds(a.ProfileTime, st.sampled_from(list(a.PROFILE_TIMES)))),
    st.builds(a.InSegment, texts),
)
any_tree = _tree(any_atom)

# ---------------------------------------------------------------- trees over the test data (differential)
TRAITS = ("country", "age", "email", "vip", "nickname")
EVENTS = ("Order Completed", "Product Viewed")
PAGES = ("Home", "Krabi")
INTERESTS = ("destination:new-york", "destination:krabi")
TOUCHPOINTS = ("app", "web")
OFFSETS_DAYS = (-2, 0, 1, 7, 29, 30, 31, 89, 90, 91, 300, 364, 365, 366, 400)

d_strings = st.sampled_from(["DE", "AT", "FR", "a@example.com", "33", "x", "true", ""])
d_numbers = st.sampled_from([0, 1, 2, 3, 5, 18, 33, 40, 100, 2.5, -1])
d_values: st.SearchStrategy[a.Value] = st.one_of(d_strings, d_numbers, st.booleans())
d_durations = st.builds(a.Duration, st.sampled_from([1, 7, 30, 90, 365]), st.just("d")) | st.builds(
    a.Duration, st.sampled_from([1, 12, 48]), st.just("h"))
d_days = st.sampled_from([date(2025, 11, 24), date(2026, 1, 1), date(2026, 3, 31), date(2026, 10, 25),
                          date(2026, 11, 24), date(2026, 11, 25)])
d_windows = st.one_of(st.none(), st.builds(a.LastWindow, d_durations),
                      st.tuples(d_days, d_days).map(lambda p: a.BetweenWindow(min(p), max(p))))
d_props = st.sampled_from([("revenue",), ("path",), ("n",), ("nested", "k")])


def _d_json(left: st.SearchStrategy[a.Operand]) -> st.SearchStrategy[a.Condition]:
    return st.one_of(
        st.builds(a.Compare, left, st.sampled_from(["=", "!="]), d_values),
        st.builds(a.Compare, left, st.sampled_from(list(a.COMPARE_OPS)), d_numbers),
        st.builds(a.InList, left, st.lists(d_values, min_size=1, max_size=3).map(tuple)),
        st.builds(a.Contains, left, st.sampled_from(["/krabi", "@", "E", ""])),
        st.builds(a.Exists, left),
    )


def _d_number(left: st.SearchStrategy[a.Operand], nums: st.SearchStrategy[a.Value]) -> st.SearchStrategy[a.Condition]:
    return st.one_of(
        st.builds(a.Compare, left, st.sampled_from(list(a.COMPARE_OPS)), nums),
        st.builds(a.InList, left, st.lists(nums, min_size=1, max_size=2).map(tuple)),
        st.builds(a.Exists, left),
    )


d_sources = st.one_of(
    st.builds(a.EventSource, st.just("track"), st.none() | st.sampled_from(EVENTS)),
    st.builds(a.EventSource, st.just("page"), st.none() | st.sampled_from(PAGES)),
    st.builds(a.EventSource, st.just("identify")),
)
d_filters = _tree(_d_json(st.builds(a.PropertyRef, d_props)), leaves=2)
d_aggregates = st.builds(a.Aggregate, st.sampled_from(["sum", "avg", "min", "max", "count"]), d_sources, d_props,
                         st.none() | d_filters, d_windows) | st.builds(
    a.Aggregate, st.just("count"), d_sources, st.none(), st.none() | d_filters, d_windows)
d_interest_levels = st.sampled_from([0, 0.1, 0.25, 0.4, 0.9])

data_atom: st.SearchStrategy[a.Condition] = st.one_of(
    _d_json(st.builds(a.TraitRef, st.sampled_from(TRAITS), st.none() | st.sampled_from(PROVENANCES[:2]))),
    _d_number(d_aggregates, d_numbers),
    _d_number(st.builds(a.Interest, st.sampled_from(INTERESTS)), d_interest_levels),
    st.builds(a.Compare, st.just(a.TopInterest()), st.sampled_from(["=", "!="]), st.sampled_from(INTERESTS)),
    st.builds(a.InList, st.just(a.TopInterest()), st.lists(st.sampled_from(INTERESTS), min_size=1, max_size=2)
              .map(tuple)),
    st.builds(a.Exists, st.just(a.TopInterest())),
    _d_number(st.builds(a.Touchpoint, st.sampled_from(TOUCHPOINTS), st.just("count")), st.sampled_from([0, 1, 2])),
    st.builds(a.Within, st.builds(a.ProfileTime, st.sampled_from(list(a.PROFILE_TIMES))), d_durations),
    st.builds(a.Before, st.builds(a.ProfileTime, st.sampled_from(list(a.PROFILE_TIMES))), d_days),
    st.builds(a.After, st.builds(a.ProfileTime, st.sampled_from(list(a.PROFILE_TIMES))), d_days),
    st.builds(a.Within, st.builds(a.Touchpoint, st.sampled_from(TOUCHPOINTS), st.just("last_at")), d_durations),
    st.builds(a.After, st.builds(a.Touchpoint, st.sampled_from(TOUCHPOINTS), st.just("last_at")), d_days),
    st.just(a.InSegment("buyers")),
)
data_tree = _tree(data_atom, leaves=4)


# ---------------------------------------------------------------- profiles
def _time() -> st.SearchStrategy[datetime]:
    return st.builds(lambda d, h: NOW - timedelta(days=d, hours=h), st.sampled_from(OFFSETS_DAYS),
                     st.sampled_from([0, 0, 1, -1]))


trait_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["DE", "AT", "FR", "a@example.com", "b@shop.test", "33", "x", "true", ""]),
    st.sampled_from([18, 33, 40, 65, 2.5, 0, -1]),
    st.booleans(),
    st.none(),
)
prop_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([0, 1, 5, 20, 50, 80, 120, 2.5, -1]),
    st.sampled_from(["/krabi/beach", "/home", "abc", "12", "DE"]),
    st.booleans(),
    st.none(),
)
properties = st.dictionaries(st.sampled_from(["revenue", "path", "n"]), prop_values, max_size=3).flatmap(
    lambda d: st.one_of(st.just(d), st.builds(lambda v: {**d, "nested": {"k": v}}, prop_values)))

events = st.one_of(
    st.builds(lambda ts, name, props: EventRow("track", ts, event=name, properties=props),
              _time(), st.sampled_from(EVENTS), properties),
    st.builds(lambda ts, name, props: EventRow("page", ts, name=name, properties=props),
              _time(), st.none() | st.sampled_from(PAGES), properties),
    st.builds(lambda ts: EventRow("identify", ts), _time()),
)


@st.composite
def profiles(draw: st.DrawFn, n_max: int = 5) -> list[ProfileView]:
    n = draw(st.integers(1, n_max))
    out = []
    for i in range(n):
        traits = draw(st.dictionaries(st.sampled_from(TRAITS),
                                      st.tuples(trait_values, st.sampled_from(PROVENANCES)), max_size=4))
        interests = draw(st.lists(st.builds(InterestRow, st.sampled_from(INTERESTS),
                                            st.sampled_from([0.05, 0.3, 0.5, 0.8, 1.0]), _time(),
                                            st.sampled_from([7.0, 30.0])),
                                  max_size=2, unique_by=lambda r: r.key))
        tps = draw(st.dictionaries(st.sampled_from(TOUCHPOINTS),
                                   st.builds(TouchpointRow, st.integers(0, 3), st.none() | _time()), max_size=2))
        out.append(ProfileView(
            profile_id=f"p{i}",
            first_seen=draw(st.none() | _time()),
            last_seen=draw(st.none() | _time()),
            top_interest=draw(st.none() | st.sampled_from(INTERESTS)),
            interest_shifted_at=draw(st.none() | _time()),
            traits=traits,
            interests=tuple(interests),
            touchpoints=tps,
            events=tuple(draw(st.lists(events, max_size=6))),
        ))
    return out
