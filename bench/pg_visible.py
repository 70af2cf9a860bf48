"""Visibility on PostgreSQL: acknowledged write → readable through a serving process that does not fold.

    TAKT_TEST_POSTGRES_URL=postgresql://… python bench/pg_visible.py [--writes 300] [--background 200] [--json]

A fresh database and workspace; `takt worker` (folds, publishes each chunk to the profile store) and `takt
serve` (``server.fold = auto``: reads the store) as separate processes. A background writer sends
``--background`` identify calls per second for other people. Then, ``--writes`` times, one client sends an
identify for a new person and, right after the 200, reads the profile by identifier through the same server:
the read waits (read your writes) until the store's published position reaches the write. ``visible_ms`` of one
write is the time from its acknowledgement to the end of that read's 200; the figures are its percentiles.
``read_alone`` is the same read of people already published (what ``visible_ms`` includes besides the wait).
Also reported: the CPU the serving process and the worker spent per second while idle (the store-position
poll and the log poll), and the server's `folded` count (0: it never folded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import TaktServer, make_workspace
from tests.test_pg_worker import Worker, call, health


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def idle_cpu(pid: int, seconds: float = 5.0) -> float:
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return (after.user + after.system - before.user - before.system) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--background", type=float, default=200.0, help="other identify calls per second")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = os.environ["TAKT_TEST_POSTGRES_URL"]
    import psycopg

    name = "takt_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    root = Path(f"/tmp/{name}")
    worker: Worker | None = None
    server: TaktServer | None = None
    try:
        ws = make_workspace(root / "ws", database_url=url)
        worker = Worker(ws, "bench").start()
        worker.wait_for("leader")
        server = TaktServer(ws).start()
        time.sleep(2)
        assert worker.proc is not None and server.proc is not None
        idle_server = idle_cpu(server.proc.pid)
        idle_worker = idle_cpu(worker.proc.pid)
        stop = threading.Event()
        sent = [0]

        def background() -> None:
            n = 0
            interval = 1.0 / args.background
            nxt = time.monotonic()
            while not stop.is_set():
                n += 1
                call(server, "POST", "/v1/identify", ws.write_key, basic=True,
                     body={"userId": f"bg{n}", "traits": {"email": f"bg{n}@example.com"}})
                sent[0] = n
                nxt += interval
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        bg = threading.Thread(target=background, daemon=True)
        if args.background > 0:
            bg.start()
            time.sleep(2)
        visible: list[float] = []
        errors = 0
        for i in range(args.writes):
            status, body = call(server, "POST", "/v1/identify", ws.write_key, basic=True,
                                body={"userId": f"v{i}", "traits": {"email": f"v{i}@example.com"}})
            assert status == 200, body
            acked = time.perf_counter()
            q = urllib.parse.urlencode({"identifier": f"email:v{i}@example.com"})
            status, body = call(server, "GET", f"/v1/profiles?{q}", ws.admin_key)
            if status != 200:
                errors += 1
                continue
            visible.append((time.perf_counter() - acked) * 1000)
        stop.set()
        if bg.is_alive():
            bg.join(timeout=10)
        reads: list[float] = []  # the read alone, of people already published: what visible_ms includes
        for i in range(min(args.writes, 100)):
            q = urllib.parse.urlencode({"identifier": f"email:v{i}@example.com"})
            t0 = time.perf_counter()
            status, _ = call(server, "GET", f"/v1/profiles?{q}", ws.admin_key)
            reads.append((time.perf_counter() - t0) * 1000)
        h = health(server)
        out: dict[str, Any] = {
            "writes": args.writes, "background_per_s": args.background, "background_sent": sent[0],
            "visible_p50_ms": round(percentile(visible, 50), 1), "visible_p95_ms": round(percentile(visible, 95), 1),
            "visible_p99_ms": round(percentile(visible, 99), 1), "visible_max_ms": round(max(visible), 1),
            "read_alone_p50_ms": round(percentile(reads, 50), 1), "read_alone_p99_ms": round(percentile(reads, 99), 1),
            "load_average": os.getloadavg()[0], "errors": errors, "server_folded": h["projection"]["folded"], "server_folds": h["projection"]["folds"],
            "idle_cpu_server": round(idle_server, 4), "idle_cpu_worker": round(idle_worker, 4),
        }
        print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
