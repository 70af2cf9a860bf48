"""Random people and their interactions written straight into the segment contract tables (the shape the
profile projection writes), on DuckDB, PostgreSQL or Spark; and an independent Python reading of the same
journeys to check the SQL against."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from takt.analytics.engine import ConnectionEngine
from takt.projections.facts import PROFILE_SCHEMAS, TablesWrite, events_table

T0 = datetime(2026, 9, 1, tzinfo=UTC)
END = T0 + timedelta(days=60)
GOAL = "Order Completed"
TOUCHPOINTS = ("web", "app", "email", "store")
ACTIONS = (("page", None), ("track", "Product Viewed"), ("track", "Products Searched"), ("track", "Email Opened"),
           ("track", "Case Opened"), ("track", GOAL), ("identify", None))


@dataclass(frozen=True)
class Touch:
    at: datetime
    kind: str
    event: str | None
    touchpoint: str
    position: int


@dataclass(frozen=True)
class Person:
    pid: str
    country: str
    touches: tuple[Touch, ...]


def people_from(spec: list[tuple[str, list[tuple[int, int, int]]]]) -> list[Person]:
    """People from (country, [(minute, touchpoint index, action index)]) — what hypothesis draws."""
    out, pos = [], 0
    for i, (country, events) in enumerate(spec):
        touches = []
        for minute, tp, action in events:
            kind, event = ACTIONS[action % len(ACTIONS)]
            touches.append(Touch(T0 + timedelta(minutes=minute), kind, event, TOUCHPOINTS[tp % len(TOUCHPOINTS)],
                                 pos))
            pos += 1
        out.append(Person(f"p{i:04d}", country, tuple(touches)))
    return out


def random_people(seed: int, n: int, per_person: int = 12) -> list[Person]:
    rng = random.Random(seed)
    spec = [(rng.choice(("DE", "FR", "NL")),
             [(rng.randrange(0, 60 * 24 * 60), rng.randrange(4),
               rng.choices(range(len(ACTIONS)), weights=(5, 6, 2, 2, 1, 2, 1))[0])
              for _ in range(rng.randrange(0, per_person))]) for _ in range(n)]
    return people_from(spec)


def tables_write(people: list[Person]) -> TablesWrite:
    rows: list[tuple[str, int, Any]] = []
    for p in people:
        for t in p.touches:
            rows.append((p.pid, t.position, (t.kind, t.event, None, t.at, "{}", t.touchpoint, t.touchpoint,
                                              t.at + timedelta(seconds=3), t.at.weekday() * 24 + t.at.hour)))
    rows.sort(key=lambda r: r[1])
    prof = pa.table({"profile_id": [p.pid for p in people], "first_seen": [T0] * len(people),
                     "last_seen": [END] * len(people), "top_interest": [None] * len(people),
                     "interest_shifted_at": [None] * len(people)}, schema=PROFILE_SCHEMAS["profiles"])
    traits = pa.table({"profile_id": [p.pid for p in people], "name": ["country"] * len(people),
                       "value": [f'"{p.country}"' for p in people], "provenance": ["crm_import"] * len(people)},
                      schema=PROFILE_SCHEMAS["profile_stored_traits"])
    empty = {n: PROFILE_SCHEMAS[n].empty_table() for n in ("profile_interests", "profile_touchpoints")}
    return TablesWrite(position=max((r[1] for r in rows), default=0),
                       rows={"profiles": prof, "profile_stored_traits": traits, **empty},
                       events=events_table(rows), replace=True)


@contextmanager
def duckdb_engine(people: list[Person]) -> Iterator[ConnectionEngine]:
    import duckdb

    from takt.storage import duckdb_segment_tables

    con = duckdb.connect(":memory:")
    try:
        duckdb_segment_tables.ensure(con)
        duckdb_segment_tables.write_alone(con, tables_write(people))
        yield ConnectionEngine(con, "duckdb")
    finally:
        con.close()


@contextmanager
def postgres_engine(url: str, people: list[Person]) -> Iterator[ConnectionEngine]:
    import psycopg

    from takt.storage import pg_segment_tables

    with psycopg.connect(url, autocommit=True) as con:
        pg_segment_tables.ensure(con)
        with con.transaction():
            pg_segment_tables.write(con, tables_write(people))
        yield ConnectionEngine(con, "postgres")


def spark_engine(session: Any, people: list[Person], directory: Path) -> Any:
    """The same tables as Parquet files registered in Spark (as ``takt export parquet`` writes them)."""
    import duckdb

    from takt.analytics.engine import SparkEngine
    from takt.segments.spark import SPARK_TABLES, register_parquet
    from takt.storage import duckdb_segment_tables

    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        duckdb_segment_tables.ensure(con)
        duckdb_segment_tables.write_alone(con, tables_write(people))
        for table in SPARK_TABLES:
            con.table(table).write_parquet(str(directory / f"{table}.parquet"))
    finally:
        con.close()
    register_parquet(session, directory)
    return SparkEngine(session)


# ---- the same journeys read in plain Python (the oracle)
def is_interaction(t: Touch) -> bool:
    return t.kind in ("track", "page", "screen")


def journeys(people: list[Person], start: datetime, end: datetime, days: float,
             who: set[str] | None = None) -> list[tuple[str, list[Touch], datetime]]:
    """(person, steps, conversion time) of every conversion in [start, end)."""
    out = []
    for p in people:
        if who is not None and p.pid not in who:
            continue
        ordered = sorted((t for t in p.touches if is_interaction(t)), key=lambda t: (t.at, t.position))
        for c in ordered:
            if c.event != GOAL or not start <= c.at < end:
                continue
            before = [t for t in ordered if t.event != GOAL and (t.at, t.position) < (c.at, c.position)
                      and t.at >= c.at - timedelta(days=days)]
            collapsed: list[Touch] = []
            for t in before:
                if not collapsed or collapsed[-1].touchpoint != t.touchpoint:
                    collapsed.append(t)
            out.append((p.pid, collapsed, c.at))
    return out


def oracle_credits(people: list[Person], start: datetime, end: datetime, days: float, half_life: float,
                   who: set[str] | None = None) -> dict[str, dict[str, float]]:
    credit: dict[str, dict[str, float]] = {}
    for _, steps, at in journeys(people, start, end, days, who):
        if not steps:
            continue
        weights = [0.5 ** ((at - s.at).total_seconds() / (half_life * 86400)) for s in steps]
        for j, s in enumerate(steps):
            c = credit.setdefault(s.touchpoint, {"first_touch": 0, "last_touch": 0, "linear": 0.0, "decay": 0.0})
            c["first_touch"] += j == 0
            c["last_touch"] += j == len(steps) - 1
            c["linear"] += 1 / len(steps)
            c["decay"] += weights[j] / sum(weights)
    return credit


def same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 (relative); the engine's name aside; rows in a stable order."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if k != "engine":
                same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        key = lambda r: repr(sorted((k, v) for k, v in r.items() if isinstance(v, str | int | list))) \
            if isinstance(r, dict) else repr(r)  # noqa: E731
        for i, (x, y) in enumerate(zip(sorted(a, key=key), sorted(b, key=key), strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)
