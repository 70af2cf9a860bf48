"""Point-in-time features: one row per profile as of a ``cutoff``, computed from the event log in SQL.

Nothing at or after the cutoff is read: every query filters ``t < cutoff`` (event time), so the same code
serves training (features at an earlier cutoff, labels after it) and scoring (features at ``now``). A test
appends events after a cutoff and shows the features unchanged.

How it runs. :func:`prepare` flattens the log once into two work tables of the model factory (DuckDB SQL over the
segment contract tables ``profile_event_map`` and ``events``, see ``docs/segments.md``):

- ``takt_model_events``: one row per event of a person — ``profile_id``, event time ``t`` (epoch seconds),
  ``kind``, ``event`` (the track name, ``record:<type>`` for imported records, else the kind), ``channel``,
  ``order_key``, ``revenue``, ``status`` and ``topic``;
- ``takt_model_items``: one row per category of an order (``item_kind = 'category'``) and per interest key of
  an event (``'interest'``).

Everything after that — features (:func:`feature_query`), category and interest histories, labels — is
built as sqlglot expression trees over those two tables, portable to any dialect the segments support.

The features (:data:`FEATURES` documents each; per-category, per-interest and per-touchpoint columns follow a
:class:`FeatureSpec` chosen once per training run and stored with each model so scoring builds the same
columns):

- recency / frequency / monetary: days since the last event and order, events and orders in 30/90/365 days,
  revenue, average order value, refunds;
- decayed interests: ``interest:<key>`` = Σ 2^(−age / half-life) over the events naming the key;
- category purchase history: ``cat_orders:<category>`` and ``cat_days_since:<category>``;
- touchpoint usage: ``tp_365d:<channel>``;
- service cases: cases opened (all time, 365 days), days since the last case, cases closed;
- message engagement: emails opened (90 days, all time), days since the last open;
- consent: grants and withdrawals;
- tenure: days since the first event.

Identity is the present one (events of a person merged later count for the merged profile), and event time,
not arrival time, decides what is before the cutoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlglot import exp

EVENTS_TABLE = "takt_model_events"
ITEMS_TABLE = "takt_model_items"
DAY = 86400.0

ORDER_EVENTS = ("Order Completed", "record:order")
REFUND_EVENT = "Order Refunded"
VIEW_EVENT = "Product Viewed"
CART_EVENT = "Product Added"
SEARCH_EVENT = "Products Searched"
CASE_OPENED = "Case Opened"
CASE_CLOSED = "Case Closed"
EMAIL_OPENED = "Email Opened"
CONSENT_UPDATED = "Consent Updated"

FEATURES: dict[str, str] = {
    "tenure_days": "days from the person's first event to the cutoff",
    "recency_days": "days from the last event to the cutoff",
    "events_30d": "events in the 30 days before the cutoff",
    "events_90d": "events in the 90 days before the cutoff",
    "events_365d": "events in the 365 days before the cutoff",
    "pages_30d": "page and screen views in the last 30 days",
    "orders_total": "orders before the cutoff (distinct order ids)",
    "orders_90d": "orders in the last 90 days",
    "orders_365d": "orders in the last 365 days",
    "revenue_total": "revenue of all orders before the cutoff",
    "revenue_365d": "revenue of the orders of the last 365 days",
    "avg_order_value": "revenue_total / orders_total (missing without orders)",
    "days_since_order": "days since the last order (missing without orders)",
    "refunds_total": "refunded orders before the cutoff",
    "views_30d": "product views in the last 30 days",
    "views_90d": "product views in the last 90 days",
    "cart_adds_30d": "products added to a cart in the last 30 days",
    "searches_30d": "searches in the last 30 days",
    "cases_total": "service cases opened before the cutoff",
    "cases_365d": "service cases opened in the last 365 days",
    "cases_closed_total": "service cases closed before the cutoff",
    "days_since_case": "days since the last case was opened (missing without cases)",
    "email_opens_90d": "emails opened in the last 90 days",
    "email_opens_total": "emails opened before the cutoff",
    "days_since_email_open": "days since the last email was opened (missing without opens)",
    "consent_grants": "consents granted before the cutoff",
    "consent_withdrawals": "consents withdrawn before the cutoff",
    "tp_365d:<channel>": "events through a touchpoint (web, app, email, store, …) in the last 365 days",
    "cat_orders:<category>": "orders containing the category before the cutoff",
    "cat_days_since:<category>": "days since the last order containing the category (missing if none)",
    "interest:<key>": "decayed interest: Σ 2^(−age/half-life) over events naming the key before the cutoff",
}
"""Every feature with what it means (``<…>`` columns exist per value chosen in the :class:`FeatureSpec`)."""


@dataclass(frozen=True)
class FeatureSpec:
    """The per-value columns of a feature matrix: which channels, categories and interest keys."""

    channels: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()
    interest_half_life_days: float = 30.0

    def names(self) -> list[str]:
        return [*BASE_FEATURES, *(f"tp_365d:{c}" for c in self.channels),
                *(f"cat_orders:{c}" for c in self.categories), *(f"cat_days_since:{c}" for c in self.categories),
                *(f"interest:{k}" for k in self.interests)]

    def to_json(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "categories": list(self.categories),
                "interests": list(self.interests), "interest_half_life_days": self.interest_half_life_days}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(tuple(d.get("channels", ())), tuple(d.get("categories", ())), tuple(d.get("interests", ())),
                   float(d.get("interest_half_life_days", 30.0)))


@dataclass
class FeatureMatrix:
    """Features of the profiles that had an event before ``cutoff`` (rows sorted by profile id)."""

    cutoff: datetime
    profile_ids: np.ndarray  # object (str)
    X: np.ndarray  # float32, NaN = missing
    names: list[str]
    spec: FeatureSpec
    _index: dict[str, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.profile_ids)

    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {str(p): i for i, p in enumerate(self.profile_ids)}
        return self._index

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.cutoff.isoformat().encode())
        h.update("\x1f".join(self.names).encode())
        h.update("\x1f".join(map(str, self.profile_ids)).encode())
        h.update(np.ascontiguousarray(self.X).tobytes())
        return h.hexdigest()


# ---- preparation (DuckDB) ----
_PREPARE_EVENTS = """
CREATE OR REPLACE TEMP TABLE {events} AS
WITH ev AS MATERIALIZED (
    SELECT m.profile_id AS profile_id, e.position AS position, e.ts AS ts, e.kind AS kind, e.event AS event,
           {payload} AS rec
    FROM profile_event_map AS m JOIN events AS e ON e.position = m.position
    WHERE e.source NOT LIKE 'takt.%'
)
SELECT profile_id, epoch(ts) AS t, kind,
       coalesce(event, CASE WHEN kind = 'record'
                            THEN 'record:' || coalesce(json_extract_string(rec, '$.properties.record_type'), '')
                            ELSE kind END) AS event,
       json_extract_string(rec, '$.context.channel') AS channel,
       coalesce(json_extract_string(rec, '$.properties.order_id'), CAST(position AS VARCHAR)) AS order_key,
       TRY_CAST(json_extract_string(rec, '$.properties.revenue') AS DOUBLE) AS revenue,
       json_extract_string(rec, '$.properties.status') AS status,
       coalesce(json_extract_string(rec, '$.properties.topic'),
                json_extract_string(rec, '$.context.campaign.source')) AS topic,
       json_extract_string(rec, '$.properties.categories[*]') AS categories,
       json_extract_string(rec, '$.properties.interests[*]') AS interests
