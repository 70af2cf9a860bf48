"""Segment benchmark: counting a five-condition segment on DuckDB, against a hand-written query.

    python bench/segments.py [--quick] [--json] [--profiles N] [--events M]

Builds the segment tables (the contract in docs/segments.md) with synthetic people directly in DuckDB
(default 1M profiles / 20M events; --quick 100k / 2M), then counts

    trait.country = "DE" and count(track "Order Completed" in last 365d) >= 2
    and sum(track "Order Completed".revenue in last 90d) > 100 and touchpoint("app").count >= 1
    and interest("destination:new-york") > 0.4

with the SQL takt compiles (optimized), the unoptimized compilation, and a hand-written DuckDB query of the
same question: all three must agree; the figures are the best of 3 runs each. The last line with --json is one
JSON object (count_seconds, ratio_vs_sql, peak_rss_mb, …). Live-membership latency and the Spark/PostgreSQL
figures are not measured yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.segments import parse, to_sql  # noqa: E402

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DEFINITION = ('trait.country = "DE" and count(track "Order Completed" in last 365d) >= 2 '
              'and sum(track "Order Completed".revenue in last 90d) > 100 and touchpoint("app").count >= 1 '
              'and interest("destination:new-york") > 0.4')

HAND_WRITTEN = """
WITH o AS (
  SELECT profile_id,
         count(*) FILTER (WHERE ts > TIMESTAMPTZ '2025-11-20 00:00:00+00') AS n365,
         sum(CAST(json_extract_string(properties, '$.revenue') AS DOUBLE))
             FILTER (WHERE ts > TIMESTAMPTZ '2026-08-22 00:00:00+00') AS rev90
  FROM profile_events
  WHERE kind = 'track' AND event = 'Order Completed' AND ts <= TIMESTAMPTZ '2026-11-20 00:00:00+00'
  GROUP BY profile_id
)
SELECT count(*) FROM profiles p
JOIN profile_traits t ON t.profile_id = p.profile_id AND t.name = 'country' AND t.value = '"DE"'
JOIN o ON o.profile_id = p.profile_id AND o.n365 >= 2 AND o.rev90 > 100
JOIN profile_touchpoints tp ON tp.profile_id = p.profile_id AND tp.touchpoint = 'app' AND tp.count >= 1
JOIN profile_interests i ON i.profile_id = p.profile_id AND i.key = 'destination:new-york'
  AND i.score * pow(2, -(epoch(TIMESTAMPTZ '2026-11-20 00:00:00+00') - epoch(i.as_of)) / 86400.0
                         / i.half_life_days) > 0.4
