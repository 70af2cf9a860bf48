"""Syntax tree → ``SELECT p.profile_id FROM profiles AS p WHERE …`` as a sqlglot expression tree.

The table contract (the same on every engine) is in ``docs/segments.md``. Each condition becomes a boolean
that is never NULL (the two-valued rules of :mod:`takt.segments.semantics`): trait conditions are correlated
``EXISTS`` subqueries, other atoms are wrapped in ``COALESCE(…, FALSE)``. Event aggregates are correlated
scalar subqueries; with ``optimize=True`` all aggregates over ``profile_events`` are merged into one grouped
subquery joined once (:class:`_MergedEvents`) — the same members, one scan.

``now`` is a parameter: windows become timestamp literals computed from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlglot import exp

from takt.segments import ast as a
from takt.segments import semantics as s
from takt.segments.check import operand_type
from takt.segments.dialects import Dialect, dialect
from takt.segments.errors import SegmentError
from takt.segments.functions import FUNCTIONS, FunctionContext, FunctionRegistry
from takt.segments.resolve import SegmentLookup, resolve

PROFILES = "profiles"
TRAITS = "profile_traits"
INTERESTS = "profile_interests"
TOUCHPOINTS = "profile_touchpoints"
EVENTS = "profile_events"


def compile_segment(
    node: a.Condition,
    *,
    now: datetime,
    dialect_name: str = "duckdb",
    segments: SegmentLookup | None = None,
    functions: FunctionRegistry | None = None,
    optimize: bool = True,
) -> exp.Select:
    """The query selecting the members' ``profile_id`` at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    d = dialect(dialect_name)
    compiler = _Compiler(d, now, functions or FUNCTIONS, optimize)
    where = compiler.cond(resolve(node, segments))
    query = exp.select(exp.column("profile_id", "p")).from_(exp.to_table(PROFILES).as_("p"))
    query = compiler.merged.join_into(query) if compiler.merged is not None else query
    return query.where(where)


def to_sql(
    node: a.Condition,
    *,
    now: datetime,
    dialect_name: str = "duckdb",
    segments: SegmentLookup | None = None,
    functions: FunctionRegistry | None = None,
    optimize: bool = True,
    pretty: bool = True,
) -> str:
    q = compile_segment(node, now=now, dialect_name=dialect_name, segments=segments, functions=functions,
                        optimize=optimize)
    return dialect(dialect_name).sql(q, pretty=pretty)


def _lit(v: a.Value) -> exp.Expression:
    if isinstance(v, bool):
        return exp.Literal.string("true" if v else "false")
    if isinstance(v, str):
        return exp.Literal.string(v)
    return exp.Literal.number(str(v) if isinstance(v, int) else repr(float(v)))


def _coalesce(e: exp.Expression, default: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=e, expressions=[default])


def _never_null(pred: exp.Expression) -> exp.Expression:
    return _coalesce(pred, exp.false())


