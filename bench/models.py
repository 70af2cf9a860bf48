"""Model factory benchmark: ≥ 200 models on 100,000 customers (target: ≤ 10 minutes, peak RSS < 8 GB).

    python bench/models.py [--quick] [--json] [--customers N] [--categories K]

A fast synthetic generator (numpy, seeded) writes customers' events straight into a fresh DuckDB workspace's
log (``events``) together with the profile ↔ event map of the segment contract (``profile_event_map``), skipping
the Python profile projection (whose own throughput is in the Profiles section of docs/benchmarks.md). Each
customer has an activity rate, a join date, maybe a date they stop, three favourite categories among K (Zipf
popularity), an email subscription and topic, and does page views, product views (interests), searches, cart
adds, orders (1–2 categories), email opens, service cases and consent changes over 365 days.

Then the factory runs as ``takt models train --all`` does: flatten the log (``prepare``), discover targets
(one purchase target per category + churn + unsubscribe + service case + response per topic), features at both
cutoffs, labels, baselines, one LightGBM model per target (`--workers` training processes, default 2 as
`takt models train`), registration. Timed: ``features`` (prepare → labels
and baselines) and ``training`` (fit, evaluate, register); scoring every accepted model at ``now`` is timed
apart. Baseline, same run: the usual way of training — a fresh ``lightgbm.Dataset`` per model — for 5 targets,
per model, against the factory's per-model training time (one binned Dataset shared by every target).

The last line with --json is one JSON object (models, seconds, peak_rss_mb, models_per_minute, feature_share, …).
Default 100,000 customers and 200 categories; --quick 20,000 customers.
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

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.models import factory as F  # noqa: E402
from takt.models.features import prepare  # noqa: E402
from takt.models.registry import Registry  # noqa: E402
from takt.storage.duckdb import DuckDBStorage  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 365
EVENTS = ("Page", "Product Viewed", "Products Searched", "Product Added", "Order Completed", "Email Opened",
          "Case Opened", "Consent Updated")
EVENT_P = np.array([0.33, 0.30, 0.08, 0.06, 0.07, 0.12, 0.015, 0.025])
CHANNELS = ("web", "app", "email", "store", "call_center")
TOPICS = ("newsletter", "outdoor-deals", "travel-stories", "new-arrivals", "members")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(con: object, customers: int, categories: int, seed: int = 7) -> int:
    """Write the synthetic log and profile map; returns the number of events."""
    rng = np.random.default_rng(seed)
    end = NOW.timestamp()
    start = end - DAYS * 86400.0
    zipf = 1.0 / np.arange(1, categories + 1) ** 0.9
    zipf /= zipf.sum()
    rate = rng.gamma(1.5, 0.08, customers)  # events per day
    join = start + rng.uniform(0, 0.8, customers) * DAYS * 86400.0
    stop = np.where(rng.random(customers) < 0.35, join + rng.uniform(0.1, 1.0, customers) * (end - join), end)
    fav = rng.choice(categories, size=(customers, 3), p=zipf)
    subscribed = rng.random(customers) < 0.6
    topic_of = rng.integers(0, len(TOPICS), customers)
    n = rng.poisson(rate * (stop - join) / 86400.0)
    cust = np.repeat(np.arange(customers, dtype=np.int64), n)
    total = len(cust)
    t = join[cust] + rng.random(total) * (stop[cust] - join[cust])
    etype = rng.choice(len(EVENTS), size=total, p=EVENT_P).astype(np.int8)
    etype[(etype == 5) & ~subscribed[cust]] = 0  # no email opens without a subscription
    pick_fav = rng.random(total) < 0.7
    cat1 = np.where(pick_fav, fav[cust, rng.integers(0, 3, total)], rng.choice(categories, size=total, p=zipf))
    cat2 = np.where(rng.random(total) < 0.3, rng.choice(categories, size=total, p=zipf), -1)
    channel = rng.integers(0, len(CHANNELS), total).astype(np.int8)
    channel[etype == 5] = 2
    channel[etype == 6] = 4
    topic = np.where(rng.random(total) < 0.8, topic_of[cust], rng.integers(0, len(TOPICS), total)).astype(np.int8)
    withdrawn = (rng.random(total) < 0.4).astype(np.int8)
    revenue = np.round(rng.lognormal(4.3, 0.6, total), 2)
    order = np.argsort(t, kind="stable")
    gen = pa.table({
        "position": np.arange(1, total + 1, dtype=np.int64),
        "cust": cust[order], "ts": pa.array((t[order] * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
        "etype": etype[order], "channel": channel[order], "cat1": cat1[order].astype(np.int32),
        "cat2": cat2[order].astype(np.int32), "topic": topic[order], "withdrawn": withdrawn[order],
        "revenue": revenue[order],
    })
    cats = "[" + ", ".join(f"'c{i:03d}'" for i in range(categories)) + "]"
    names = "[" + ", ".join(f"'{e}'" for e in EVENTS) + "]"
    chans = "[" + ", ".join(f"'{c}'" for c in CHANNELS) + "]"
    topics = "[" + ", ".join(f"'{c}'" for c in TOPICS) + "]"
    cur = con.cursor()  # type: ignore[attr-defined]
    cur.register("gen", gen)
    cur.execute(f"""
        CREATE TEMP TABLE g AS
        SELECT position, 'p' || lpad(CAST(cust AS VARCHAR), 7, '0') AS profile_id, ts,
               CASE WHEN etype = 0 THEN 'page' ELSE 'track' END AS kind,
               CASE WHEN etype = 0 THEN NULL ELSE {names}[etype + 1] END AS event,
               {chans}[channel + 1] AS channel, {cats}[cat1 + 1] AS c1,
               CASE WHEN cat2 >= 0 THEN {cats}[cat2 + 1] END AS c2, {topics}[topic + 1] AS topic,
               CASE WHEN withdrawn = 1 THEN 'withdrawn' ELSE 'granted' END AS status, revenue, etype
        FROM gen""")
    cur.execute("""
        INSERT INTO events (position, source, message_id, kind, event, user_id, anonymous_id, ts, received_at,
                            provenance, payload)
        SELECT position, 'bench', 'm' || position, kind, event, profile_id, NULL, ts, ts, 'observed',
               CAST(json_object('v', 1, 'type', kind, 'messageId', 'm' || position, 'source', 'bench',
                    'userId', profile_id, 'event', event, 'timestamp', strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'),
                    'context', json_object('channel', channel),
                    'properties', CASE
                        WHEN etype = 4 THEN json_object('order_id', 'o' || position, 'revenue', revenue,
                                                        'categories', list_filter([c1, c2], lambda x: x IS NOT NULL))
                        WHEN etype IN (1, 3) THEN json_object('category', c1, 'interests', ['category:' || c1])
                        WHEN etype = 5 THEN json_object('topic', topic)
                        WHEN etype = 6 THEN json_object('case_id', 'k' || position)
                        WHEN etype = 7 THEN json_object('status', status)
                        ELSE json_object() END) AS VARCHAR)
        FROM g ORDER BY position""")
    cur.execute("DROP VIEW IF EXISTS profile_event_map")  # a workspace has it as a view over profile_events
    cur.execute("CREATE OR REPLACE TABLE profile_event_map AS SELECT profile_id, position FROM g")
    cur.execute("CREATE OR REPLACE TABLE profiles AS SELECT DISTINCT profile_id FROM g")
    cur.execute("DROP TABLE g")
    cur.unregister("gen")
    return total


def peak_rss_mb() -> float:
    """This process's peak plus the largest training process's (an upper bound of the peak together)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def cpu_seconds() -> float:
    """CPU time of this process and of its finished training processes."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 customers")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--customers", type=int, default=None)
    ap.add_argument("--categories", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="training processes (setting models.workers)")
    args = ap.parse_args()
    customers = args.customers or (20_000 if args.quick else 100_000)
    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-models-"))
    try:
        storage = DuckDBStorage(tmp / "takt.duckdb")
        con = storage.con
        say(f"generating {customers:,} customers, {args.categories} categories …")
        t0 = time.perf_counter()
        n_events = generate(con, customers, args.categories)
        gen_s = time.perf_counter() - t0
        say(f"  {n_events:,} events in {gen_s:.1f}s")
        cfg = F.FactoryConfig(workers=args.workers)
        registry = Registry(storage)

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "training" and total and (done % 25 == 0 or done == total):
                say(f"  training {done}/{total}")

        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        c0 = cpu_seconds()
        prepare(con)
        targets = F.all_targets(con, NOW, cfg)
        data = F.build_data(con, targets, NOW, cfg, progress)
        features_s = time.perf_counter() - t0
        features_cpu = cpu_seconds() - c0
        say(f"features and labels: {features_s:.1f}s ({len(data.train):,} / {len(data.valid):,} rows, "
            f"{len(data.train.names)} features, {len(targets)} targets)")
        t0 = time.perf_counter()
        records = F.train(data, registry, cfg, created_at=NOW, progress=progress)
        training_s = time.perf_counter() - t0
        total_cpu = cpu_seconds() - c0
        total_s = features_s + training_s
        trained = [r for r in records if r.metrics.get("auc") is not None]
        accepted = [r for r in records if r.status == "accepted"]
        failed = [r for r in records if r.status == "failed"]
        say(f"training: {training_s:.1f}s for {len(records)} models ({len(trained)} fitted, {len(accepted)} "
            f"accepted, {len(failed)} failed)")

        t0 = time.perf_counter()
        scored = F.score(con, registry, NOW, threads=cfg.threads)
        score_s = time.perf_counter() - t0
        say(f"scoring {len(scored)} models at now: {score_s:.1f}s")

        # baseline: a fresh Dataset per model (the usual way), 5 fitted targets
        import lightgbm as lgb

        sample = [r.model for r in trained[:5]]
        t0 = time.perf_counter()
        for name in sample:
            ds = lgb.Dataset(data.train.X, label=data.y_train[name], params=cfg.dataset_params())
            booster = lgb.train(cfg.params(), ds, num_boost_round=cfg.rounds)
            booster.predict(data.valid.X, num_threads=cfg.threads)
        naive_per_model = (time.perf_counter() - t0) / max(1, len(sample))
        fitted_seconds = sum(r.seconds for r in trained)
        factory_per_model = fitted_seconds / max(1, len(trained))
        figures = {
            "customers": customers, "events": n_events, "categories": args.categories, "workers": args.workers,
            "models": len(records), "fitted": len(trained), "accepted": len(accepted), "failed": len(failed),
            "rejected": len(records) - len(accepted) - len(failed),
            "features": len(data.train.names), "rows_train": len(data.train), "rows_valid": len(data.valid),
            "seconds": round(total_s, 1), "features_seconds": round(features_s, 1),
            "training_seconds": round(training_s, 1), "feature_share": round(features_s / total_s, 3),
            "models_per_minute": round(len(records) / total_s * 60, 1),
            "fitted_per_minute": round(len(trained) / training_s * 60, 1),
            "cpu_seconds": round(total_cpu, 1), "features_cpu_seconds": round(features_cpu, 1),
            "cpu_per_wall": round(total_cpu / total_s, 2),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "score_seconds": round(score_s, 1), "generate_seconds": round(gen_s, 1),
            "seconds_per_fitted_model": round(factory_per_model, 3),
            "baseline_seconds_per_model": round(naive_per_model, 3),
            "ratio_vs_baseline": round(factory_per_model / naive_per_model, 3) if naive_per_model else None,
            "peak_rss_mb": round(peak_rss_mb(), 0),
            "target": {"models": 200, "seconds": 600, "peak_rss_mb": 8192},
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
            "date": datetime.now(UTC).date().isoformat(),
        }
        median_auc = float(np.median([r.metrics["auc"] for r in accepted])) if accepted else None
        figures["median_auc_accepted"] = round(median_auc, 3) if median_auc is not None else None
        storage.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(json.dumps(figures, indent=2))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