"""


def build(con: duckdb.DuckDBPyConnection, n_profiles: int, n_events: int) -> None:
    con.execute(f"""
        CREATE TABLE profiles AS
        SELECT 'p' || i AS profile_id,
               TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_days(CAST(i % 300 AS INTEGER)) AS first_seen,
               TIMESTAMPTZ '2026-11-19 00:00:00+00' - to_days(CAST(i % 400 AS INTEGER)) AS last_seen,
               NULL::VARCHAR AS top_interest, NULL::TIMESTAMPTZ AS interest_shifted_at
        FROM range({n_profiles}) t(i)""")
    con.execute(f"""
        CREATE TABLE profile_traits AS
        SELECT 'p' || i AS profile_id, 'country' AS name,
               '"' || (['DE', 'FR', 'NL', 'AT'])[1 + i % 4] || '"' AS value, 'customer_provided' AS provenance
        FROM range({n_profiles}) t(i)
        UNION ALL
        SELECT 'p' || i, 'email', '"person' || i || '@example.com"', 'customer_provided'
        FROM range({n_profiles}) t(i) WHERE i % 3 <> 0""")
    con.execute(f"""
        CREATE TABLE profile_touchpoints AS
        SELECT 'p' || i AS profile_id, (['web', 'app', 'email'])[1 + (i // 4) % 3] AS touchpoint,
               CAST(1 + i % 7 AS BIGINT) AS count, TIMESTAMPTZ '2026-11-01 00:00:00+00' AS last_at
        FROM range({n_profiles}) t(i)""")
    con.execute(f"""
        CREATE TABLE profile_interests AS
        SELECT 'p' || i AS profile_id,
               (['destination:new-york', 'destination:krabi', 'category:outdoor'])[1 + (i // 12) % 3] AS key,
               CAST(i % 7 AS DOUBLE) / 3 AS score,
               TIMESTAMPTZ '2026-11-20 00:00:00+00' - to_days(CAST(i % 60 AS INTEGER)) AS as_of,
               21.0 AS half_life_days
        FROM range({n_profiles}) t(i)""")
    con.execute(f"""
        CREATE TABLE profile_events AS
        SELECT 'p' || (i % {n_profiles}) AS profile_id,
               CASE WHEN i % 10 < 2 THEN 'track' ELSE 'page' END AS kind,
               CASE WHEN i % 10 < 2 THEN 'Order Completed' END AS event,
               CASE WHEN i % 10 >= 2 THEN 'Product' END AS name,
               TIMESTAMPTZ '2026-11-20 00:00:00+00' - to_seconds(CAST((i * 7919) % 40000000 AS BIGINT)) AS ts,
               CASE WHEN i % 10 < 2 THEN '{{"revenue": ' || (i % 200) || '}}'
                    ELSE '{{"path": "/p/' || (i % 1000) || '"}}' END AS properties
        FROM range({n_events}) t(i)""")


def best(con: duckdb.DuckDBPyConnection, sql: str, runs: int = 3) -> tuple[float, int]:
    times = []
    n = -1
    for _ in range(runs):
        t = time.perf_counter()
        row = con.execute(sql).fetchone()
        times.append(time.perf_counter() - t)
        n = int(row[0]) if row else 0
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profiles", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    n_profiles = args.profiles or (100_000 if args.quick else 1_000_000)
    n_events = args.events or (2_000_000 if args.quick else 20_000_000)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-segments-"))
    try:
        con = duckdb.connect(str(tmp / "seg.duckdb"))
        say(f"building {n_profiles:,} profiles and {n_events:,} events …")
        t = time.perf_counter()
        build(con, n_profiles, n_events)
        say(f"  {time.perf_counter() - t:.1f} s")
        node = parse(DEFINITION)
        compiled = to_sql(node, now=NOW, dialect_name="duckdb", pretty=False)
        unoptimized = to_sql(node, now=NOW, dialect_name="duckdb", pretty=False, optimize=False)
        rss_before = psutil.Process().memory_info().rss
        takt_s, n_takt = best(con, f"SELECT count(*) FROM ({compiled})")
        unopt_s, n_unopt = best(con, f"SELECT count(*) FROM ({unoptimized})")
        hand_s, n_hand = best(con, HAND_WRITTEN)
        if not n_takt == n_unopt == n_hand:
            raise SystemExit(f"disagreement: compiled {n_takt}, unoptimized {n_unopt}, hand-written {n_hand}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        say(f"  {n_takt:,} members; takt {takt_s * 1000:.0f} ms, unoptimized {unopt_s * 1000:.0f} ms, "
            f"hand-written {hand_s * 1000:.0f} ms")
        con.close()
        figures = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
                       f"DuckDB {duckdb.__version__}",
            "command": "python bench/segments.py" + (" --quick" if args.quick else ""),
            "profiles": n_profiles,
            "events": n_events,
            "members": n_takt,
            "count_seconds": round(takt_s, 4),
            "unoptimized_seconds": round(unopt_s, 4),
            "hand_written_seconds": round(hand_s, 4),
            "ratio_vs_sql": round(takt_s / hand_s, 3),
            "peak_rss_mb": round(peak, 1),
            "rss_before_count_mb": round(rss_before / 2**20, 1),
        }
        say(json.dumps(figures, indent=2))
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