FROM ev
"""

_PREPARE_ITEMS = f"""
CREATE OR REPLACE TEMP TABLE {ITEMS_TABLE} AS
SELECT profile_id, t, 'category' AS item_kind, unnest(categories) AS item, order_key
FROM {EVENTS_TABLE} WHERE event IN ('Order Completed', 'record:order') AND len(categories) > 0
UNION ALL
SELECT profile_id, t, 'interest' AS item_kind, unnest(interests) AS item, order_key
FROM {EVENTS_TABLE} WHERE len(interests) > 0
"""


def prepare(con: Any) -> int:
    """Flatten the log into the work tables on a DuckDB connection holding the contract tables; returns the
    number of events. Sealed event contents are read through the log's ``takt_open`` function when the log
    seals them."""
    cols = {str(r[0]) for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'").fetchall()}
    payload = "takt_open(e.payload, e.subject, e.sealed)" if "sealed" in cols else "e.payload"
    con.execute(_PREPARE_EVENTS.format(events=EVENTS_TABLE, payload=payload))
    con.execute(_PREPARE_ITEMS)
    con.execute(f"ALTER TABLE {EVENTS_TABLE} DROP COLUMN categories")
    con.execute(f"ALTER TABLE {EVENTS_TABLE} DROP COLUMN interests")
    row = con.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


# ---- expression helpers ----
def _col(name: str) -> exp.Column:
    return exp.column(name)


def _num(v: float) -> exp.Expression:
    return exp.Literal.number(repr(float(v)))


def _str(v: str) -> exp.Literal:
    return exp.Literal.string(v)


def _and(*items: exp.Expression) -> exp.Expression:
    return cast(exp.Expression, exp.and_(*items, copy=False))


def epoch(t: datetime) -> float:
    if t.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    return t.timestamp()


def _before(c: float) -> exp.Expression:
    return exp.LT(this=_col("t"), expression=_num(c))


def _since(c: float, days: float) -> exp.Expression:
    return exp.GTE(this=_col("t"), expression=_num(c - days * DAY))


def _event_is(*names: str) -> exp.Expression:
    if len(names) == 1:
        return exp.EQ(this=_col("event"), expression=_str(names[0]))
    return exp.In(this=_col("event"), expressions=[_str(n) for n in names])


def _count_if(cond: exp.Expression) -> exp.Expression:
    return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))


def _count_distinct_if(cond: exp.Expression, col: str) -> exp.Expression:
    return exp.Count(this=exp.Distinct(expressions=[exp.Case(ifs=[exp.If(this=cond, true=_col(col))])]))


def _sum_if(cond: exp.Expression, col: str) -> exp.Expression:
    return exp.Coalesce(this=exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=_col(col))])),
                        expressions=[_num(0)])


def _days_since(c: float, value: exp.Expression) -> exp.Expression:
    return exp.Div(this=exp.paren(exp.Sub(this=_num(c), expression=value), copy=False), expression=_num(DAY))


def _max_t_if(cond: exp.Expression) -> exp.Expression:
    return exp.Max(this=exp.Case(ifs=[exp.If(this=cond, true=_col("t"))]))


BASE_FEATURES: tuple[str, ...] = tuple(n for n in FEATURES if "<" not in n)


def feature_query(cutoff: datetime, spec: FeatureSpec) -> exp.Select:
    """Per profile with an event before ``cutoff``: the base and touchpoint features (SQL; the category and
    interest columns come from :func:`category_query` and :func:`interest_query`)."""
    c = epoch(cutoff)
    orders = _event_is(*ORDER_EVENTS)
    cols: dict[str, exp.Expression] = {
        "tenure_days": _days_since(c, exp.Min(this=_col("t"))),
        "recency_days": _days_since(c, exp.Max(this=_col("t"))),
        "events_30d": _count_if(_since(c, 30)),
        "events_90d": _count_if(_since(c, 90)),
        "events_365d": _count_if(_since(c, 365)),
        "pages_30d": _count_if(_and(exp.In(this=_col("kind"), expressions=[_str("page"), _str("screen")]),
                                    _since(c, 30))),
        "orders_total": _count_distinct_if(orders, "order_key"),
        "orders_90d": _count_distinct_if(_and(orders.copy(), _since(c, 90)), "order_key"),
        "orders_365d": _count_distinct_if(_and(orders.copy(), _since(c, 365)), "order_key"),
        "revenue_total": _sum_if(orders.copy(), "revenue"),
        "revenue_365d": _sum_if(_and(orders.copy(), _since(c, 365)), "revenue"),
        "days_since_order": _days_since(c, _max_t_if(orders.copy())),
        "refunds_total": _count_if(_event_is(REFUND_EVENT)),
        "views_30d": _count_if(_and(_event_is(VIEW_EVENT), _since(c, 30))),
        "views_90d": _count_if(_and(_event_is(VIEW_EVENT), _since(c, 90))),
        "cart_adds_30d": _count_if(_and(_event_is(CART_EVENT), _since(c, 30))),
        "searches_30d": _count_if(_and(_event_is(SEARCH_EVENT), _since(c, 30))),
        "cases_total": _count_if(_event_is(CASE_OPENED)),
        "cases_365d": _count_if(_and(_event_is(CASE_OPENED), _since(c, 365))),
        "cases_closed_total": _count_if(_event_is(CASE_CLOSED)),
        "days_since_case": _days_since(c, _max_t_if(_event_is(CASE_OPENED))),
        "email_opens_90d": _count_if(_and(_event_is(EMAIL_OPENED), _since(c, 90))),
        "email_opens_total": _count_if(_event_is(EMAIL_OPENED)),
        "days_since_email_open": _days_since(c, _max_t_if(_event_is(EMAIL_OPENED))),
        "consent_grants": _count_if(_and(_event_is(CONSENT_UPDATED),
                                         exp.EQ(this=_col("status"), expression=_str("granted")))),
        "consent_withdrawals": _count_if(_and(_event_is(CONSENT_UPDATED),
                                              exp.EQ(this=_col("status"), expression=_str("withdrawn")))),
    }
    for i, ch in enumerate(spec.channels):
        cols[f"tp{i}"] = _count_if(_and(exp.EQ(this=_col("channel"), expression=_str(ch)), _since(c, 365)))
    select = exp.select(_col("profile_id"), *(exp.alias_(e, n, quoted=True) for n, e in cols.items()
                                              if n != "avg_order_value"))
    return select.from_(EVENTS_TABLE).where(_before(c)).group_by(_col("profile_id"))


def category_query(cutoff: datetime, categories: Sequence[str] | None = None) -> exp.Select:
    """``(profile_id, item, orders, last_t)``: orders per category before ``cutoff`` (all categories, or
    those given)."""
    c = epoch(cutoff)
    conds = [exp.EQ(this=_col("item_kind"), expression=_str("category")), _before(c)]
    if categories is not None:
        conds.append(exp.In(this=_col("item"), expressions=[_str(x) for x in categories]))
    return (exp.select(_col("profile_id"), _col("item"),
                       exp.alias_(exp.Count(this=exp.Distinct(expressions=[_col("order_key")])), "orders"),
                       exp.alias_(exp.Max(this=_col("t")), "last_t"))
            .from_(ITEMS_TABLE).where(_and(*conds)).group_by(_col("profile_id"), _col("item")))


def interest_query(cutoff: datetime, keys: Sequence[str], half_life_days: float) -> exp.Select:
    """``(profile_id, item, score)``: each interest key's decayed score at ``cutoff``."""
    c = epoch(cutoff)
    age_days = _days_since(c, _col("t"))
    decay = exp.Pow(this=_num(2.0), expression=exp.Div(this=exp.Neg(this=exp.paren(age_days, copy=False)),
                                                        expression=_num(half_life_days)))
    conds = [exp.EQ(this=_col("item_kind"), expression=_str("interest")), _before(c),
             exp.In(this=_col("item"), expressions=[_str(x) for x in keys] or [_str("")])]
    return (exp.select(_col("profile_id"), _col("item"), exp.alias_(exp.Sum(this=decay), "score"))
            .from_(ITEMS_TABLE).where(_and(*conds)).group_by(_col("profile_id"), _col("item")))


