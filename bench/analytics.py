"""Analytics benchmark: touchpoints for a segment, paths and attribution on DuckDB over synthetic segment tables.

    python bench/analytics.py [--quick] [--json] [--profiles N] [--events M]

Builds the segment tables (docs/segments.md, with the analytics columns of profile_events) directly in an
in-memory DuckDB (default 1M profiles / 20M events; --quick 100k / 2M): interactions over a year through six
touchpoints, one in ten an "Order Completed". Then runs the reports of takt.analytics with the SQL it generates:
touchpoints for the segment trait.country = "DE" over 90 days, paths and attribution (five models, two
half-lives) for everyone over 90 days; best of 2 runs each. Targets (issue 16): touchpoints < 2 s, attribution
< 10 s on 1M profiles / 20M events. The last line with --json is one JSON object (touchpoints_seconds,
paths_seconds, attribution_seconds, peak_rss_mb, …).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.analytics.attribution import attribution  # noqa: E402
from takt.analytics.config import AnalyticsConfig  # noqa: E402
from takt.analytics.engine import ConnectionEngine  # noqa: E402
from takt.analytics.paths import paths  # noqa: E402
from takt.analytics.scope import Scope  # noqa: E402
from takt.analytics.touchpoints import touchpoints  # noqa: E402
from takt.segments import parse  # noqa: E402
from takt.storage import duckdb_segment_tables  # noqa: E402

END = datetime(2026, 11, 20, tzinfo=UTC)


def build(con: duckdb.DuckDBPyConnection, n_profiles: int, n_events: int) -> None:
    duckdb_segment_tables.ensure(con)
    con.execute(f"""
        INSERT INTO profiles SELECT 'p' || i, TIMESTAMPTZ '2025-01-01 00:00:00+00',
               TIMESTAMPTZ '2026-11-19 00:00:00+00', NULL, NULL FROM range({n_profiles}) t(i)""")
    con.execute(f"""
        INSERT INTO profile_stored_traits SELECT 'p' || i, 'country',
               '"' || (['DE', 'FR', 'NL', 'AT'])[1 + i % 4] || '"', 'customer_provided' FROM range({n_profiles}) t(i)""")
    con.execute(f"""
        INSERT INTO profile_events
        SELECT 'p' || (i // {max(1, n_events // n_profiles)}), i,
               CASE WHEN i % 10 = 0 THEN 'track' WHEN i % 10 < 6 THEN 'track' ELSE 'page' END,
               CASE WHEN i % 10 = 0 THEN 'Order Completed' WHEN i % 10 < 3 THEN 'Product Viewed'
                    WHEN i % 10 < 4 THEN 'Products Searched' WHEN i % 10 < 6 THEN 'Email Opened' END,
               NULL, ts, '{{}}',
               (['web', 'app', 'email', 'social', 'store', 'call_center'])[1 + ((i * 31) // 7) % 6],
               'website', ts + INTERVAL 2 SECOND,
               CAST((epoch(ts) - 345600) % 604800 // 3600 AS INTEGER)
        FROM (SELECT i, TIMESTAMPTZ '2026-11-20 00:00:00+00' - to_seconds(CAST((i * 7919) % 31536000 AS BIGINT)) AS ts
              FROM range({n_events}) t(i))""")
    con.execute("INSERT INTO profile_store_meta VALUES ('segment_tables', 0, ?)", [duckdb_segment_tables.FORMAT])


def best(fn: Any, runs: int = 2) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profiles", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    n_profiles = args.profiles or (100_000 if args.quick else 1_000_000)
    n_events = args.events or (2_000_000 if args.quick else 20_000_000)
    con = duckdb.connect(":memory:")
    t = time.perf_counter()
    build(con, n_profiles, n_events)
    build_s = time.perf_counter() - t
    engine = ConnectionEngine(con)
    config = AnalyticsConfig()
    period = Scope(END - timedelta(days=90), END)
    segment = Scope(END - timedelta(days=90), END, segment=parse('trait.country = "DE"'), label="DE")
    tp_s, tp = best(lambda: touchpoints(engine, segment, config))
    pa_s, pa = best(lambda: paths(engine, period, config))
    at_s, at = best(lambda: attribution(engine, period, config, half_lives=(1, 7)))
    result = {
        "profiles": n_profiles, "events": n_events, "build_seconds": round(build_s, 2),
        "touchpoints_seconds": round(tp_s, 3), "paths_seconds": round(pa_s, 3),
        "attribution_seconds": round(at_s, 3),
        "touchpoints_people": tp["people"], "conversions": at["conversions"], "attributed": at["attributed"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"touchpoints_seconds": 2.0, "attribution_seconds": 10.0},
        "machine": f"{platform.machine()}, {platform.python_version()}, duckdb {duckdb.__version__}",
    }
    credits = {m: round(sum(r[m] for r in at["touchpoints"]), 6) for m in at["models"]}
    if not args.json:
        print(f"{n_profiles:,} profiles, {n_events:,} events (built in {build_s:.1f} s)")
        print(f"touchpoints (segment DE, 90 days): {tp_s:.3f} s, {tp['people']:,} people")
        print(f"paths (90 days): {pa_s:.3f} s, {len(pa['paths'])} paths shown")
        print(f"attribution (90 days, 6 models): {at_s:.3f} s, {at['attributed']:,} of {at['conversions']:,} "
              f"conversions attributed; credits per model {credits}")
        print(f"peak RSS {result['peak_rss_mb']} MB")
    else:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
