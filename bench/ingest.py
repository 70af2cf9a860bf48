"""Ingest benchmark: durable events/s through /v1/batch, /v1/track latency at a fixed rate, server RSS.

Starts a real `takt serve` on a fresh DuckDB workspace (a subprocess, on loopback) and measures:

Each is measured twice in one run, with the server's live profile projection on (the default) and off
(`profiles.live = false`, collection only):

1. throughput: concurrent keep-alive clients POST /v1/batch with 100 events per request (every event a new
   messageId), counting only acknowledged (200) events: each is committed before its answer;
2. latency: single /v1/track calls sent open-loop at a fixed rate (default 1,000 req/s); p50/p99;
3. the server's peak RSS while under that load (sampled);
4. baseline, in the same run: parse the same payloads and bulk-append them into a fresh DuckDB log with no
   HTTP (same normalization code, same append), events/s.

    python bench/ingest.py [--quick] [--json] [--events N] [--clients C] [--rate R]

``--heavy-counts`` measures instead what heavy segment counts do to ingestion (budgets, issue 11): durable
events/s through /v1/batch alone, then with three concurrent heavy segment counts (three read keys, each
re-asking as soon as its count is stopped), then alone again, in one run against one server; it reports the
ratio and the status of every heavy count (each must be stopped with 422 ``query_timeout``/``query_memory``).
The heavy definition is measured once without a tight budget (the CLI, after the server stopped) to show it
takes far longer than the budget.

    python bench/ingest.py --heavy-counts [--quick] [--budget SECONDS] [--json]

The last line with --json is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
TAKT = [sys.executable, "-m", "takt.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_batches(n_events: int, per_request: int, run: str) -> list[bytes]:
    """Realistic tracking payloads: a mix of track/page/identify with properties and context."""
    bodies = []
    k = 0
    for b in range(n_events // per_request):
        items = []
        for i in range(per_request):
            uid = f"user-{(k * 7919) % 50_000}"
            common = {
                "messageId": f"{run}-{k}",
                "anonymousId": f"anon-{k % 80_000}",
                "timestamp": "2026-11-20T10:00:00.000Z",
                "context": {
                    "ip": "203.0.113.7", "locale": "de-DE",
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130",
                    "page": {"path": f"/p/{k % 1000}", "url": f"https://shop.example/p/{k % 1000}"},
                    "library": {"name": "analytics.js", "version": "next-1.70.0"},
                },
            }
            r = i % 10
            if r < 6:
                item = {**common, "type": "track", "userId": uid, "event": "Product Viewed",
                        "properties": {"product_id": f"sku-{k % 5000}", "category": "outdoor", "price": 49.9,
                                       "dwell_seconds": 12}}
            elif r < 9:
                item = {**common, "type": "page", "name": "Product", "properties": {"title": "Tent"}}
            else:
                item = {**common, "type": "identify", "userId": uid,
                        "traits": {"email": f"{uid}@example.com", "country": "DE"}}
            items.append(item)
            k += 1
        bodies.append(orjson.dumps({"batch": items, "sentAt": "2026-11-20T10:00:01.000Z"}))
        _ = b
    return bodies


class Conn:
    """A minimal HTTP/1.1 keep-alive client (low overhead, so the load generator leaves CPU to the server)."""

    def __init__(self, host: str, port: int, auth: str):
        self.host, self.port, self.auth = host, port, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> int:
        assert self.reader and self.writer
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Basic {self.auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def get(self, path: str, auth: str) -> tuple[int, bytes]:
        assert self.reader and self.writer
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: {auth}\r\n\r\n".encode())
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, (await self.reader.readexactly(length)) if length else b""

    async def close(self) -> None:
        if self.writer:
            self.writer.close()


async def throughput(port: int, auth: str, bodies: list[bytes], clients: int, per_request: int) -> dict[str, float]:
    queue = list(reversed(bodies))
    acked = 0
    refused = 0

    async def worker() -> None:
        nonlocal acked, refused
        c = Conn("127.0.0.1", port, auth)
        await c.open()
        while queue:
            body = queue.pop()
            while True:
                status = await c.post("/v1/batch", body)
                if status == 200:
                    acked += per_request
                    break
                if status == 429:
                    refused += 1
                    await asyncio.sleep(0.05)
                    continue
                raise RuntimeError(f"unexpected status {status}")
        await c.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"events": acked, "seconds": elapsed, "events_per_s": acked / elapsed, "refused_429": refused}


async def latency(port: int, auth: str, rate: int, seconds: float, run: str) -> dict[str, float]:
    n = int(rate * seconds)
    bodies = [orjson.dumps({"userId": f"lat-{i % 1000}", "event": "Button Clicked", "messageId": f"{run}-lat-{i}",
                            "properties": {"button": "buy"}}) for i in range(n)]
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(64):
        c = Conn("127.0.0.1", port, auth)
        await c.open()
        pool.put_nowait(c)
    lat: list[float] = []
    errors = 0

    async def one(body: bytes, due: float) -> None:
        nonlocal errors
        c = await pool.get()
        try:
            status = await c.post("/v1/track", body)
        finally:
            pool.put_nowait(c)
        if status != 200:
            errors += 1
        # latency from the scheduled send time (open loop: queueing delay counts)
        lat.append(time.perf_counter() - due)

    loop_start = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        due = loop_start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        await pool.get_nowait().close()
    lat.sort()
    return {
        "requests": n, "errors": errors,
        "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "max_ms": lat[-1] * 1000, "achieved_rate": n / (time.perf_counter() - loop_start),
    }


def fresh_database(admin_url: str, name: str) -> str:
    """A new, empty PostgreSQL database next to ``admin_url``; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def baseline(bodies: list[bytes], workdir: Path, database_url: str | None = None) -> dict[str, float]:
    """Same payloads, same normalization, same append into the same backend; no HTTP, no server."""
    sys.path.insert(0, str(ROOT / "src"))
    from takt.ingest.segment import Limits, Source, events_from_body
    from takt.storage.base import Storage
    from takt.storage.duckdb import DuckDBStorage

    storage: Storage
    if database_url:
        from takt.storage.postgres import PostgresStorage

        storage = PostgresStorage(fresh_database(database_url, "takt_bench_baseline"))
    else:
        storage = DuckDBStorage(workdir / "baseline.duckdb")
    src = Source("bench", "customer_provided")
    limits = Limits()
    now = datetime.now(UTC)
    n = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    pending = []
    for body in bodies:
        evs = events_from_body(orjson.loads(body), "batch", src, now, limits)
        pending.extend(evs)
        if len(pending) >= 5000:
            n += storage.log.append(pending).stored
            pending = []
    if pending:
        n += storage.log.append(pending).stored
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    storage.close()
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed, "cpu_us_per_event": cpu / max(1, n) * 1e6}