def top_items_query(cutoff: datetime, item_kind: str, limit: int) -> exp.Select:
    """The ``limit`` most frequent items of a kind before ``cutoff`` (ties by name)."""
    cond = _and(exp.EQ(this=_col("item_kind"), expression=_str(item_kind)), _before(epoch(cutoff)))
    n = exp.Count(this=exp.Star())
    return (exp.select(_col("item")).from_(ITEMS_TABLE).where(cond).group_by(_col("item"))
            .order_by(exp.Ordered(this=n, desc=True), _col("item")).limit(limit))


def top_channels_query(cutoff: datetime, limit: int) -> exp.Select:
    cond = _and(exp.Not(this=exp.Is(this=_col("channel"), expression=exp.Null())), _before(epoch(cutoff)))
    n = exp.Count(this=exp.Star())
    return (exp.select(_col("channel")).from_(EVENTS_TABLE).where(cond).group_by(_col("channel"))
            .order_by(exp.Ordered(this=n, desc=True), _col("channel")).limit(limit))


def sql(query: exp.Expression, dialect: str = "duckdb") -> str:
    return query.sql(dialect=dialect)


# ---- running (DuckDB) ----
def choose_spec(con: Any, cutoff: datetime, *, categories: int, interests: int, channels: int,
                half_life_days: float) -> FeatureSpec:
    """The per-value columns for a training run: the most frequent values before ``cutoff``."""
    def items(q: exp.Select) -> tuple[str, ...]:
        return tuple(str(r[0]) for r in con.execute(sql(q)).fetchall())

    return FeatureSpec(
        channels=items(top_channels_query(cutoff, channels)) if channels else (),
        categories=items(top_items_query(cutoff, "category", categories)) if categories else (),
        interests=items(top_items_query(cutoff, "interest", interests)) if interests else (),
        interest_half_life_days=half_life_days,
    )


