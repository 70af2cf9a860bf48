"""Sealing benchmark: what per-subject encryption costs the event log, against the same log with sealing off.

Appends N events (P people, default 5,000, each person one key; traits with an email, properties, context) in
batches of 1,000 into a fresh DuckDB log, then reads them all back, with sealing on (the default) and off
(``subject_of`` returning no subject, so every event is stored as plain JSON as before sealing existed). The two
alternate for several rounds in one run and the medians are reported, so the ratio holds even on a loaded
machine. Also: the erasure of one person (``log.erase``) in a log of N events.

    python bench/privacy.py [--events N] [--people P] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psutil

from takt.events.model import Event
from takt.storage.duckdb import DuckDBStorage

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def events(n: int, people: int = 5_000) -> list[Event]:
    out = []
    for i in range(n):
        at = T0 + timedelta(seconds=i)
        out.append(Event(kind="track", message_id=f"m-{i}", source="web", timestamp=at, received_at=at,
                         user_id=f"u{i % people}", event="Product Viewed",
                         properties={"sku": f"SKU-{i % 300}", "price": 12.5 + i % 7, "category": "tents"},
                         context={"ip": "192.0.2.1", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                                  "traits": {"email": f"person{i % people}@example.com"}}))
    return out


def run_once(evs: list[Event], sealed: bool, folder: Path) -> tuple[float, float, float]:
    """(append events/s, read events/s, erase seconds)."""
    patch = mock.patch("takt.log.sealing.subject_of", return_value=None) if not sealed else nullcontext()
    with patch, tempfile.TemporaryDirectory(dir=folder) as d:
        storage = DuckDBStorage(Path(d) / "b.duckdb")
        try:
            t = time.perf_counter()
            for i in range(0, len(evs), 1_000):
                storage.log.append(evs[i:i + 1_000])
            append = len(evs) / (time.perf_counter() - t)
            t = time.perf_counter()
            n = sum(1 for _ in storage.log.iter())
            read = n / (time.perf_counter() - t)
            positions = [p for p, e in enumerate(evs, 1) if e.user_id == "u42"]  # one person
            t = time.perf_counter()
            storage.log.erase(positions)
            erase = time.perf_counter() - t
        finally:
            storage.close()
    return append, read, erase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--people", type=int, default=5_000, help="distinct users (one key each)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    evs = events(args.events, args.people)
    folder = Path(tempfile.gettempdir())
    results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for r in range(args.rounds):
        for sealed in (False, True) if r % 2 == 0 else (True, False):
            results[sealed].append(run_once(evs, sealed, folder))
            a, rd, e = results[sealed][-1]
            print(f"round {r + 1} {'sealed' if sealed else 'plain '}: append {a:,.0f}/s  read {rd:,.0f}/s  "
                  f"erase {e * 1000:.0f} ms", file=sys.stderr)

    def med(sealed: bool, k: int) -> float:
        return statistics.median(x[k] for x in results[sealed])

    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
                   f"{round(psutil.virtual_memory().total / 2**30)} GiB, Python {platform.python_version()}",
        "command": "python bench/privacy.py" + (f" --events {args.events}" if args.events != 50_000 else "")
                   + (f" --people {args.people}" if args.people != 5_000 else ""),
        "events": args.events, "people": args.people, "rounds": args.rounds,
        "append_sealed_per_s": round(med(True, 0)), "append_plain_per_s": round(med(False, 0)),
        "append_ratio": round(med(True, 0) / med(False, 0), 3),
        "read_sealed_per_s": round(med(True, 1)), "read_plain_per_s": round(med(False, 1)),
        "read_ratio": round(med(True, 1) / med(False, 1), 3),
        "erase_person_ms": round(med(True, 2) * 1000, 1),
        "load_average": [round(x, 1) for x in psutil.getloadavg()],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
