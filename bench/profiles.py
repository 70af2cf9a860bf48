"""Profiles benchmark: rebuild rate, identity stitching, profile read p99, event → profile visible p99, memory.

    python bench/profiles.py [--quick] [--json] [--events N] [--links N] [--profiles N]

1. rebuild: N synthetic events of P people (anonymous browsing, logins, searches with interests, orders) are
   appended to a fresh DuckDB log; `ProfileRunner.rebuild` folds them all (identity + profiles + derived
   events). Baseline in the same run: a DuckDB-SQL-only rebuild of the same aggregates (per-person event
   counts by name, first/last seen, order count and revenue), events/s, and the ratio. Peak RSS of the rebuild
   is sampled; wall and CPU seconds are both reported (the machine may be shared).
2. stitching: bulk identity stitching (`takt.identity.bulk.stitch`: union-find over interned identifiers) of L
   identifier links (identify calls linking a userId, an email and an anonymousId, as `identifiers_of` gives
   them), seconds; baseline in the same run: the incremental `IdentityGraph` (the live path) over the first
   `--stitch-baseline` links of the same input, links/s, and the ratio. With --quick both graphs are compared
   for equality.
3. reads and visibility: `takt serve` on the rebuilt workspace; `GET /v1/profiles/{id}` p99 over random
   profiles; then /v1/track calls for one existing profile, each followed by polling that profile until its
   event count grows (the projection thread's lag; a read of an unknown profile folds the log itself, so a new
   profile would not measure it), p99; the server's RSS.

The last line with --json is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import gc
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import RssSampler  # noqa: E402  (bench/ingest.py)
from takt.clock import FixedClock  # noqa: E402
from takt.events.model import Event  # noqa: E402
from takt.identity.bulk import LinkLog, graph_equal, stitch  # noqa: E402
from takt.identity.config import IdentityConfig  # noqa: E402
from takt.identity.resolver import Cause, IdentityGraph, iso  # noqa: E402
from takt.profiles.config import ProfileConfig  # noqa: E402
from takt.projections.runner import ProfileRunner  # noqa: E402
from takt.storage.duckdb import DuckDBStorage  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DESTS = ["krabi", "new-york", "lisbon", "oslo", "bali", "rome", "kyoto", "lima"]
CATS = ["outdoor", "tents", "shoes", "bags", "cameras", "books"]


def synthetic_events(n_events: int, n_people: int, seed: int = 7):  # type: ignore[no-untyped-def]
    """A deterministic stream of realistic events: each person browses anonymously, logs in, searches and buys."""
    rng = random.Random(seed)
    made = 0
    while made < n_events:
        p = rng.randrange(n_people)
        anon = f"anon-{p}-{rng.randrange(2)}"
        at = T0 + timedelta(seconds=made * 3)
        r = rng.random()
        uid = f"user-{p}" if r < 0.7 else None
        if r < 0.05:
            ev = Event(kind="identify", message_id=f"e{made}", source="web", timestamp=at, received_at=at,
                       provenance="customer_provided", user_id=f"user-{p}", anonymous_id=anon,
                       traits={"email": f"person{p}@example.com", "country": rng.choice(["DE", "FR", "NL"])})
        elif r < 0.45:
            d = DESTS[(p + made // 200_000) % len(DESTS)]
            ev = Event(kind="track", message_id=f"e{made}", source="web", timestamp=at, received_at=at,
                       provenance="customer_provided", user_id=uid, anonymous_id=anon, event="Products Searched",
                       properties={"query": d, "interests": [f"destination:{d}"]},
                       context={"channel": "web"})
        elif r < 0.85:
            ev = Event(kind="page", message_id=f"e{made}", source="web", timestamp=at, received_at=at,
                       provenance="customer_provided", user_id=uid, anonymous_id=anon, name="Product",
                       properties={"path": f"/p/{rng.randrange(1000)}", "category": rng.choice(CATS)},
                       context={"channel": "app" if p % 3 == 0 else "web"})
        else:
            ev = Event(kind="track", message_id=f"e{made}", source="web", timestamp=at, received_at=at,
                       provenance="customer_provided", user_id=f"user-{p}", anonymous_id=anon,
                       event="Order Completed",
                       properties={"order_id": f"o{made}", "revenue": round(rng.uniform(10, 400), 2),
                                   "categories": [rng.choice(CATS)]})
        yield ev
        made += 1


def sql_baseline(storage: DuckDBStorage) -> float:
    """The same per-person aggregates with DuckDB SQL only (no identity stitching), seconds."""
    started = time.perf_counter()
    storage.con.execute("""
        CREATE OR REPLACE TEMP TABLE baseline AS
        SELECT coalesce(user_id, anonymous_id) AS person,
               min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events,
               count(*) FILTER (WHERE event = 'Order Completed') AS orders,
               sum(CAST(json_extract_string(payload, '$.properties.revenue') AS DOUBLE))
                   FILTER (WHERE event = 'Order Completed') AS revenue,
               histogram(coalesce(event, kind)) AS counts
        FROM events GROUP BY 1
    """)
    return time.perf_counter() - started


def stitching(n_links: int, n_baseline: int, check: bool, say) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Bulk stitching of ``n_links`` links, and the incremental graph over the first ``n_baseline`` of them."""
    cfg = IdentityConfig.build()

    def links_log(limit: int) -> tuple[LinkLog, int]:
        log, links, i = LinkLog(), 0, 0
        while links < limit:
            p = i // 2
            # identifiers_of order: user_id, email, anonymous_id (type priority)
            ids = ((f"user_id:u{p}", f"email:p{p}@example.com", f"anonymous_id:a{i}") if i % 2 == 0
                   else (f"user_id:u{p}", f"anonymous_id:a{i}"))
            log.add(i + 1, "web", f"l{i}", T0 + timedelta(seconds=i), ids)
            links += len(ids) - 1
            i += 1
        return log, links

    say(f"identity stitching of {n_links:,} links (bulk) …")
    log, links = links_log(n_links)
    started, cpu = time.perf_counter(), time.process_time()
    graph, stats = stitch(log, cfg)
    stitch_s, stitch_cpu = time.perf_counter() - started, time.process_time() - cpu
    say(f"  {stitch_s:.1f} s, {stitch_cpu:.1f} s CPU ({links / stitch_s:,.0f} links/s; {stats.clusters:,} profiles)")
    del graph, log
    say(f"  baseline: the incremental graph over {n_baseline:,} links …")
    log, base_links = links_log(n_baseline)
    gc_was = gc.isenabled()
    gc.disable()  # as the runner folds: without the collector's full passes
    try:
        started, cpu = time.perf_counter(), time.process_time()
        inc = IdentityGraph(cfg)
        for k in range(len(log)):
            t = log.times[k]
            inc._link(log.ids[k], Cause(log.positions[k], log.sources[k], log.message_ids[k], iso(t)))
        base_s, base_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        if gc_was:
            gc.enable()
    say(f"  {base_s:.1f} s, {base_cpu:.1f} s CPU ({base_links / base_s:,.0f} links/s)")
    if check:
        same = graph_equal(stitch(log, cfg)[0], inc) == {}
        say(f"  bulk graph == incremental graph: {same}")
        assert same
    return {
        "links": links,
        "stitch_seconds": round(stitch_s, 2),
        "stitch_cpu_seconds": round(stitch_cpu, 2),
        "stitch_links_per_s": round(links / stitch_s),
        "stitch_baseline_links": base_links,
        "stitch_baseline_links_per_s": round(base_links / base_s),
        "stitch_vs_baseline": round((links / stitch_s) / (base_links / base_s), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def measure_serve(takt: list[str], env: dict[str, str], ws: Path, sample_ids: list[str],
                  say) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """`takt serve` on ``ws``: time to ready and RSS once ready (the profile store's index is read at start:
    redirects, merge index, the ids of stored profiles and clusters; profile states and clusters are read on
    demand into a cache of ``profiles.cache_size``), profile read latency, event → profile visible latency,
    and RSS after those reads."""
    keys = {}
    for kind, name in (("read", "bench-read"), ("write", "bench-write")):
        out = subprocess.run([*takt, "keys", "create", "-w", str(ws), "--kind", kind, "--name", name]
                             + (["--provenance", "customer_provided"] if kind == "write" else []),
                             check=True, env=env, capture_output=True, text=True).stdout
        keys[kind] = out.strip().splitlines()[-1]
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([*takt, "serve", "-w", str(ws), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = None
        deadline = time.time() + 1800  # a large store's index takes a while
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/health")
                if conn.getresponse().read() and True:
                    break
            except OSError:
                time.sleep(0.2)
        assert conn is not None
        ready_s = time.perf_counter() - started
        ready_rss = psutil.Process(server.pid).memory_info().rss / 2**20
        say(f"  serving after {ready_s:.1f} s, RSS {ready_rss:,.0f} MB")
        read_h = {"Authorization": f"Bearer {keys['read']}"}
        say(f"profile reads over HTTP ({len(sample_ids)}) …")
        lat = []
        for pid in sample_ids:
            t = time.perf_counter()
            conn.request("GET", f"/v1/profiles/{pid}", headers=read_h)
            r = conn.getresponse()
            r.read()
            lat.append(time.perf_counter() - t)
            assert r.status == 200, r.status
        read_p50, read_p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
        say(f"  p50 {read_p50:.2f} ms, p99 {read_p99:.2f} ms")
        say("event → profile visible …")
        write_h = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode(),
                   "Content-Type": "application/json"}
        # The lag of the projection thread, on a profile that exists: a read that finds no profile folds what
        # is committed itself before answering 404 (read your own writes), so polling for a new profile would
        # measure that read, not the follower.
        run = f"{random.randrange(16**8):08x}"  # unique message ids: a re-run on the same workspace measures too
        probe = f"visible-{run}"

        def events_of_probe() -> int | None:
            conn.request("GET", f"/v1/profiles?identifier=user_id:{probe}", headers=read_h)
            r = conn.getresponse()
            data = r.read()
            return int(json.loads(data)["stats"]["events"]) if r.status == 200 else None

        def track(k: int) -> None:
            body = json.dumps({"userId": probe, "event": "Ping", "messageId": f"vis-{run}-{k}"})
            conn.request("POST", "/v1/track", body=body, headers=write_h)
            assert conn.getresponse().read()

        track(-1)
        while events_of_probe() is None:
            time.sleep(0.001)
        vis = []
        for k in range(200):
            before = events_of_probe() or 0
            t = time.perf_counter()
            track(k)
            while (events_of_probe() or 0) <= before:
                time.sleep(0.001)
            vis.append(time.perf_counter() - t)
        vis_p50, vis_p99 = pct(vis, 0.5) * 1000, pct(vis, 0.99) * 1000
        say(f"  p50 {vis_p50:.2f} ms, p99 {vis_p99:.2f} ms")
        serve_rss = psutil.Process(server.pid).memory_info().rss / 2**20
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"read_p50_ms": round(read_p50, 3), "read_p99_ms": round(read_p99, 3),
            "visible_p50_ms": round(vis_p50, 3), "visible_p99_ms": round(vis_p99, 3),
            "serve_ready_s": round(ready_s, 1), "serve_rss_ready_mb": round(ready_rss, 1),
            "serve_rss_mb": round(serve_rss, 1)}


def serve_only(ws: Path, reads: int, as_json: bool, say) -> None:  # type: ignore[no-untyped-def]
    """The serve figures alone, on a workspace built elsewhere (the profile store must be up to date)."""
    with DuckDBStorage(ws / "takt.duckdb") as st:
        ids = st.profiles.profile_ids()
        clusters = sum(1 for _ in st.profiles.cluster_index())
        events = st.log.count()
    sample = random.Random(1).sample(ids, min(reads, len(ids)))
    say(f"`takt serve` on {ws}: {len(ids):,} profiles with events, {clusters:,} identity clusters, {events:,} events")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    fig = measure_serve([sys.executable, "-m", "takt.cli.main"], env, ws, sample, say)
    figures = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
               "command": f"python bench/profiles.py --serve-only {ws}", "events": events,
               "serve_profiles": len(ids), "serve_clusters": clusters, **fig}
    say(json.dumps(figures, indent=2))
    if as_json:
        print(json.dumps(figures))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--profiles", type=int, default=None)
    ap.add_argument("--links", type=int, default=None)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--serve-only", metavar="WORKSPACE", default=None,
                    help="only measure `takt serve` (RSS, reads, visibility) on an existing DuckDB workspace, "
                         "e.g. one `takt demo` built")
    ap.add_argument("--stitch-baseline", type=int, default=2_000_000,
                    help="links the incremental identity graph stitches as the baseline (default 2M)")
    args = ap.parse_args()
    n_events = args.events or (200_000 if args.quick else 5_000_000)
    n_people = args.profiles or max(1000, n_events // 25)
    n_links = args.links or (300_000 if args.quick else 10_000_000)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    if args.serve_only:
        serve_only(Path(args.serve_only), args.reads, args.json, say)
        return
    # a stopped run still removes its workspace (and the server): SIGTERM unwinds like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-profiles-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    takt = [sys.executable, "-m", "takt.cli.main"]
    try:
        ws = tmp / "ws"
        subprocess.run([*takt, "init", str(ws)], check=True, env=env, capture_output=True)
        storage = DuckDBStorage(ws / "takt.duckdb")
        say(f"appending {n_events:,} events of {n_people:,} people …")
        batch: list[Event] = []
        for ev in synthetic_events(n_events, n_people):
            batch.append(ev)
            if len(batch) == 20_000:
                storage.log.append(batch)
                batch = []
        if batch:
            storage.log.append(batch)

        say("rebuild (identity + profiles) …")
        sampler = RssSampler(os.getpid(), children=False)
        sampler.start()
        runner = ProfileRunner(storage, ProfileConfig(), FixedClock(T0 + timedelta(days=400)))
        started, cpu = time.perf_counter(), time.process_time()
        applied = runner.rebuild()
        rebuild_s, rebuild_cpu = time.perf_counter() - started, time.process_time() - cpu
        rebuild_rss = sampler.finish()
        profiles = len(runner.profile_ids())
        say(f"  {applied / rebuild_s:,.0f} events/s ({applied:,} events, {profiles:,} profiles, {rebuild_s:.1f} s,"
            f" {rebuild_cpu:.1f} s CPU, peak RSS {rebuild_rss:,.0f} MB)")
        base_s = sql_baseline(storage)
        say(f"  baseline SQL aggregates: {n_events / base_s:,.0f} events/s"
            f" (rebuild/baseline {applied / rebuild_s / (n_events / base_s):.4f})")
        sample_ids = random.Random(1).sample(runner.profile_ids(), min(args.reads, profiles))
        del runner
        storage.close()

        stitch_fig = stitching(n_links, min(n_links, args.stitch_baseline), check=args.quick, say=say)

        serve_fig = measure_serve(takt, env, ws, sample_ids, say)
        figures = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
            "command": "python bench/profiles.py" + (" --quick" if args.quick else ""),
            "events": n_events,
            "profiles": profiles,
            "rebuild_events_per_s": round(applied / rebuild_s),
            "rebuild_seconds": round(rebuild_s, 1),
            "rebuild_cpu_seconds": round(rebuild_cpu, 1),
            "baseline_sql_events_per_s": round(n_events / base_s),
            "rebuild_vs_baseline": round(applied / rebuild_s / (n_events / base_s), 5),
            "rebuild_peak_rss_mb": round(rebuild_rss, 1),
            **stitch_fig,
            **serve_fig,
            "serve_profiles": profiles,
        }
        say(json.dumps(figures, indent=2))
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
