"""The set-based rebuild vs the live fold on one workspace's log, in memory (issue 13, item 5).

    python bench/setbased.py -w WORKSPACE [--threads N] [--repeat K]

The log is read once into memory (timed separately: reading and decoding, sealed payloads opened). Then, with
the garbage collector paused for both:

* fold: the live projector (``Projector.apply``: identity event by event, the fold, re-folds on merges), no
  store;
* set-based: ``takt.profiles.rebuild.rebuild_events`` with the DuckDB engine (``--threads``), as ``takt rebuild``
  runs it (its phases are printed).

Both results are compared (every state, interest scores to 1e-9 relative; derived events; the identity graph).
Wall and CPU seconds (every thread of the process and its workers) are printed: on a shared machine the
CPU figure is the one to compare. These are kernel figures (no store writes); the user's figure is
``rebuild_events_per_s`` of ``bench/product.py``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.profiles.config import ProfileConfig  # noqa: E402
from takt.profiles.projector import Projector  # noqa: E402
from takt.profiles.rebuild import read_log, rebuild_events  # noqa: E402
from takt.storage.duckdb_setbased import run_columns  # noqa: E402
from takt.workspace import open_workspace  # noqa: E402


def cpu() -> float:
    """CPU seconds of this process and its waited-for children (``--workers``)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Any) -> tuple[Any, float, float]:
    gc.disable()
    w, c = time.perf_counter(), cpu()
    try:
        out = fn()
    finally:
        gc.enable()
    return out, time.perf_counter() - w, cpu() - c


def fold(log: list[Any], config: ProfileConfig) -> tuple[Projector, list[Any]]:
    p = Projector(config)
    return p, p.apply(log)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-w", "--workspace", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-sql", action="store_true", help="the simple profiles by the whole fold (no aggregates)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # a copy: the workspace stays untouched
        copy = Path(tmp) / "ws"
        shutil.copytree(args.workspace, copy)
        ws = open_workspace(copy)
        config = ProfileConfig.from_settings(ws.settings)
        storage = ws.open_storage()
        log, rw, rc = timed(lambda: read_log(storage))
        storage.close()
    n = len(log)
    print(f"{n:,} events; read and decode {rw:.2f} s wall, {rc:.2f} s CPU ({n / rc:,.0f} events/s CPU)")
    for _ in range(args.repeat):
        (p, derived), fw, fc = timed(lambda: fold(log, config))
        engine = None if args.no_sql else (lambda c, q: run_columns(c, q, args.threads))
        got, sw, sc = timed(lambda: rebuild_events(log, config, engine, args.workers))  # noqa: B023 (called at once)
        print(f"fold:      {fw:6.2f} s wall {fc:6.2f} s CPU  {n / fc:10,.0f} events/s CPU")
        print(f"set-based: {sw:6.2f} s wall {sc:6.2f} s CPU  {n / sc:10,.0f} events/s CPU   "
              + "  ".join(f"{k} {v:.2f}" for k, v in got.timings.items()))
        print("           " + "  ".join(f"{k} {v:,}" for k, v in got.counts.items()))
    want = {s.id: s for s in p.states()}
    bad = 0
    for pid, state in want.items():
        mine = got.states.get(pid)
        if mine is None:
            bad += 1
            continue
        a, b = mine.to_dict(), state.to_dict()
        ia, ib = a.pop("interests"), b.pop("interests")
        if a != b or ia.keys() != ib.keys() or any(
                ia[k][1] != ib[k][1] or not math.isclose(ia[k][0], ib[k][0], rel_tol=1e-9) for k in ib):
            bad += 1
    same_derived = [e.message_id for e in got.derived] == [e.message_id for e in derived]
    same_graph = got.graph.snapshot() == p.identity.snapshot()
    print(f"profiles compared: {len(want):,} (set-based {len(got.states):,}); differing: {bad}; "
          f"derived events equal: {same_derived} ({len(derived)}); identity graph equal: {same_graph}")


if __name__ == "__main__":
    main()
