"""Computed traits: a profile value defined in the segment language's aggregate syntax.

::

    lifetime_value = sum(track "Order Completed".revenue)
    favourite_store = mode(track "Order Completed".store in last 365d)
    orders_90d = count(track "Order Completed" in last 90d)
    last_plan = last(track "Plan Changed".plan where properties.trial = false)

The right-hand side is one aggregate: ``count``, ``sum``, ``avg``, ``min``, ``max`` (the numbers of the language,
:mod:`takt.segments.semantics`), ``mode`` (the most frequent text form of the property; ties go to the smallest
text in code-point order) or ``last`` (the property's text form on the latest matching event; ties of time go to
the largest text). Events, property filters and windows are the language's own. Values that would be missing
(``avg`` of nothing, ``mode`` of nothing) leave the trait out.

A computed trait is a trait with provenance ``computed``: segments use it as ``trait.lifetime_value > 100``.
It is evaluated the same way live (:func:`compute`, on a :class:`~takt.segments.view.ProfileView` at ``now``)
and in SQL (:func:`computed_sql`: rows of ``profile_traits`` for DuckDB, PostgreSQL and Spark, built as a
sqlglot expression tree; :func:`materialize_computed` puts them into a database's contract tables, replacing
any stored trait of the same name, as the live view does).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlglot import exp

from takt import settings as settings_mod
from takt.segments import ast as a
from takt.segments import semantics as s
from takt.segments.check import check
from takt.segments.compile import EVENTS, PROFILES, TRAITS, _Compiler
from takt.segments.dialects import dialect
from takt.segments.errors import SegmentError
from takt.segments.evaluate import _Eval
from takt.segments.functions import FUNCTIONS
from takt.segments.lexer import T
from takt.segments.parser import Parser
from takt.segments.view import ProfileView
from takt.segments.vocabulary import Vocabulary

COMPUTED_TRAITS = "profile_computed_traits"
COMPUTED_NAMES = "profile_computed_names"

COMPUTED_PROVENANCE = "computed"
COMPUTED_FUNCS = ("count", "sum", "avg", "min", "max", "mode", "last")
TEXT_FUNCS = ("mode", "last")

SETTING = settings_mod.register(
    "segments.computed_traits", {},
    "Computed traits: a table of name = definition, e.g. lifetime_value = 'sum(track \"Order Completed\".revenue)'. "
    "Functions count, sum, avg, min, max, mode, last over the segment language's event aggregates "
    "(docs/segments-live.md). They appear as traits with provenance 'computed'.",
    kind="table",
)


@dataclass(frozen=True, slots=True)
class ComputedTrait:
    """``name = func(source.prop where ... window)``."""

    name: str
    func: str
    source: a.EventSource
    prop: tuple[str, ...] | None = None
    where: a.Condition | None = None
    window: a.Window | None = None

    @property
    def aggregate(self) -> a.Aggregate:
        """The language's aggregate over the same events (``mode``/``last`` read as ``count`` of the property)."""
        func = self.func if self.func in a.AGGREGATE_FUNCS else "count"
        return a.Aggregate(cast(a.AggregateFunc, func), self.source, self.prop, self.where, self.window)


def parse_computed(text: str, *, name: str | None = None, vocabulary: Vocabulary | None = None) -> ComputedTrait:
    """Parse ``name = func(...)`` (or just ``func(...)`` with ``name`` given); errors point into ``text``."""
    p = Parser(text, FUNCTIONS, vocabulary or Vocabulary())
    if p.tok.type is T.EOF:
        raise p.error("the computed trait is empty", hint='e.g. lifetime_value = sum(track "Order Completed".revenue)')
    if p.tok.type is T.IDENT and p.peek().type is T.OP and p.peek().text == "=":
        given = p.advance().text
        if name is not None and name != given:
            raise p.error(f"the definition names {given!r} but is stored as {name!r}", p.tokens[p.i - 1])
        name = given
        p.advance()
    if name is None:
        raise p.error("a computed trait needs a name", hint='e.g. lifetime_value = sum(track "Order Completed".revenue)')
    if not name or not all(c.isalnum() or c in "_-:" for c in name):
        raise SegmentError(f"invalid computed trait name {name!r}: use letters, digits, _ - :", path="name")
    tok = p.tok
    if not (tok.type is T.IDENT and tok.text in COMPUTED_FUNCS and p.peek().is_punct("(")):
        raise p.error(f"expected one of {', '.join(COMPUTED_FUNCS)}(...), found {tok.describe()}",
                      hint='e.g. sum(track "Order Completed".revenue in last 365d)')
    agg = p.aggregate()
    if p.tok.type is not T.EOF:
        raise p.error(f"unexpected {p.tok.describe()} after the aggregate")
    func = tok.text
    if func != "count" and agg.prop is None:
        raise p.error(f"{func}(...) needs a property: {func}({agg.source.kind} \"...\".property)", tok)
    trait = ComputedTrait(name, func, agg.source, agg.prop, agg.where, agg.window)
    # type-check the event filter and names through the language's checker (as a condition using it)
    check(a.Exists(trait.aggregate), vocabulary=vocabulary, functions=FUNCTIONS)
    return trait


