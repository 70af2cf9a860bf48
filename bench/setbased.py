"""Set-based profile aggregates vs the fold on one workspace's log (issue 13, item 5, first part).

    python bench/setbased.py -w WORKSPACE [--threads N]

The log is read once into memory (not timed) and resolved by the live projector (not timed) to map every
event to its final profile. Then, with the garbage collector paused for both:

* fold: ``fold_event`` of every event into its final profile's state, in position order (a profile's state is
  the fold of its events in position order, so this is what a rebuild's profile part costs, without identity
  or storage; it computes every part of the state, the set-based path only some);
* set-based: ``extract`` (Python, one pass), the queries in DuckDB (``--threads``), ``assemble``.

Every profile's parts are compared with the fold's state (``setbased.differences``). Events/s of both.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.events.model import StoredEvent  # noqa: E402
from takt.identity.extract import identifiers_of  # noqa: E402
from takt.profiles.config import ProfileConfig  # noqa: E402
from takt.profiles.fold import IGNORED_KINDS, fold_event  # noqa: E402
from takt.profiles.projector import Projector  # noqa: E402
from takt.profiles.setbased import assemble, differences, extract, queries  # noqa: E402
from takt.profiles.state import ProfileState  # noqa: E402
from takt.storage.duckdb_setbased import run  # noqa: E402
from takt.workspace import open_workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-w", "--workspace", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # a copy: the workspace stays untouched
        copy = Path(tmp) / "ws"
        shutil.copytree(args.workspace, copy)
        ws = open_workspace(copy)
        config = ProfileConfig.from_settings(ws.settings)
        storage = ws.open_storage()
        log: list[StoredEvent] = []
        after = 0
        while batch := storage.log.read(after, 20_000):
            log.extend(batch)
            after = batch[-1].position
        storage.close()
    p = Projector(config)
    p.apply(log)
    owner: dict[int, str] = {}
    for s in log:
        if s.event.kind not in IGNORED_KINDS:
            pid = p.identity.anchor_profile(identifiers_of(s.event, config.identity))
            if pid is not None:
                owner[s.position] = pid
    print(f"{len(log):,} events, {len(p.profiles()):,} profiles")

    gc.disable()
    t0 = time.perf_counter()
    states: dict[str, ProfileState] = {}
    for s in log:
        pid = owner.get(s.position)
        if pid is not None:
            state = states.get(pid)
            if state is None:
                state = states[pid] = ProfileState(pid)
            fold_event(state, s, config)
    fold_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = extract(log, lambda s: owner.get(s.position), config)
    t1 = time.perf_counter()
    rows = run(tables, queries(), threads=args.threads)
    t2 = time.perf_counter()
    parts = assemble(rows)
    t3 = time.perf_counter()
    gc.enable()
    set_s = t3 - t0

    bad = {pid: d for pid, state in states.items() if (d := differences(parts[pid], state))}
    missing = states.keys() ^ parts.keys()
    n = len(log)
    print(f"fold:      {fold_s:6.2f} s  {n / fold_s:10,.0f} events/s")
    print(f"set-based: {set_s:6.2f} s  {n / set_s:10,.0f} events/s  (extract {t1 - t0:.2f} s, "
          f"{tables.ev.num_rows:,} + {tables.ik.num_rows:,} rows; SQL {t2 - t1:.2f} s; assemble {t3 - t2:.2f} s)")
    print(f"profiles compared: {len(states):,}; differing: {len(bad)}; missing on one side: {len(missing)}")
    for pid, d in list(bad.items())[:5]:
        print(pid, d[:3])


if __name__ == "__main__":
    main()