def wait_for_profiles(port: int, timeout: float = 1800) -> float:
    """Seconds until the server's live profile projection has folded everything in the log."""
    import http.client

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        conn.close()
        if health.get("profiles_position", 0) >= health.get("log_head", 0):
            break
        time.sleep(0.2)
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process (and its children): a per-event cost that a machine
    shared with other work distorts far less than events/s."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        t = p.cpu_times()
        total += t.user + t.system
    return total


class RssSampler(threading.Thread):
    """Peak RSS of a process and its children, sampled every 50 ms (``bench/product.py`` and
    ``bench/profiles.py`` use it too)."""

    def __init__(self, pid: int, children: bool = True):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.children = children
        self.peak = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                rss = self.proc.memory_info().rss
                for child in self.proc.children(recursive=True) if self.children else ():
                    rss += child.memory_info().rss
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def finish(self) -> float:
        """Stop sampling; the peak in MB."""
        self.stop_flag.set()
        self.join()
        return self.peak / 2**20


# ---- --heavy-counts: ingestion while heavy segment counts run under their budget
HEAVY_AGGREGATES = 400
LATE_COUNT_WAIT = 60.0


def heavy_definition(n: int = HEAVY_AGGREGATES) -> str:
    """Heavy in SQL, light live: ``n`` sums, each of a different event property (a JSON read and a numeric test
    per event and aggregate; no common subexpression for the engine to share), all in the one event pass that
    the SQL computes for every profile; behind a trait test that no profile passes, so live evaluation (which
    stops at the first false part of an ``and``) stays cheap and does not slow ingestion by itself."""
    sums = " or ".join(f'sum(track "Product Viewed".p{i}) > {i}' for i in range(n))
    return f'trait.bench_never = "x" and ({sums})'


