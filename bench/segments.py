"""Segment benchmark: counting a five-condition segment on DuckDB, PostgreSQL and Spark, and live membership latency.

    python bench/segments.py [--quick] [--json] [--profiles N] [--events M] [--live-events K]
                             [--postgres-url URL | --skip-postgres] [--skip-spark] [--skip-live]

Builds the segment tables (the contract in docs/segments.md) with synthetic people directly in DuckDB
(default 1M profiles / 20M events; --quick 100k / 2M), then counts

    trait.country = "DE" and count(track "Order Completed" in last 365d) >= 2
    and sum(track "Order Completed".revenue in last 90d) > 100 and touchpoint("app").count >= 1
    and interest("destination:new-york") > 0.4

with the SQL takt compiles (optimized), the unoptimized compilation, and a hand-written DuckDB query of the
same question: all three must agree; the figures are the best of 3 runs each. The same definition then runs on
PostgreSQL (the same rows built with generate_series in a fresh database of the server at --postgres-url, default
$TAKT_BENCH_POSTGRES_URL or $TAKT_TEST_POSTGRES_URL; indexes on profile_id) and on Spark in local mode (the
DuckDB tables exported as Parquet): each must find the same members; best of 2 runs.

Live membership (``live_p99_ms``): a DuckDB workspace served by the real HTTP app (``create_app``, in process,
with its live projection and segment membership) with several stored segments and a population of profiles;
K events (default 1000) are sent one at a time to ``/v1/track``, each a new buyer, and the time from the ingest
acknowledgement (the 200) to the append of its ``segment_entered`` event to the log is measured.

The last line with --json is one JSON object (count_seconds, ratio_vs_sql, live_p99_ms, peak_rss_mb,
postgres_count_seconds, spark_count_seconds, …).
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


POSTGRES_BUILD = [
    """CREATE TABLE profiles AS
       SELECT 'p' || i AS profile_id,
              TIMESTAMPTZ '2025-01-01 00:00:00+00' + make_interval(days => (i % 300)::int) AS first_seen,
              TIMESTAMPTZ '2026-11-19 00:00:00+00' - make_interval(days => (i % 400)::int) AS last_seen,
              NULL::text AS top_interest, NULL::timestamptz AS interest_shifted_at
       FROM generate_series(0::bigint, {n_profiles} - 1) t(i)""",
    """CREATE TABLE profile_traits AS
       SELECT 'p' || i AS profile_id, 'country'::text AS name,
              '"' || (ARRAY['DE', 'FR', 'NL', 'AT'])[1 + i % 4] || '"' AS value,
              'customer_provided'::text AS provenance
       FROM generate_series(0::bigint, {n_profiles} - 1) t(i)
       UNION ALL
       SELECT 'p' || i, 'email', '"person' || i || '@example.com"', 'customer_provided'
       FROM generate_series(0::bigint, {n_profiles} - 1) t(i) WHERE i % 3 <> 0""",
    """CREATE TABLE profile_touchpoints AS
       SELECT 'p' || i AS profile_id, (ARRAY['web', 'app', 'email'])[1 + (i / 4) % 3] AS touchpoint,
              (1 + i % 7)::bigint AS count, TIMESTAMPTZ '2026-11-01 00:00:00+00' AS last_at
       FROM generate_series(0::bigint, {n_profiles} - 1) t(i)""",
    """CREATE TABLE profile_interests AS
       SELECT 'p' || i AS profile_id,
              (ARRAY['destination:new-york', 'destination:krabi', 'category:outdoor'])[1 + (i / 12) % 3] AS key,
              (i % 7)::double precision / 3 AS score,
              TIMESTAMPTZ '2026-11-20 00:00:00+00' - make_interval(days => (i % 60)::int) AS as_of,
              21.0::double precision AS half_life_days
       FROM generate_series(0::bigint, {n_profiles} - 1) t(i)""",
    """CREATE TABLE profile_events AS
       SELECT 'p' || (i % {n_profiles}) AS profile_id,
              CASE WHEN i % 10 < 2 THEN 'track' ELSE 'page' END AS kind,
              CASE WHEN i % 10 < 2 THEN 'Order Completed' END AS event,
              CASE WHEN i % 10 >= 2 THEN 'Product' END AS name,
              TIMESTAMPTZ '2026-11-20 00:00:00+00' - make_interval(secs => ((i * 7919) % 40000000)::double precision)
                  AS ts,
              CASE WHEN i % 10 < 2 THEN '{{"revenue": ' || (i % 200) || '}}'
                   ELSE '{{"path": "/p/' || (i % 1000) || '"}}' END AS properties
       FROM generate_series(0::bigint, {n_events} - 1) t(i)""",
    "CREATE INDEX ON profile_traits (profile_id, name)",
    "CREATE INDEX ON profile_touchpoints (profile_id)",
    "CREATE INDEX ON profile_interests (profile_id)",
    "CREATE INDEX ON profile_events (profile_id)",
    "ANALYZE",
]


def on_postgres(admin_url: str, n_profiles: int, n_events: int, sql: str,
                say: Callable[[str], None]) -> dict[str, Any]:
    """The same rows in a fresh PostgreSQL database; the compiled postgres SQL counted (best of 2)."""
    import psycopg

    name = "takt_bench_segments"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("SET TIME ZONE 'UTC'")
            t = time.perf_counter()
            for stmt in POSTGRES_BUILD:
                con.execute(stmt.format(n_profiles=n_profiles, n_events=n_events))  # type: ignore[arg-type]
            say(f"  postgres tables built in {time.perf_counter() - t:.1f} s")
            times, n = [], -1
            for _ in range(2):
                t = time.perf_counter()
                row = con.execute(f"SELECT count(*) FROM ({sql}) AS q").fetchone()  # type: ignore[arg-type]
                times.append(time.perf_counter() - t)
                n = int(row[0]) if row else 0
            version = str(con.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"postgres_count_seconds": round(min(times), 4), "postgres_members": n, "postgres_version": version}


def on_spark(con: duckdb.DuckDBPyConnection, workdir: Path, sql: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The DuckDB tables as Parquet, counted by Spark SQL in local mode (best of 2, after a warm-up)."""
    from takt.segments.spark import SPARK_TABLES, register_parquet, spark_session

    out = workdir / "parquet"
    out.mkdir()
    for table in SPARK_TABLES:
        con.cursor().table(table).write_parquet(str(out / f"{table}.parquet"))
    session = spark_session("local[2]")
    try:
        register_parquet(session, out)
        times, n = [], -1
        for _ in range(3):
            t = time.perf_counter()
            n = int(session.sql(f"SELECT count(*) FROM ({sql}) AS q").collect()[0][0])
            times.append(time.perf_counter() - t)
        version = str(session.version)
    finally:
        session.stop()
    say(f"  spark runs: {', '.join(f'{x:.1f} s' for x in times)}")
    return {"spark_count_seconds": round(min(times[1:]), 4), "spark_first_run_seconds": round(times[0], 4),
            "spark_members": n, "spark_version": version}


