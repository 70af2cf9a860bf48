"""Contactability at server start, and per profile: what `takt serve` recomputes when it starts.

    python bench/contactability.py [--quick] [--json] [--profiles 20000] [--changed 200]

1. A fresh DuckDB workspace gets P synthetic people (identify with email and sometimes a phone; for about half of
   them marketing consent as `Consent Updated` calls or `consent` events, some withdrawn; some sent and opened
   messages; page views), folded into the profile store (cache of 2,000 states, as a large workspace has).
2. **Per profile** (`contactability_of` over every profile, 200 at a time, as the listener does): the code as
   it was (every profile's events read, one `decide` per channel and purpose: 21) against the code now (only
   the events of profiles with consent changes or messages, one `decide` per purpose), interleaved rounds,
   medians; the answers are checked equal.
3. **Start** (a runner and the contactability listener as `takt serve` wires them, until nothing is marked):
   - without a marker (first start; before this change: every start): every profile recomputed;
   - with the marker a clean stop leaves, after C people changed while no server ran: only they.
   Reported: profiles recomputed, profile states read from the store (catch-up included), seconds.
4. **Live segments prime** with a membership snapshot older than the runner: profile states read from the store
   by `prime`, iterating every profile (as before) against `changed_since` (now).

The last line with --json is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import takt.policy.segment_functions as sf  # noqa: E402
from takt.clock import FixedClock  # noqa: E402
from takt.events.model import Event  # noqa: E402
from takt.policy.config import PolicySettings  # noqa: E402
from takt.profiles.config import ProfileConfig  # noqa: E402
from takt.projections.runner import ProfileRunner  # noqa: E402
from takt.settings import load  # noqa: E402
from takt.storage.duckdb import DuckDBStorage  # noqa: E402

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CONFIG = ProfileConfig.from_settings(load(None, env={}))
CACHE = 2_000


def people_events(n: int, seed: int = 5) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = []

    def ev(kind: str, uid: str, at: datetime, mid: str, **fields: Any) -> None:
        out.append(Event(kind=kind, message_id=mid, source="web", timestamp=at, received_at=at,
                         provenance="customer_provided", user_id=uid, **fields))

    for p in range(n):
        uid = f"u{p}"
        at = NOW - timedelta(days=rng.uniform(20, 300))
        traits = {"email": f"{uid}@example.com"}
        if rng.random() < 0.3:
            traits["phone"] = f"+4915{p:09d}"
        ev("identify", uid, at, f"i-{p}", traits=traits)
        for k in range(rng.randrange(3, 20)):
            ev("page", uid, at + timedelta(hours=k), f"pg-{p}-{k}", name=f"page {k % 5}")
        roll = rng.random()
        if roll < 0.3:
            ev("track", uid, at + timedelta(days=1), f"cu-{p}", event="Consent Updated",
               properties={"purpose": "marketing", "channel": "email", "status": "granted",
                           "evidence": {"method": rng.choice(["double_opt_in", "web_form"])}})
        elif roll < 0.5:
            ev("consent", uid, at + timedelta(days=1), f"c-{p}",
               properties={"purpose": "marketing", "channel": "email",
                           "status": rng.choice(["granted", "withdrawn"]), "actor": "customer",
                           "evidence": {"method": "double_opt_in"}})
        if roll < 0.5 and rng.random() < 0.4:
            for k, status in enumerate(("sent", "opened")):
                ev("message", uid, at + timedelta(days=2, hours=k), f"msg-{p}-{k}",
                   properties={"message_id": f"n{p}", "status": status, "channel": "email",
                               "contact_point": f"{uid}@example.com", "intent": "marketing"})
    return out


def per_profile(storage: DuckDBStorage, rounds: int) -> dict[str, Any]:
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
    runner.load()
    ids = runner.profile_ids()
    settings = sf._settings(storage, PolicySettings())
    fast_needs, fast_contactability = sf.needs_events, sf.contactability
    variants = {"before": (lambda state: True, sf.contactability_per_channel),
                "after": (fast_needs, fast_contactability)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    answers: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(rounds):
            for name, (needs, contactability) in variants.items():
                sf.needs_events, sf.contactability = needs, contactability  # type: ignore[assignment]
                started = time.perf_counter()
                got: dict[str, Any] = {}
                for i in range(0, len(ids), sf.CHUNK):
                    got.update(sf.contactability_of(storage, runner, ids[i:i + sf.CHUNK], settings, NOW))
                times[name].append((time.perf_counter() - started) / len(ids) * 1000)
                answers[name] = got
    finally:
        sf.needs_events, sf.contactability = fast_needs, fast_contactability  # type: ignore[assignment]
    assert answers["before"] == answers["after"], "the faster code gives other answers"
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    reading = sum(1 for pid in ids if (s := runner.projector.profile(pid)) is not None and sf.needs_events(s))
    return {"profiles": len(ids), "profiles_reading_events": reading, "before_ms_per_profile": round(before, 3),
            "after_ms_per_profile": round(after, 3), "ratio": round(after / before, 3)}


class Counting:
    def __init__(self) -> None:
        self.n = 0
        self.original = sf.contactability_of

    def __call__(self, storage: Any, runner: Any, ids: Any, settings: Any, now: Any) -> Any:
        self.n += len(ids)
        return self.original(storage, runner, ids, settings, now)


def start(storage: DuckDBStorage) -> dict[str, Any]:
    """One server start until the table is current; then a clean stop."""
    counting = Counting()
    sf.contactability_of = counting  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
        listener = sf.ContactabilityListener(storage, PolicySettings())
        runner.add_listener(listener)
        runner.load()
        loads = runner.projector.loads
        runner.catch_up()
        listener.flush(runner, NOW)
        seconds = time.perf_counter() - started
        out = {"mode": listener.start_mode, "recomputed": counting.n,
               "states_read": runner.projector.loads - loads, "seconds": round(seconds, 2)}
        runner.stop()
        return out
    finally:
        sf.contactability_of = counting.original  # type: ignore[assignment]


def live_prime(storage: DuckDBStorage, n_people: int, changed: int, seed: int) -> dict[str, Any]:
    from takt.segments.live import LiveSegments
    from takt.segments.parser import parse

    def defs() -> dict[str, tuple[int, Any]]:
        return {"reachable": (1, parse("trait.email exists"))}

    out: dict[str, Any] = {}
    for name in ("every profile (before)", "changed_since (now)"):
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
        live = LiveSegments(defs, refresh_every_s=0.0)
        live.runner = runner
        runner.add_listener(live)
        runner.load()
        runner.catch_up()
        runner.tick(NOW)
        runner.catch_up()
        runner.save()
        live.save(runner)
        rng = random.Random(seed + len(out))
        storage.log.append([Event(kind="track", event="Product Viewed", message_id=f"lv-{len(out)}-{k}",
                                  source="web", timestamp=NOW, received_at=NOW, provenance="observed",
                                  user_id=f"u{rng.randrange(n_people)}") for k in range(changed)])
        worker = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
        worker.load()
        worker.catch_up()
        worker.save()
        fresh = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
        fresh.load()
        primed = LiveSegments(defs, refresh_every_s=0.0)
        if name.startswith("every"):
            primed._changed_after = lambda r, after: r.projector.profiles()  # type: ignore[method-assign]
        loads, started = fresh.projector.loads, time.perf_counter()
        primed.prime(fresh)
        out[name] = {"states_read": fresh.projector.loads - loads,
                     "seconds": round(time.perf_counter() - started, 2), "pending": len(primed._pending)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", type=int, default=20_000)
    ap.add_argument("--changed", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.profiles, args.changed, args.rounds = 2_000, 50, 2
    figures: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                                          f"{platform.python_version()}", "profiles": args.profiles}
    with tempfile.TemporaryDirectory() as tmp, DuckDBStorage(Path(tmp) / "bench.duckdb") as storage:
        t = time.perf_counter()
        storage.log.append(people_events(args.profiles))
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=CACHE)
        runner.load()
        runner.catch_up()
        runner.save()
        figures["events"] = storage.log.head()
        figures["setup_seconds"] = round(time.perf_counter() - t, 1)
        print(f"{args.profiles:,} people, {storage.log.head():,} events, folded in {figures['setup_seconds']} s",
              file=sys.stderr)
        figures["per_profile"] = per_profile(storage, args.rounds)
        print("per profile:", figures["per_profile"], file=sys.stderr)
        first = start(storage)  # no marker yet: everyone
        storage.log.append([Event(kind="track", event="Consent Updated", message_id=f"chg-{k}", source="web",
                                  timestamp=NOW, received_at=NOW, provenance="customer_provided",
                                  user_id=f"u{k * (args.profiles // args.changed)}",
                                  properties={"purpose": "marketing", "channel": "email", "status": "withdrawn"})
                            for k in range(args.changed)])
        again = start(storage)  # the marker the first start's clean stop left, C people changed since
        storage.snapshots.delete(sf.MARKER)
        without = start(storage)  # as every start did before: no marker
        figures["start"] = {"first_start": first, "restart_with_marker": again, "restart_without_marker": without}
        print("start:", figures["start"], file=sys.stderr)
        figures["live_prime"] = live_prime(storage, args.profiles, args.changed, seed=3)
        print("live prime:", figures["live_prime"], file=sys.stderr)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