def compute(con: Any, cutoff: datetime, spec: FeatureSpec) -> FeatureMatrix:
    """The feature matrix at ``cutoff`` (after :func:`prepare` on ``con``)."""
    c = epoch(cutoff)
    base = con.execute(sql(feature_query(cutoff, spec).order_by(_col("profile_id")))).fetchnumpy()
    ids = np.asarray(base["profile_id"], dtype=object)
    n = len(ids)
    names = spec.names()
    X = np.full((n, len(names)), np.nan, dtype=np.float32)
    col = {name: i for i, name in enumerate(names)}
    for name in BASE_FEATURES:
        if name == "avg_order_value":
            continue
        X[:, col[name]] = _floats(base[name])
    orders = X[:, col["orders_total"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        X[:, col["avg_order_value"]] = np.where(orders > 0, X[:, col["revenue_total"]] / orders, np.nan)
    for i, ch in enumerate(spec.channels):
        X[:, col[f"tp_365d:{ch}"]] = _floats(base[f"tp{i}"])
    index = {str(p): i for i, p in enumerate(ids)}
    if spec.categories:
        for ch in spec.categories:
            X[:, col[f"cat_orders:{ch}"]] = 0.0
        rows = con.execute(sql(category_query(cutoff, spec.categories))).fetchnumpy()
        cat_col = {ch: j for j, ch in enumerate(spec.categories)}
        r = np.array([index.get(str(p), -1) for p in rows["profile_id"]], dtype=np.int64)
        ok = r >= 0
        k = np.array([cat_col[str(i)] for i in rows["item"]], dtype=np.int64)
        first_orders = col[f"cat_orders:{spec.categories[0]}"]
        first_days = col[f"cat_days_since:{spec.categories[0]}"]
        X[r[ok], first_orders + k[ok]] = _floats(rows["orders"])[ok]
        X[r[ok], first_days + k[ok]] = ((c - _floats(rows["last_t"], np.float64)) / DAY)[ok]
    if spec.interests:
        for key in spec.interests:
            X[:, col[f"interest:{key}"]] = 0.0
        rows = con.execute(sql(interest_query(cutoff, spec.interests, spec.interest_half_life_days))).fetchnumpy()
        key_col = {key: col[f"interest:{key}"] for key in spec.interests}
        r = np.array([index.get(str(p), -1) for p in rows["profile_id"]], dtype=np.int64)
        ok = r >= 0
        cc = np.array([key_col[str(i)] for i in rows["item"]], dtype=np.int64)
        X[r[ok], cc[ok]] = _floats(rows["score"])[ok]
    return FeatureMatrix(cutoff, ids, X, names, spec)


def _floats(values: Any, dtype: Any = np.float32) -> np.ndarray:
    arr = np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan) if np.ma.isMaskedArray(values) else \
        np.asarray(values, dtype=np.float64)
    return arr.astype(dtype)