def _cmp(left: exp.Expression, op: str, right: exp.Expression) -> exp.Expression:
    cls: dict[str, Callable[..., exp.Expression]] = {
        "=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
    return cls[op](this=left, expression=right)


def _and(*items: exp.Expression) -> exp.Expression:
    return cast(exp.Expression, exp.and_(*items, copy=False))


def _or(*items: exp.Expression) -> exp.Expression:
    return cast(exp.Expression, exp.or_(*items, copy=False))


class _Compiler:
    def __init__(self, d: Dialect, now: datetime, functions: FunctionRegistry, optimize: bool):
        self.d = d
        self.now = now
        self.functions = functions
        self.pid = exp.column("profile_id", "p")
        self.n = 0
        self.merged: _MergedEvents | None = _MergedEvents(self) if optimize else None

    def alias(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def ts(self, t: datetime) -> exp.Expression:
        return self.d.timestamp(t)

    # ---- conditions
    def cond(self, node: a.Condition, event: str | None = None) -> exp.Expression:
        if isinstance(node, a.And):
            return _and(*(exp.paren(self.cond(i, event), copy=False) for i in node.items))
        if isinstance(node, a.Or):
            return _or(*(exp.paren(self.cond(i, event), copy=False) for i in node.items))
        if isinstance(node, a.Not):
            return exp.Not(this=exp.paren(self.cond(node.item, event), copy=False))
        if isinstance(node, a.InSegment):
            raise SegmentError(f"segment {node.name!r} was not resolved", path=node.name)
        if isinstance(node, a.CallCondition):
            return _never_null(self.call(node.call))
        left = node.left
        if isinstance(left, a.TraitRef):
            return self.trait_exists(left, lambda text: self.atom(node, text, "json"))
        if isinstance(left, a.PropertyRef):
            if event is None:
                raise SegmentError("properties.… outside an event filter", path="$")
            text = self.d.json_text(exp.column("properties", event), left.path)
            return _never_null(self.atom(node, text, "json"))
        value = self.operand(left)
        return _never_null(self.atom(node, value, operand_type(left, self.functions)))

    def atom(self, node: a.Condition, x: exp.Expression, t: str) -> exp.Expression:
        """The predicate of an atomic condition over the value ``x`` of type ``t`` (may be NULL)."""
        if isinstance(node, a.Exists):
            return exp.Not(this=exp.Is(this=x, expression=exp.Null()))
        if isinstance(node, a.Compare):
            if t == "json" and s.is_number(node.right):
                return _cmp(self.d.numeric(x), node.op, _lit(node.right))
            return _cmp(x, node.op, _lit(node.right))
        if isinstance(node, a.InList):
            nums = [v for v in node.values if s.is_number(v)]
            texts = [v for v in node.values if not s.is_number(v)]
            parts = []
            if texts:
                parts.append(exp.In(this=x.copy(), expressions=[_lit(v) for v in texts]))
            if nums:
                target = self.d.numeric(x) if t == "json" else x.copy()
                parts.append(exp.In(this=target, expressions=[_lit(v) for v in nums]))
            return parts[0] if len(parts) == 1 else _or(*parts)
        if isinstance(node, a.Contains):
            return exp.GT(this=exp.StrPosition(this=x, substr=exp.Literal.string(node.needle)),
                          expression=exp.Literal.number(0))
        if isinstance(node, a.Within):
            lower = s.shift(self.now, -node.duration.seconds)
            return _and(exp.GT(this=x.copy(), expression=self.ts(lower)),
                        exp.LTE(this=x.copy(), expression=self.ts(self.now)))
        if isinstance(node, a.Before):
            return exp.LT(this=x, expression=self.ts(s.day_start(node.day)))
        if isinstance(node, a.After):
            return exp.GTE(this=x, expression=self.ts(s.day_end(node.day)))
        raise AssertionError(node)

    def trait_exists(self, ref: a.TraitRef, pred: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
        t = self.alias("t")
        conds: list[exp.Expression] = [
            exp.EQ(this=exp.column("profile_id", t), expression=self.pid.copy()),
            exp.EQ(this=exp.column("name", t), expression=exp.Literal.string(ref.name)),
        ]
        if ref.provenance is not None:
            conds.append(exp.EQ(this=exp.column("provenance", t), expression=exp.Literal.string(ref.provenance)))
        conds.append(pred(self.d.json_text(exp.column("value", t), ())))
        sub = exp.select(exp.Literal.number(1)).from_(exp.to_table(TRAITS).as_(t)).where(_and(*conds))
        return exp.Exists(this=sub)

    # ---- operands (values that may be NULL)
    def operand(self, node: a.Operand) -> exp.Expression:
        if isinstance(node, a.Aggregate):
            if self.merged is not None:
                return self.merged.ref(node)
            return self.aggregate_subquery(node)
        if isinstance(node, a.Interest):
            i = self.alias("i")
            days = exp.Div(
                this=exp.paren(exp.Sub(this=exp.Literal.number(repr(self.now.timestamp())),
                                       expression=self.d.epoch(exp.column("as_of", i))), copy=False),
                expression=exp.Literal.number("86400.0"))
            # semantics.decayed: the age at least 0, the exponent at least MIN_DECAY_EXPONENT (no overflow for a
            # far-future as_of; no PostgreSQL underflow error for a far-past one)
            age = exp.Greatest(this=exp.Literal.number("0.0"), expressions=[days], ignore_nulls=True)
            exponent = exp.Greatest(
                this=exp.Literal.number(repr(s.MIN_DECAY_EXPONENT)),
                expressions=[exp.Div(this=exp.Neg(this=age), expression=exp.column("half_life_days", i))],
                ignore_nulls=True)
            power = exp.Pow(this=exp.Literal.number("2.0"), expression=exponent)
            value = exp.Mul(this=exp.column("score", i), expression=power)
            return _coalesce(self.scalar(exp.Max(this=value), INTERESTS, i, "key", node.key),
                             exp.Literal.number("0.0"))
        if isinstance(node, a.Touchpoint):
            tp = self.alias("tp")
            col = exp.column(node.field, tp)
            sub = self.scalar(exp.Max(this=col), TOUCHPOINTS, tp, "touchpoint", node.touchpoint)
            return _coalesce(sub, exp.Literal.number(0)) if node.field == "count" else sub
        if isinstance(node, a.TopInterest):
            return exp.column("top_interest", "p")
        if isinstance(node, a.ProfileTime):
            name = "interest_shifted_at" if node.field == "interest_shifted" else node.field
            return exp.column(name, "p")
        if isinstance(node, a.Call):
            return self.call(node)
        raise SegmentError(f"{type(node).__name__} cannot be used here", path="$")

    def scalar(self, select: exp.Expression, table: str, alias: str, key_col: str, key: str) -> exp.Expression:
        where = _and(exp.EQ(this=exp.column("profile_id", alias), expression=self.pid.copy()),
                     exp.EQ(this=exp.column(key_col, alias), expression=exp.Literal.string(key)))
        return exp.Subquery(this=exp.select(select).from_(exp.to_table(table).as_(alias)).where(where))

    def call(self, node: a.Call) -> exp.Expression:
        spec = self.functions.get(node.name)
        if spec is None:
            raise SegmentError(f"unknown function {node.name!r}", path="$")
        return spec.compile(node.args, FunctionContext(self.pid.copy(), self.now, self.d.name))

    # ---- event aggregates
    def event_filter(self, node: a.Aggregate, e: str) -> exp.Expression:
        """Whether the event row ``e`` counts for ``node`` (source, window, where)."""
        conds: list[exp.Expression] = [
            exp.EQ(this=exp.column("kind", e), expression=exp.Literal.string(node.source.kind))]
        if node.source.name is not None:
            col = "event" if node.source.kind == "track" else "name"
            conds.append(exp.EQ(this=exp.column(col, e), expression=exp.Literal.string(node.source.name)))
        lower, inclusive, upper = s.window_bounds(node.window, self.now)
        ts = exp.column("ts", e)
        if lower is not None:
            cls = exp.GTE if inclusive else exp.GT
            conds.append(cls(this=ts.copy(), expression=self.ts(lower)))
        conds.append(exp.LTE(this=ts.copy(), expression=self.ts(upper)))
        if node.where is not None:
            conds.append(exp.paren(self.cond(node.where, event=e), copy=False))
        return _and(*conds)

    def measure(self, node: a.Aggregate, e: str) -> exp.Expression | None:
        """The per-event value aggregated (``None``: count rows)."""
        if node.prop is None:
            return None
        text = self.d.json_text(exp.column("properties", e), node.prop)
        return text if node.func == "count" else self.d.numeric(text)

    def aggregate_expr(self, func: str, value: exp.Expression | None) -> exp.Expression:
        if value is None:
            return exp.Count(this=exp.Star())
        cls: Any = {"count": exp.Count, "sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[func]
        return cast(exp.Expression, cls(this=value))

    def aggregate_subquery(self, node: a.Aggregate) -> exp.Expression:
        e = self.alias("e")
        agg = self.aggregate_expr(node.func, self.measure(node, e))
        where = _and(exp.EQ(this=exp.column("profile_id", e), expression=self.pid.copy()),
                     self.event_filter(node, e))
        sub = exp.Subquery(this=exp.select(agg).from_(exp.to_table(EVENTS).as_(e)).where(where))
        return _coalesce(sub, exp.Literal.number(0)) if node.func == "sum" else sub


class _MergedEvents:
    """The optimization: every aggregate over ``profile_events`` as one column of one grouped subquery::

        LEFT JOIN (SELECT ev.profile_id, COUNT(CASE WHEN <filter 1> THEN 1 END) AS agg1, ...
                   FROM profile_events AS ev WHERE <filter 1> OR ... GROUP BY ev.profile_id) AS evagg
               ON evagg.profile_id = p.profile_id

    An identical aggregate used twice is computed once.
    """

    ALIAS = "ev"
    JOINED = "evagg"

    def __init__(self, compiler: _Compiler):
        self.compiler = compiler
        self.columns: list[tuple[str, exp.Expression]] = []
        self.filters: list[exp.Expression] = []
        self.seen: dict[Any, str] = {}

    def ref(self, node: a.Aggregate) -> exp.Expression:
        key = (node.func, node.source, node.prop, node.where, node.window)
        name = self.seen.get(key)
        if name is None:
            c = self.compiler
            e = self.ALIAS
            filt = c.event_filter(node, e)
            value = c.measure(node, e)
            picked = exp.Case(ifs=[exp.If(this=filt.copy(), true=value if value is not None else exp.Literal.number(1))])
            func = node.func if value is not None else "count"
            name = f"agg{len(self.columns) + 1}"
            self.columns.append((name, c.aggregate_expr(func, picked)))
            self.filters.append(filt)
            self.seen[key] = name
        col = exp.column(name, self.JOINED)
        return _coalesce(col, exp.Literal.number(0)) if node.func in ("count", "sum") else col

    def join_into(self, query: exp.Select) -> exp.Select:
        if not self.columns:
            return query
        e = self.ALIAS
        sub = (
            exp.select(exp.column("profile_id", e), *(exp.alias_(x, n) for n, x in self.columns))
            .from_(exp.to_table(EVENTS).as_(e))
            .where(_or(*(exp.paren(f, copy=False) for f in self.filters)))
            .group_by(exp.column("profile_id", e))
        )
        on = exp.EQ(this=exp.column("profile_id", self.JOINED), expression=exp.column("profile_id", "p"))
        return query.join(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(self.JOINED))),
                          on=on, join_type="left")