async def heavy_counter(port: int, auth: str, stop: asyncio.Event, log: list[dict[str, object]]) -> None:
    """Ask for the heavy count again and again until ``stop``: each answer's status, code and seconds."""
    c = Conn("127.0.0.1", port, "")
    await c.open()
    while not stop.is_set():
        started = time.perf_counter()
        status, body = await c.get("/v1/segments/heavy/count", auth)
        code = json.loads(body).get("code") if body else None
        log.append({"status": status, "code": code, "seconds": round(time.perf_counter() - started, 2)})
        if status == 429:
            await asyncio.sleep(0.2)
    await c.close()


async def ingest_with(port: int, auth: str, bodies: list[bytes], clients: int, per_request: int,
                      heavy_auths: list[str]) -> tuple[dict[str, float], list[list[dict[str, object]]]]:
    stop = asyncio.Event()
    logs: list[list[dict[str, object]]] = [[] for _ in heavy_auths]
    heavy = [asyncio.create_task(heavy_counter(port, a, stop, log)) for a, log in zip(heavy_auths, logs, strict=True)]
    if heavy:  # every count has been answered once (its first table refresh is done) before ingestion starts
        deadline = time.perf_counter() + LATE_COUNT_WAIT * 2
        while not all(logs) and time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
        for log in logs:
            for x in log:
                x["before_ingestion"] = True
    tp = await throughput(port, auth, bodies, clients, per_request)
    stop.set()
    if heavy:
        # the counts in flight end within their budget once running; what delays them is the unbudgeted part
        # before the query (bringing the projection and the tables up to date): wait a while, then hang up
        _, late = await asyncio.wait(heavy, timeout=LATE_COUNT_WAIT)
        for task, log in zip(heavy, logs, strict=True):
            if task in late:
                task.cancel()
                log.append({"status": None, "code": "unfinished: still preparing when the client hung up",
                            "seconds": None})
        await asyncio.gather(*heavy, return_exceptions=True)
    return tp, logs