def from_settings(table: Mapping[str, Any]) -> list[ComputedTrait]:
    """The computed traits of the ``segments.computed_traits`` setting (``{name: definition}``)."""
    out = []
    for name, text in sorted(table.items()):
        if not isinstance(text, str):
            raise SegmentError(f"computed trait {name!r}: the definition must be a string", path=name)
        out.append(parse_computed(text, name=name))
    return out


# ---------------------------------------------------------------- live
def compute(trait: ComputedTrait, view: ProfileView, now: datetime) -> Any:
    """The trait's value for one profile at ``now`` (``None``: missing). Numbers are ``int`` for ``count`` and
    ``float`` otherwise; ``mode`` and ``last`` give the property's text form."""
    ev = _Eval(view, now, FUNCTIONS)
    if trait.func in a.AGGREGATE_FUNCS:
        value = ev.aggregate(trait.aggregate)
        if value is None:
            return None
        return int(value) if trait.func == "count" else float(value)
    assert trait.prop is not None
    picked = [(e.ts, s.text_of(s.get_path(e.properties, trait.prop))) for e in ev.matching(trait.aggregate)]
    texts = [(ts, t) for ts, t in picked if t is not None]
    if not texts:
        return None
    if trait.func == "mode":
        counts = Counter(t for _, t in texts)
        return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return max(texts)[1]  # last: latest time, then largest text


def compute_all(traits: Sequence[ComputedTrait], view: ProfileView, now: datetime) -> dict[str, Any]:
    """Every computed trait with a value: ``{name: value}``."""
    out = {}
    for t in traits:
        v = compute(t, view, now)
        if v is not None:
            out[t.name] = v
    return out


def with_computed(traits: Sequence[ComputedTrait], view: ProfileView, now: datetime) -> ProfileView:
    """The view with the computed traits added (provenance ``computed``), replacing stored traits of the same
    name; a computed trait without a value removes a stored one of its name (as in SQL)."""
    if not traits:
        return view
    values = compute_all(traits, view, now)
    names = {t.name for t in traits}
    merged = {k: v for k, v in view.traits.items() if k not in names}
    merged.update({k: (v, COMPUTED_PROVENANCE) for k, v in values.items()})
    return dataclasses.replace(view, traits=merged)


# ---------------------------------------------------------------- SQL
def _json_string(x: exp.Expression) -> exp.Expression:
    """The JSON text of a string: ``"`` + the text with ``\\`` and ``"`` escaped + ``"``."""
    esc = exp.Anonymous(this="REPLACE", expressions=[
        exp.Anonymous(this="REPLACE", expressions=[x, exp.Literal.string("\\"), exp.Literal.string("\\\\")]),
        exp.Literal.string('"'), exp.Literal.string('\\"')])
    return exp.Concat(expressions=[exp.Literal.string('"'), esc, exp.Literal.string('"')])


def _ordered_text(x: exp.Expression, dialect_name: str) -> exp.Expression:
    """Text compared by code point on every engine (PostgreSQL's default collation may follow a locale)."""
    if dialect_name == "postgres":
        return exp.Collate(this=x, expression=exp.Identifier(this="C", quoted=True))
    return x


