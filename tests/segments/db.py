"""The relational contract in a test database: create the tables, load profile views, run a query."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from takt.segments.view import ProfileView

TABLES = ("profiles", "profile_traits", "profile_interests", "profile_touchpoints", "profile_events")

DDL = {
    "duckdb": {"double": "DOUBLE", "ts": "TIMESTAMPTZ"},
    "postgres": {"double": "DOUBLE PRECISION", "ts": "TIMESTAMPTZ"},
}


def schema(kind: str) -> list[str]:
    t = DDL[kind]
    return [
        f"CREATE TABLE profiles (profile_id VARCHAR PRIMARY KEY, first_seen {t['ts']}, last_seen {t['ts']}, "
        f"top_interest VARCHAR NULL, interest_shifted_at {t['ts']} NULL)",
        "CREATE TABLE profile_traits (profile_id VARCHAR, name VARCHAR, value VARCHAR, provenance VARCHAR)",
        f"CREATE TABLE profile_interests (profile_id VARCHAR, key VARCHAR, score {t['double']}, as_of {t['ts']}, "
        f"half_life_days {t['double']})",
        f"CREATE TABLE profile_touchpoints (profile_id VARCHAR, touchpoint VARCHAR, count BIGINT, last_at {t['ts']})",
        f"CREATE TABLE profile_events (profile_id VARCHAR, kind VARCHAR, event VARCHAR NULL, name VARCHAR NULL, "
        f"ts {t['ts']}, properties VARCHAR)",
    ]


def rows(views: Iterable[ProfileView]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    for v in views:
        out["profiles"].append((v.profile_id, v.first_seen, v.last_seen, v.top_interest, v.interest_shifted_at))
        for name, (value, prov) in v.traits.items():
            out["profile_traits"].append((v.profile_id, name, json.dumps(value), prov))
        for i in v.interests:
            out["profile_interests"].append((v.profile_id, i.key, i.score, i.as_of, i.half_life_days))
        for tp, row in v.touchpoints.items():
            out["profile_touchpoints"].append((v.profile_id, tp, row.count, row.last_at))
        for e in v.events:
            out["profile_events"].append((v.profile_id, e.kind, e.event, e.name, e.ts, json.dumps(dict(e.properties))))
    return out


class DuckDB:
    kind = "duckdb"

    def __init__(self) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        for stmt in schema("duckdb"):
            self.con.execute(stmt)

    def load(self, views: Iterable[ProfileView]) -> None:
        data = rows(views)
        for table in TABLES:
            self.con.execute(f"DELETE FROM {table}")
            if data[table]:
                marks = ", ".join("?" * len(data[table][0]))
                self.con.executemany(f"INSERT INTO {table} VALUES ({marks})", data[table])

    def members(self, sql: str) -> set[str]:
        return {r[0] for r in self.con.execute(sql).fetchall()}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def close(self) -> None:
        self.con.close()


class Postgres:
    kind = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.con = psycopg.connect(url, autocommit=True)
        self.con.execute("SET TIME ZONE 'UTC'")
        for stmt in schema("postgres"):
            self.con.execute(stmt)

    def load(self, views: Iterable[ProfileView]) -> None:
        data = rows(views)
        with self.con.cursor() as cur:
            for table in TABLES:
                cur.execute(f"DELETE FROM {table}")
                if data[table]:
                    marks = ", ".join(["%s"] * len(data[table][0]))
                    cur.executemany(f"INSERT INTO {table} VALUES ({marks})", data[table])

    def members(self, sql: str) -> set[str]:
        return {r[0] for r in self.con.execute(sql).fetchall()}  # type: ignore[arg-type]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()  # type: ignore[arg-type]

    def close(self) -> None:
        self.con.close()