def _cli(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run([*TAKT, *args], check=True, env=env, capture_output=True, text=True).stdout


def heavy_counts(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, object]:
    n_events = args.events or (20_000 if args.quick else 100_000)
    preload = 20_000 if args.quick else 100_000
    budget = args.budget or (1.0 if args.quick else 5.0)
    per_request = 100
    run = f"h{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-heavy-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        ws = tmp / "ws"
        _cli(["init", str(ws)], env)
        key = _cli(["keys", "create", "-w", str(ws), "--kind", "write", "--name", "bench", "--provenance",
                    "customer_provided"], env).strip().splitlines()[-1]
        auth = base64.b64encode(f"{key}:".encode()).decode()
        admin = _cli(["keys", "create", "-w", str(ws), "--kind", "admin", "--name", "ops"], env).strip().splitlines()[-1]
        readers = [_cli(["keys", "create", "-w", str(ws), "--kind", "read", "--name", f"analyst{i}"], env
                        ).strip().splitlines()[-1] for i in range(3)]
        say(f"building {preload + 3 * n_events:,} events …")
        bodies = make_batches(preload + 3 * n_events, per_request, run)
        per_phase = n_events // per_request
        pre, phases = bodies[:preload // per_request], [bodies[preload // per_request + i * per_phase:
                                                               preload // per_request + (i + 1) * per_phase]
                                                        for i in range(3)]
        port = free_port()
        server_env = {**env, "TAKT_SEGMENTS__QUERY_TIMEOUT_SECONDS": str(budget)}
        server = subprocess.Popen([*TAKT, "serve", "-w", str(ws), "--port", str(port)], env=server_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            say(f"preloading {preload:,} events …")
            asyncio.run(throughput(port, auth, pre, args.clients, per_request))
            wait_for_profiles(port)
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/v1/segments", body=json.dumps({"name": "heavy", "definition": heavy_definition(),
                                                                  "allow_unknown_names": True}),
                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 201, r.read()
            r.read()
            conn.close()
            results = []
            for label, heavy in (("alone", False), ("with 3 heavy counts", True), ("alone again", False)):
                say(f"[{label}] ingesting {n_events:,} events, {args.clients} clients …")
                tp, logs = asyncio.run(ingest_with(port, auth, phases[len(results)], args.clients, per_request,
                                                   [f"Bearer {k}" for k in readers] if heavy else []))
                say(f"  {tp['events_per_s']:,.0f} events/s ({tp['events']:,} events in {tp['seconds']:.1f} s)"
                    + (f"; heavy counts: {[[x['status'] for x in log] for log in logs]}" if heavy else ""))
                results.append((tp, logs))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # requests still preparing hold the graceful shutdown
                server.kill()
                server.wait()
        say(f"the heavy definition without a tight budget (CLI, budget {10 * budget:g} s) …")
        started = time.perf_counter()
        cli = subprocess.run([*TAKT, "segment", "count", "-w", str(ws), "heavy"], capture_output=True, text=True,
                             env={**env, "TAKT_SEGMENTS__QUERY_TIMEOUT_SECONDS": str(10 * budget)})
        unbudgeted = time.perf_counter() - started
        say(f"  exit {cli.returncode} after {unbudgeted:.1f} s: {(cli.stdout + cli.stderr).strip()[:200]}")
        alone = (results[0][0]["events_per_s"] + results[2][0]["events_per_s"]) / 2
        loaded = results[1][0]["events_per_s"]
        counts = [x for log in results[1][1] for x in log]
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
            "command": "python bench/ingest.py --heavy-counts" + (" --quick" if args.quick else ""),
            "budget_s": budget,
            "events_per_phase": n_events,
            "alone_events_per_s": [round(results[0][0]["events_per_s"]), round(results[2][0]["events_per_s"])],
            "with_heavy_events_per_s": round(loaded),
            "ratio_with_heavy_vs_alone": round(loaded / alone, 3),
            "heavy_counts": len(counts),
            "heavy_statuses": sorted({f"{x['status']} {x['code']}" for x in counts}),
            "heavy_all_stopped_4xx": all(x["status"] in (422, 429) for x in counts if x["status"] is not None),
            "heavy_unfinished": sum(1 for x in counts if x["status"] is None),
            "heavy_seconds_max": max((float(str(x["seconds"])) for x in counts if x["status"] == 422), default=0.0),
            "heavy_unbudgeted": {"exit": cli.returncode, "seconds": round(unbudgeted, 1),
                                 "timeout_s": 10 * budget,
                                 "output": (cli.stdout + cli.stderr).strip()[:160]},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (< 60 s)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    ap.add_argument("--events", type=int, default=None, help="events for the throughput phase")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rate", type=int, default=1000, help="requests/s for the latency phase")
    ap.add_argument("--latency-seconds", type=float, default=None)
    ap.add_argument("--heavy-counts", action="store_true",
                    help="ingestion alone and with three concurrent heavy segment counts (see above)")
    ap.add_argument("--budget", type=float, default=None,
                    help="--heavy-counts: segments.query_timeout_seconds of the server (default 1, quick; 5)")
    ap.add_argument("--postgres", default=None, metavar="URL",
                    help="run on PostgreSQL: a server URL (its databases takt_bench_* are created and dropped)")
    args = ap.parse_args()
    n_events = args.events or (50_000 if args.quick else 500_000)
    lat_seconds = args.latency_seconds or (5.0 if args.quick else 15.0)
    per_request = 100
    run = f"r{os.getpid()}"

    def say(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)

    if args.heavy_counts:
        figures = heavy_counts(args, say)
        say(json.dumps(figures, indent=2))
        if args.json:
            print(json.dumps(figures))
        return
    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        ws = tmp / "ws"
        init = [*TAKT, "init", str(ws)]
        if args.postgres:
            init += ["--database-url", fresh_database(args.postgres, "takt_bench_server")]
        subprocess.run(init, check=True, env=env, capture_output=True)
        out = subprocess.run([*TAKT, "keys", "create", "-w", str(ws), "--kind", "write", "--name", "bench",
                              "--provenance", "customer_provided"], check=True, env=env, capture_output=True,
                             text=True).stdout
        key = out.strip().splitlines()[-1]
        auth = base64.b64encode(f"{key}:".encode()).decode()
        say(f"building {n_events:,} events …")
        bodies = make_batches(n_events, per_request, run)

        phases = {}
        for live in (True, False):
            label = "live profiles on (default)" if live else "collect only (profiles.live = false)"
            phase_env = {**env, "TAKT_PROFILES__LIVE": "true" if live else "false"}
            port = free_port()
            server = subprocess.Popen([*TAKT, "serve", "-w", str(ws), "--port", str(port)], env=phase_env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            sampler = RssSampler(server.pid)
            sampler.start()
            tag = f"{run}-{'live' if live else 'collect'}"
            phase_bodies = [b.replace(run.encode(), tag.encode()) for b in bodies]
            say(f"[{label}] throughput: {args.clients} clients, {per_request} events per request …")
            cpu0 = cpu_seconds(server.pid)
            tp = asyncio.run(throughput(port, auth, phase_bodies, args.clients, per_request))
            tp["cpu_us_per_event"] = (cpu_seconds(server.pid) - cpu0) / max(1, tp["events"]) * 1e6
            say(f"  {tp['events_per_s']:,.0f} events/s ({tp['events']:,} events in {tp['seconds']:.1f} s); "
                f"server CPU {tp['cpu_us_per_event']:.0f} µs per event")
            if live:
                caught_up = wait_for_profiles(port)
                say(f"  profiles caught up with the log {caught_up:.1f} s after the load ended")
            say(f"[{label}] latency: /v1/track at {args.rate} req/s for {lat_seconds:.0f} s …")
            cpu0 = cpu_seconds(server.pid)
            lt = asyncio.run(latency(port, auth, args.rate, lat_seconds, tag))
            lt["cpu_us_per_request"] = (cpu_seconds(server.pid) - cpu0) / max(1, lt["requests"]) * 1e6
            say(f"  p50 {lt['p50_ms']:.2f} ms, p99 {lt['p99_ms']:.2f} ms (achieved {lt['achieved_rate']:.0f} req/s); "
                f"server CPU {lt['cpu_us_per_request']:.0f} µs per request")
            sampler.stop_flag.set()
            sampler.join()
            server.terminate()
            server.wait(timeout=600)
            phases[live] = (tp, lt, sampler.peak, caught_up if live else 0.0)
        tp, lt, peak, catch_up_s = phases[True]
        ctp, clt, cpeak, _ = phases[False]
        say("baseline: same payloads, normalization and append without HTTP …")
        base = baseline(bodies, tmp, args.postgres)
        say(f"  {base['events_per_s']:,.0f} events/s")
        figures = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
            "command": "python bench/ingest.py" + (" --quick" if args.quick else "")
                       + (" --postgres URL" if args.postgres else ""),
            "backend": "postgres" if args.postgres else "duckdb",
            "events": tp["events"],
            "events_per_s": round(tp["events_per_s"]),
            "refused_429": tp["refused_429"],
            "baseline_events_per_s": round(base["events_per_s"]),
            "ratio_vs_baseline": round(tp["events_per_s"] / base["events_per_s"], 3),
            "p50_ms": round(lt["p50_ms"], 3),
            "p99_ms": round(lt["p99_ms"], 3),
            "latency_rate": args.rate,
            "latency_errors": lt["errors"] + clt["errors"],
            "peak_rss_mb": round(peak / 2**20, 1),
            "profiles_catch_up_s": round(catch_up_s, 1),
            "collect_only_events_per_s": round(ctp["events_per_s"]),
            "collect_only_ratio_vs_baseline": round(ctp["events_per_s"] / base["events_per_s"], 3),
            "collect_only_p50_ms": round(clt["p50_ms"], 3),
            "collect_only_p99_ms": round(clt["p99_ms"], 3),
            "collect_only_peak_rss_mb": round(cpeak / 2**20, 1),
            "server_cpu_us_per_event": round(tp["cpu_us_per_event"], 1),
            "baseline_cpu_us_per_event": round(base["cpu_us_per_event"], 1),
            "collect_only_server_cpu_us_per_event": round(ctp["cpu_us_per_event"], 1),
            "server_cpu_us_per_request": round(lt["cpu_us_per_request"]),
            "collect_only_server_cpu_us_per_request": round(clt["cpu_us_per_request"]),
            "load_average": round(os.getloadavg()[0], 1),
        }
        say(json.dumps(figures, indent=2))
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