LIVE_SEGMENTS = {
    "buyers": 'count(track "Order Completed" in last 30d) >= 1',
    "big_spenders": 'sum(track "Order Completed".revenue in last 90d) > 100',
    "germans": 'trait.country = "DE"',
    "loyal": 'count(track "Order Completed" in last 365d) >= 3',
    "german_buyers": 'in segment("buyers") and in segment("germans")',
    "five_conditions": DEFINITION,
}


def live_latency(workdir: Path, n_events: int, population: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Ingest acknowledgement → ``segment_entered`` appended, through the real HTTP app, one event at a time."""
    import base64
    import threading

    from starlette.testclient import TestClient

    from takt.api.app import create_app
    from takt.clock import system_clock
    from takt.events.model import Event
    from takt.segments.live import SEGMENT_ENTERED
    from takt.segments.store import segment_store
    from takt.settings import load
    from takt.storage.duckdb import DuckDBStorage

    storage = DuckDBStorage(workdir / "live.duckdb")
    now = system_clock()
    _, secret = storage.keys.create("write", "bench", None, "customer_provided", now=now)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{secret.reveal()}:".encode()).decode()}
    store = segment_store(storage)
    for name, text in LIVE_SEGMENTS.items():
        store.create(name, text=text, now=now)
    # a population of people who already bought (members of some segments) before the measurement
    pop = []
    for i in range(population):
        at = now - timedelta(days=1 + i % 200)
        pop.append(Event(kind="identify", message_id=f"pi{i}", source="bench", timestamp=at, received_at=at,
                         user_id=f"pop{i}", traits={"country": ["DE", "FR"][i % 2]}))
        pop.append(Event(kind="track", event="Order Completed", message_id=f"po{i}", source="bench", timestamp=at,
                         received_at=at, user_id=f"pop{i}", properties={"revenue": 40 + i % 100}))
    storage.log.append(pop)

    entered: dict[str, float] = {}
    seen = threading.Condition()
    append = storage.log.append

    def timed_append(events: Any) -> Any:
        result = append(events)
        t = time.perf_counter()
        with seen:
            for ev in events:
                if ev.kind == SEGMENT_ENTERED and ev.properties.get("segment") == "buyers":
                    entered.setdefault(str(ev.properties["profile_id"]), t)
            seen.notify_all()
        return result

    storage.log.append = timed_append  # type: ignore[method-assign]
    latencies: list[float] = []
    app = create_app(storage, load(None, env={}), system_clock)
    with TestClient(app) as client:
        # wait for the population to be folded and its buyers (an order in the last 30 days) announced
        expected = sum(1 for i in range(population) if i % 200 <= 28)
        t0 = time.perf_counter()
        while len(entered) < expected and time.perf_counter() - t0 < 600:
            time.sleep(0.2)
        say(f"  live: population of {population:,} folded and announced in {time.perf_counter() - t0:.1f} s")
        for i in range(n_events):
            body = {"userId": f"new{i}", "event": "Order Completed", "messageId": f"new{i}",
                    "properties": {"revenue": 20 + i % 50}}
            before = len(entered)
            r = client.post("/v1/track", headers=auth, json=body)
            acked = time.perf_counter()
            if r.status_code != 200:
                raise SystemExit(f"ingest failed: {r.status_code} {r.text}")
            with seen:
                if not seen.wait_for(lambda b=before: len(entered) > b, timeout=30):  # type: ignore[misc]
                    raise SystemExit(f"no segment_entered for event {i} within 30 s")
                latest = max(entered.values())
            # the entered event may even be appended before the client has read its 200: that counts as 0
            latencies.append(max(0.0, latest - acked) * 1000)
    storage.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {"live_events": n_events, "live_population": population, "live_segments": len(LIVE_SEGMENTS),
            "live_p50_ms": pct(0.50), "live_p99_ms": pct(0.99), "live_max_ms": round(latencies[-1], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profiles", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--live-events", type=int, default=1000)
    ap.add_argument("--live-population", type=int, default=None)
    ap.add_argument("--postgres-url", default=os.environ.get("TAKT_BENCH_POSTGRES_URL")
                    or os.environ.get("TAKT_TEST_POSTGRES_URL"))
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    args = ap.parse_args()
    n_profiles = args.profiles or (100_000 if args.quick else 1_000_000)
    n_events = args.events or (2_000_000 if args.quick else 20_000_000)
    population = args.live_population if args.live_population is not None else (5_000 if args.quick else 10_000)

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
        figures: dict[str, Any] = {
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
        if not args.skip_postgres:
            if not args.postgres_url:
                raise SystemExit("PostgreSQL: give --postgres-url (or set TAKT_BENCH_POSTGRES_URL), or --skip-postgres")
            say("postgres …")
            pg = on_postgres(args.postgres_url, n_profiles, n_events,
                             to_sql(node, now=NOW, dialect_name="postgres", pretty=False), say)
            if pg["postgres_members"] != n_takt:
                raise SystemExit(f"disagreement: postgres {pg['postgres_members']}, duckdb {n_takt}")
            say(f"  {pg['postgres_members']:,} members in {pg['postgres_count_seconds']:.2f} s")
            figures.update(pg)
        if not args.skip_spark:
            say("spark (local mode) …")
            sp = on_spark(con, tmp, to_sql(node, now=NOW, dialect_name="spark", pretty=False), say)
            if sp["spark_members"] != n_takt:
                raise SystemExit(f"disagreement: spark {sp['spark_members']}, duckdb {n_takt}")
            figures.update(sp)
        con.close()
        if not args.skip_live:
            say(f"live membership: {args.live_events:,} events through the HTTP app …")
            live = live_latency(tmp, args.live_events, population, say)
            say(f"  p50 {live['live_p50_ms']} ms, p99 {live['live_p99_ms']} ms, max {live['live_max_ms']} ms")
            figures.update(live)
        figures["peak_rss_mb"] = round(max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), 1)
        say(json.dumps(figures, indent=2))
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