def computed_query(trait: ComputedTrait, *, now: datetime, dialect_name: str = "duckdb") -> exp.Select:
    """``SELECT profile_id, name, value, provenance`` rows of ``profile_traits`` for one computed trait at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    d = dialect(dialect_name)
    c = _Compiler(d, now, FUNCTIONS, optimize=False)
    name = exp.alias_(exp.Literal.string(trait.name), "name")
    prov = exp.alias_(exp.Literal.string(COMPUTED_PROVENANCE), "provenance")
    agg = trait.aggregate
    if trait.func in a.AGGREGATE_FUNCS:
        value = c.aggregate_subquery(agg)
        inner = (exp.select(exp.column("profile_id", "p"), exp.alias_(value, "x"))
                 .from_(exp.to_table(PROFILES).as_("p")))
        text = exp.cast(exp.column("x", "q"), exp.DataType.build("text"))
        return (exp.select(exp.column("profile_id", "q"), name, exp.alias_(text, "value"), prov)
                .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("q"))))
                .where(exp.Not(this=exp.Is(this=exp.column("x", "q"), expression=exp.Null()))))
    assert trait.prop is not None
    e = "e"
    v = d.json_text(exp.column("properties", e), trait.prop)
    filt = exp.and_(c.event_filter(agg, e), exp.Not(this=exp.Is(this=v.copy(), expression=exp.Null())), copy=False)
    if trait.func == "mode":
        inner = (exp.select(exp.column("profile_id", e), exp.alias_(v.copy(), "v"),
                            exp.alias_(exp.Count(this=exp.Star()), "n"))
                 .from_(exp.to_table(EVENTS).as_(e)).where(filt)
                 .group_by(exp.column("profile_id", e), v.copy()))
        order = [exp.Ordered(this=exp.column("n", "g"), desc=True),
                 exp.Ordered(this=_ordered_text(exp.column("v", "g"), d.name), desc=False)]
    else:
        inner = (exp.select(exp.column("profile_id", e), exp.alias_(v.copy(), "v"), exp.alias_(exp.column("ts", e), "ts"))
                 .from_(exp.to_table(EVENTS).as_(e)).where(filt))
        order = [exp.Ordered(this=exp.column("ts", "g"), desc=True),
                 exp.Ordered(this=_ordered_text(exp.column("v", "g"), d.name), desc=True)]
    rn = exp.Window(this=exp.RowNumber(), partition_by=[exp.column("profile_id", "g")],
                    order=exp.Order(expressions=order))
    ranked = (exp.select(exp.column("profile_id", "g"), exp.column("v", "g"), exp.alias_(rn, "rn"))
              .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("g")))))
    return (exp.select(exp.column("profile_id", "r"), name, exp.alias_(_json_string(exp.column("v", "r")), "value"),
                       prov)
            .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=exp.to_identifier("r"))))
            .where(exp.EQ(this=exp.column("rn", "r"), expression=exp.Literal.number(1))))


def computed_union(traits: Sequence[ComputedTrait], *, now: datetime, dialect_name: str = "duckdb") -> exp.Expression:
    """All computed traits' rows as one ``UNION ALL`` query (a sqlglot tree)."""
    if not traits:
        raise ValueError("no computed traits")
    q: exp.Expression = computed_query(traits[0], now=now, dialect_name=dialect_name)
    for t in traits[1:]:
        q = exp.union(q, computed_query(t, now=now, dialect_name=dialect_name), distinct=False)
    return q


def computed_sql(traits: Sequence[ComputedTrait], *, now: datetime, dialect_name: str = "duckdb",
                 pretty: bool = False) -> str:
    """The rows of :func:`computed_union` as SQL text of the dialect."""
    return dialect(dialect_name).sql(computed_union(traits, now=now, dialect_name=dialect_name), pretty=pretty)


def materialize_computed(cursor: Any, traits: Sequence[ComputedTrait], *, now: datetime,
                         dialect_name: str = "duckdb", workspace_layout: bool = False) -> None:
    """Replace the computed traits' rows in ``profile_traits`` on a DB-API cursor/connection with ``execute``
    (the contract tables must exist): stored traits of the same names are removed first, as in the live view.

    ``workspace_layout``: the tables a workspace keeps (``takt.storage.duckdb_segment_tables``), where
    ``profile_traits`` is a view of the stored traits not named in ``profile_computed_names`` plus the rows of
    ``profile_computed_traits``: those two are replaced instead, and the stored rows stay."""
    d = dialect(dialect_name)
    if workspace_layout:
        for table in (COMPUTED_TRAITS, COMPUTED_NAMES):
            cursor.execute(d.sql(exp.Delete(this=exp.to_table(table))))
        if not traits:
            return
        names_q = exp.union(*[exp.select(exp.alias_(exp.Literal.string(t.name), "name")) for t in traits],
                            distinct=False) if len(traits) > 1 else exp.select(
                                exp.alias_(exp.Literal.string(traits[0].name), "name"))
        cursor.execute(d.sql(exp.Insert(this=exp.to_table(COMPUTED_NAMES), expression=names_q)))
        cursor.execute(d.sql(exp.Insert(this=exp.to_table(COMPUTED_TRAITS),
                                        expression=computed_union(traits, now=now, dialect_name=dialect_name))))
        return
    if not traits:
        return
    names = [exp.Literal.string(t.name) for t in traits]
    delete = exp.Delete(this=exp.to_table(TRAITS),
                        where=exp.Where(this=exp.In(this=exp.column("name"), expressions=names)))
    cursor.execute(d.sql(delete))
    insert = exp.Insert(this=exp.to_table(TRAITS),
                        expression=computed_union(traits, now=now, dialect_name=dialect_name))
    cursor.execute(d.sql(insert))
