"""The product benchmark (issue 13): what users run, on a workspace built through the product's own path.

    python bench/product.py [--quick] [--json] [--profiles N] [--events M] [--backend duckdb|postgres]
                            [--database-url URL] [--keep DIR] [--seconds S] [--rate R] [--ingest-rate E]
                            [--drain S]

Builds a workspace the way a user does (default 1M profiles / 20M events; ``--quick`` 20k / 400k):

1. ``takt init`` (DuckDB, or ``--backend postgres``: a fresh database on ``--database-url`` /
   ``$TAKT_TEST_POSTGRES_URL``) and API keys with ``takt keys create``;
2. the CRM's customers (crm_id, email, country, name) as a CSV file through ``takt import customers``;
3. the tracking events (the shop's backend, a server write key: identify with the customer's email, searches with destination interests, page and
   product views, orders with revenue; app or web) through ``POST /v1/batch`` of a real ``takt serve`` (16
   keep-alive clients, every event acknowledged durably; the server collects only, ``profiles.live = false``:
   the projection is what step 4 builds);
4. ``takt rebuild`` in a fresh process: ``rebuild_events_per_s`` (the log's events over the process's wall
   time) and ``rebuild_peak_rss_mb`` (sampled);

then measures, each figure beside its target and, where one exists, the kernel figure of the same run:

- ``cli_help_seconds``: ``takt --help``, a fresh process (median of 5);
- ``cli_count_seconds``: ``takt segment count five --json``, a fresh process, the five-condition segment of
  ``bench/segments.py`` stored with ``takt segment create`` (the first count after the rebuild; a second one is
  ``cli_count_repeat_seconds``); kernel: the same compiled SQL timed directly on the tables it left
  (``kernel_count_sql_seconds``, best of 3; the member counts must agree);
- on a served workspace (``takt serve``, live profiles on, the default): ``api_count_seconds`` (``GET
  /v1/segments/five/count``, warm: median of 3 after a first one); ``count_after_ingest_seconds``: 10,000 new
  events of 100 new people who all match the segment, each batch acknowledged, then counted (from the last
  acknowledgement to the answer; ``count_after_ingest_delta`` is the members it found, 100 when fresh);
- under load, open-loop (each request at its scheduled time, latency from that time, so queueing shows; the
  load generator is its own process): ``POST /v1/decide``, ``POST /v1/next-best-offer`` (a 48-offer catalog,
  ``bench/decide.py``'s) and ``GET /v1/profiles/{id}`` at ``--rate`` (500) requests/s each, while
  ``--ingest-rate`` (5,000) events/s are posted to ``/v1/batch``: ``decide_p99_ms``, ``nbo_p99_ms``,
  ``read_p99_ms``; meanwhile a probe tracks an event for an existing person and polls its profile until the
  event is counted: ``visible_p99_ms`` (acknowledgement → visible in the served profile). An overloaded server
  drains its queue long after the schedule ends: what is unanswered ``--drain`` (120) seconds after it counts as
  ``unanswered`` (``decide_unanswered`` …), its wait so far taken as its latency (a lower bound);
- ``serve_peak_rss_mb``: the server's peak RSS from its start to its stop (sampled).

Kernel figures: ``kernel_rebuild_sql_events_per_s`` — the per-person aggregates of the rebuild (events, first
and last seen, counts per event name, orders, revenue) as one SQL statement over the log table in the
workspace's own database (no identity stitching); ``kernel_count_sql_seconds`` above.

Every stage reports its figure; a stage that fails is reported (``failures`` in the JSON, the table, exit 1)
and the stages that need it are skipped. The last line with ``--json`` is one JSON object: each figure as a
number at the top level, and ``results``: per key its value, target, met (true/false/null) and kernel figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import decide as decide_bench  # noqa: E402  (bench/decide.py: the offer catalog, destinations, percentiles)

import ingest as ingest_bench  # noqa: E402  (bench/ingest.py: fresh PostgreSQL databases)
from segments import DEFINITION  # noqa: E402  (bench/segments.py: the five-condition segment)

SEGMENT = "five"
PER_REQUEST = 200  # events per /v1/batch request while building
LOAD_PER_REQUEST = 100  # events per /v1/batch request under load
NEW_PEOPLE = 100  # count after ingest: new people who all match the five conditions, 100 events each
DAY = 86400

# key, comparison, target, unit, kernel key (or None)
TARGETS: list[tuple[str, str, float, str, str | None]] = [
    ("rebuild_events_per_s", ">=", 300_000, "events/s", "kernel_rebuild_sql_events_per_s"),
    ("rebuild_peak_rss_mb", "<", 4_000, "MB", None),
    ("cli_count_seconds", "<", 2, "s", "kernel_count_sql_seconds"),
    ("api_count_seconds", "<", 1, "s", "kernel_count_sql_seconds"),
    ("count_after_ingest_seconds", "<", 1, "s", None),
    ("decide_p99_ms", "<", 5, "ms", None),
    ("nbo_p99_ms", "<", 5, "ms", None),
    ("read_p99_ms", "<", 5, "ms", None),
    ("visible_p99_ms", "<", 100, "ms", None),
    ("serve_peak_rss_mb", "<", 2_000, "MB", None),
    ("cli_help_seconds", "<", 0.3, "s", None),
]


# ---- data: the CRM's customers and the tracking events -------------------------------------------------------
def write_customers(path: Path, n_profiles: int) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["crm_id", "email", "first_name", "country", "updated_at"])
        for p in range(n_profiles):
            w.writerow([f"c{p}", f"p{p}@example.com", f"Name{p}", decide_bench.COUNTRIES[p % 4] if p % 4 else "DE",
                        "2026-01-15T09:00:00Z"])


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tracking_event(i: int, n_profiles: int, run: str, anchor: float) -> dict[str, Any]:
    """Event ``i`` of the log: person ``i % P`` (each person's first is an identify with the CRM's email,
    linking them to their customer record); the others a mix of searches, page and product views and orders
    spread over the last year, through the app for every third person, else the web."""
    p, r = i % n_profiles, i // n_profiles
    mixed = (i * 2654435761) & 0xFFFFFFFF  # Knuth's multiplicative hash: its high bits are well mixed
    h = (mixed * 100) >> 32
    ts = anchor - ((i * 7919) % (365 * DAY)) - 60
    common: dict[str, Any] = {
        "messageId": f"{run}-{i}", "userId": f"u{p}", "anonymousId": f"a{p}", "timestamp": iso(ts),
        "context": {"channel": "app" if p % 3 == 0 else "web", "locale": "de-DE", "ip": "203.0.113.7",
                    "library": {"name": "analytics.js", "version": "next-1.70.0"}},
    }
    if r == 0:
        return {**common, "type": "identify", "traits": {"email": f"p{p}@example.com"}}
    d = decide_bench.DESTS[((mixed >> 8) & 0xFFFF) % len(decide_bench.DESTS)]
    c = decide_bench.CATS[((mixed >> 12) & 0xFFFF) % len(decide_bench.CATS)]
    if h < 35:
        return {**common, "type": "track", "event": "Products Searched",
                "properties": {"query": d, "interests": [f"destination:{d}"]}}
    if h < 70:
        return {**common, "type": "page", "name": "Product", "properties": {"path": f"/p/{i % 1000}",
                                                                            "category": c}}
    if h < 88:
        return {**common, "type": "track", "event": "Product Viewed",
                "properties": {"product_id": f"sku-{c}-{i % 4 + 1}", "category": c, "price": 49.9}}
    return {**common, "type": "track", "event": "Order Completed",
            "properties": {"order_id": f"{run}-o{i}", "revenue": 20 + (i % 180),
                           "products": [{"product_id": f"sku-{c}-{i % 4 + 1}", "category": c}]}}


def batches(n_events: int, n_profiles: int, run: str, anchor: float, per_request: int) -> Iterator[bytes]:
    for start in range(0, n_events, per_request):
        items = [tracking_event(i, n_profiles, run, anchor) for i in range(start, min(n_events, start + per_request))]
        yield orjson.dumps({"batch": items})


def matching_people(run: str, anchor: float) -> list[bytes]:
    """10,000 events of 100 new people, each of whom matches the five conditions once folded: country DE,
    three orders of 80 in the last days, through the app, 96 searches for New York."""
    out = []
    for q in range(NEW_PEOPLE):
        uid = f"{run}-new{q}"
        ctx = {"channel": "app"}
        items: list[dict[str, Any]] = [{"type": "identify", "userId": uid, "messageId": f"{uid}-id",
                                        "timestamp": iso(anchor - 3600), "context": ctx,
                                        "traits": {"country": "DE", "email": f"{uid}@example.com"}}]
        for k in range(3):
            items.append({"type": "track", "event": "Order Completed", "userId": uid, "messageId": f"{uid}-o{k}",
                          "timestamp": iso(anchor - 3000 + k), "context": ctx,
                          "properties": {"order_id": f"{uid}-o{k}", "revenue": 80}})
        for k in range(96):
            items.append({"type": "track", "event": "Products Searched", "userId": uid, "messageId": f"{uid}-s{k}",
                          "timestamp": iso(anchor - 2000 + k), "context": ctx,
                          "properties": {"query": "new york", "interests": ["destination:new-york"]}})
        out.append(orjson.dumps({"batch": items}))
    return out


# ---- HTTP: a minimal keep-alive client (cheap, so the load generator leaves the CPU to the server) ------------
async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, (await reader.readexactly(length)) if length else b""


class Conn:
    """One keep-alive connection; a request on a connection the server has closed meanwhile (its keep-alive
    timeout) is sent again once on a new connection, as HTTP clients do."""

    def __init__(self, port: int):
        self.port = port
        self.rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.rw is None:
                self.rw = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                return await exchange(self.rw[0], self.rw[1], raw)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.rw is not None:
            self.rw[1].close()
            self.rw = None


def request(method: str, path: str, auth: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def post_all(port: int, auth: str, bodies: Iterator[bytes], total: int, clients: int,
                   progress: Callable[[int], None]) -> dict[str, float]:
    """Post every body to /v1/batch from ``clients`` keep-alive connections; only acknowledged events count
    (a 429 is retried after a pause); any other status stops the run."""
    acked = 0
    refused = 0
    lock_free = iter(bodies)

    async def worker() -> None:
        nonlocal acked, refused
        conn = Conn(port)  # a batch sent again is stored once: events are idempotent on their messageId
        try:
            for body in lock_free:
                n = body.count(b'"messageId"')
                while True:
                    status, answer = await conn.call(request("POST", "/v1/batch", auth, body))
                    if status == 200:
                        acked += n
                        progress(acked)
                        break
                    if status == 429:
                        refused += 1
                        await asyncio.sleep(0.05)
                        continue
                    raise RuntimeError(f"/v1/batch answered {status}: {answer[:300]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if acked != total:
        raise RuntimeError(f"{acked:,} of {total:,} events acknowledged")
    return {"events": acked, "seconds": elapsed, "events_per_s": acked / elapsed, "refused_429": refused}


# ---- the open-loop load generator (its own process: `bench/product.py --load`, the spec on stdin) ------------
async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    port, seconds, warmup = spec["port"], spec["seconds"], spec["warmup"]
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    end = start + warmup + seconds

    async def stream(s: dict[str, Any]) -> dict[str, Any]:
        conns: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(s["connections"]):
            conns.put_nowait(Conn(port))
        rng = random.Random(s["name"])
        lat: list[float] = []
        errors: dict[str, int] = {}
        done_at: list[float] = []
        n_warm = int(s["rate"] * warmup)
        n = n_warm + int(s["rate"] * seconds)
        bodies = [b.encode() if isinstance(b, str) else None for b in s.get("bodies", [])]
        paths = s.get("paths") or [s["path"]]

        async def one(i: int, scheduled: float, raw: bytes) -> None:
            conn = await conns.get()
            try:
                status, answer = await conn.call(raw)
            except (OSError, asyncio.IncompleteReadError) as e:
                status, answer = -1, f"{type(e).__name__}: {e}".encode()
            finally:
                conns.put_nowait(conn)
            t = loop.time()
            if i >= n_warm:
                lat.append(t - scheduled)
                done_at.append(t)
                if status != 200:
                    key = f"{status} {answer[:120].decode(errors='replace')}"
                    errors[key] = errors.get(key, 0) + 1

        tasks = []
        for i in range(n):
            scheduled = start + i / s["rate"]
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if s["method"] == "GET":
                raw = request("GET", paths[rng.randrange(len(paths))], s["auth"])
            elif s["name"] == "ingest":
                raw = request("POST", s["path"], s["auth"], load_batch(s, i))
            else:
                raw = request("POST", s["path"], s["auth"], bodies[rng.randrange(len(bodies))])
            tasks.append((asyncio.create_task(one(i, scheduled, raw)), i, scheduled))
        # an overloaded server drains its queue for a long time: after --drain seconds past the schedule's end
        # what is unanswered is counted so, with its wait so far (a lower bound of its latency)
        _, pending = await asyncio.wait([t for t, _, _ in tasks], timeout=max(0.0, end + spec["drain"] - loop.time()))
        unanswered = 0
        for task, i, scheduled in tasks:
            if task in pending:
                task.cancel()
                if i >= n_warm:
                    unanswered += 1
                    lat.append(loop.time() - scheduled)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        while not conns.empty():
            conns.get_nowait().close()
        first = start + warmup
        span = max(done_at) - first if done_at else 0.0
        per = LOAD_PER_REQUEST if s["name"] == "ingest" else 1
        return {"requests": len(lat), "offered_rate": s["rate"] * per,
                "achieved_rate": round(len(lat) * per / span, 1) if span > 0 else 0.0,
                "p50_ms": decide_bench.pct(lat, 0.5) * 1000, "p90_ms": decide_bench.pct(lat, 0.9) * 1000,
                "p99_ms": decide_bench.pct(lat, 0.99) * 1000, "max_ms": max(lat) * 1000 if lat else None,
                "errors": errors, "unanswered": unanswered}

    async def probe() -> dict[str, Any]:
        """Track an event for one existing person, poll the profile until it counts it: ack → visible."""
        track, poll = Conn(port), Conn(port)
        uid, read_auth, write_auth = spec["probe_user"], spec["read_auth"], spec["write_auth"]
        path = f"/v1/profiles?identifier=user_id:{uid}"

        async def events() -> int:
            status, body = await poll.call(request("GET", path, read_auth))
            return int(orjson.loads(body)["stats"]["events"]) if status == 200 else -1

        vis: list[float] = []
        timeouts = 0
        k = 0
        while loop.time() < start + warmup:
            await asyncio.sleep(0.05)
        while loop.time() < end:
            before = await events()
            body = orjson.dumps({"userId": uid, "event": "Probe", "messageId": f"{spec['run']}-probe-{k}"})
            status, answer = await track.call(request("POST", "/v1/track", write_auth, body))
            acked = loop.time()
            k += 1
            if status != 200:
                raise RuntimeError(f"/v1/track answered {status}: {answer[:200]!r}")
            while await events() <= before:
                if loop.time() - acked > 30:
                    timeouts += 1
                    break
                await asyncio.sleep(0.002)
            else:
                vis.append(loop.time() - acked)
            await asyncio.sleep(0.05)
        track.close()
        poll.close()
        return {"probes": len(vis), "timeouts": timeouts, "p50_ms": decide_bench.pct(vis, 0.5) * 1000,
                "p99_ms": decide_bench.pct(vis, 0.99) * 1000, "max_ms": max(vis) * 1000 if vis else None}

    results = await asyncio.gather(*(stream(s) for s in spec["streams"]), probe(), return_exceptions=True)
    out: dict[str, Any] = {}
    for name, r in zip([*(s["name"] for s in spec["streams"]), "visible"], results, strict=True):
        out[name] = {"error": f"{type(r).__name__}: {r}"} if isinstance(r, BaseException) else r
    return out


def load_batch(s: dict[str, Any], i: int) -> bytes:
    """Batch ``i`` of the ingestion under load: events of existing people, new message ids."""
    run, n_profiles, anchor = s["run"], s["profiles"], s["anchor"]
    items = []
    for k in range(LOAD_PER_REQUEST):
        j = (i * LOAD_PER_REQUEST + k) * 104729 + n_profiles  # r >= 1: never an identify, a later event
        ev = tracking_event(j % (n_profiles * 50) + n_profiles, n_profiles, run, anchor)
        ev["messageId"] = f"{run}-load-{i}-{k}"
        items.append(ev)
    return orjson.dumps({"batch": items})


# ---- the run ------------------------------------------------------------------------------------------------
@dataclass
class Bench:
    args: argparse.Namespace
    say: Callable[[str], None]
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    t0: float = field(default_factory=time.perf_counter)

    def stage(self, name: str, fn: Callable[[], None], needs: tuple[str, ...] = ()) -> bool:
        missing = [n for n in needs if n not in self.done]
        if missing:
            self.say(f"[{self.clock()}] {name}: skipped (needs {', '.join(missing)})")
            self.failures.append({"stage": name, "error": f"skipped: needs {', '.join(missing)}"})
            return False
        self.say(f"[{self.clock()}] {name} …")
        started = time.perf_counter()
        try:
            fn()
        except Exception as e:
            self.failures.append({"stage": name, "error": f"{type(e).__name__}: {e}"[:2000]})
            self.say(f"[{self.clock()}] {name} FAILED: {type(e).__name__}: {e}")
            self.say(traceback.format_exc())
            return False
        self.done.add(name)
        self.say(f"[{self.clock()}] {name}: done in {time.perf_counter() - started:.1f} s")
        return True

    def clock(self) -> str:
        s = int(time.perf_counter() - self.t0)
        return f"{s // 60:02d}:{s % 60:02d}"

    def put(self, **figures: Any) -> None:
        for k, v in figures.items():
            self.figures[k] = round(v, 4) if isinstance(v, float) else v
            self.say(f"    {k} = {self.figures[k]}")


Sampler = ingest_bench.RssSampler


def takt_command() -> list[str]:
    """What a user runs: the installed ``takt`` script next to this interpreter (else ``python -m``)."""
    script = Path(sys.executable).with_name("takt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "takt.cli.main"]


class Server:
    """``takt serve`` on the workspace, as a subprocess; its log goes to a file."""

    def __init__(self, ws: Path, env: dict[str, str], log: Path):
        self.port = ingest_bench.free_port()
        self.log = log.open("ab")
        self.proc = subprocess.Popen([*takt_command(), "serve", "-w", str(ws), "--port", str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.sampler = Sampler(self.proc.pid)
        self.sampler.start()

    def health(self) -> dict[str, Any]:
        return self.get("/health", "")[1]

    def get(self, path: str, auth: str, timeout: float = 7200) -> tuple[int, Any]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": auth} if auth else {})
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def post(self, path: str, auth: str, body: Any) -> tuple[int, Any]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=7200)
        try:
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Authorization": auth, "Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def wait_ready(self, limit: float = 3600) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < limit:
            if self.proc.poll() is not None:
                raise RuntimeError(f"takt serve exited with {self.proc.returncode} (log: {self.log.name})")
            try:
                self.health()
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"takt serve not answering after {limit:.0f} s")

    def wait_caught_up(self, say: Callable[[str], None], limit: float = 7200) -> float:
        started = time.perf_counter()
        last = 0.0
        while time.perf_counter() - started < limit:
            h = self.health()
            if h.get("profiles_position", 0) >= h.get("log_head", 0):
                return time.perf_counter() - started
            if time.perf_counter() - last > 10:
                say(f"    profiles at {h.get('profiles_position', 0):,} of {h.get('log_head', 0):,}")
                last = time.perf_counter()
            time.sleep(0.2)
        raise RuntimeError(f"the server's profiles did not catch up with the log in {limit:.0f} s")

    def stop(self) -> float:
        """Stop the server (SIGTERM, then SIGKILL after 120 s); its peak RSS in MB."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.sampler.finish()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 7200) -> tuple[float, str]:
    """A fresh ``takt`` process: wall seconds and stdout; a non-zero exit raises with its output."""
    started = time.perf_counter()
    out = subprocess.run([*takt_command(), *args], env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"takt {' '.join(args[:3])} exited {out.returncode}: {(out.stdout + out.stderr)[-1500:]}")
    return elapsed, out.stdout


REBUILD_SQL = {  # the rebuild's per-person aggregates over the log, one statement (the kernel figure)
    "duckdb": """
        CREATE OR REPLACE TEMP TABLE bench_kernel AS
        SELECT coalesce(user_id, anonymous_id, message_id) AS person, min(ts) AS first_seen, max(ts) AS last_seen,
               count(*) AS events, count(*) FILTER (WHERE event = 'Order Completed') AS orders,
               sum(TRY_CAST(json_extract_string(payload, '$.properties.revenue') AS DOUBLE))
                   FILTER (WHERE event = 'Order Completed') AS revenue,
               histogram(coalesce(event, kind)) AS counts
        FROM events GROUP BY 1""",
    "postgres": """
        CREATE TEMP TABLE bench_kernel AS
        SELECT person, min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(n) AS events,
               sum(n) FILTER (WHERE name = 'Order Completed') AS orders, sum(revenue) AS revenue,
               jsonb_object_agg(name, n) AS counts
        FROM (SELECT coalesce(user_id, anonymous_id, message_id) AS person, coalesce(event, kind) AS name,
                     min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS n,
                     sum((payload::jsonb -> 'properties' ->> 'revenue')::double precision)
                         FILTER (WHERE event = 'Order Completed') AS revenue
              FROM events GROUP BY 1, 2) per_name
        GROUP BY person""",
}


class Database:
    """Direct SQL on the workspace's own database (for the kernel figures), while no takt process holds it."""

    def __init__(self, bench: Bench, ws: Path):
        self.backend = bench.args.backend
        self.url = bench.figures.get("_database_url")
        self.path = ws / "takt.duckdb"

    def timed(self, statements: list[str], runs: int = 1) -> tuple[float, Any]:
        """Best wall seconds of ``runs`` runs of the statements (the last one's first row is returned)."""
        best, row = float("inf"), None
        if self.backend == "postgres":
            import psycopg

            with psycopg.connect(str(self.url), autocommit=True) as con:
                con.execute("SET TIME ZONE 'UTC'")
                for _ in range(runs):
                    t = time.perf_counter()
                    cur = None
                    for sql in statements:
                        cur = con.execute(sql)  # type: ignore[arg-type]
                    row = cur.fetchone() if cur is not None and cur.description else None
                    best = min(best, time.perf_counter() - t)
                    con.execute("DROP TABLE IF EXISTS bench_kernel")
            return best, row
        import duckdb

        with duckdb.connect(str(self.path)) as con:  # temporary tables only: the workspace is not changed
            for _ in range(runs):
                t = time.perf_counter()
                cur = None
                for sql in statements:
                    cur = con.execute(sql)
                row = cur.fetchone() if cur is not None and cur.description else None
                best = min(best, time.perf_counter() - t)
        return best, row

    def column(self, sql: str) -> list[Any]:
        if self.backend == "postgres":
            import psycopg

            with psycopg.connect(str(self.url)) as con:
                return [r[0] for r in con.execute(sql).fetchall()]  # type: ignore[arg-type]
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            return [r[0] for r in con.execute(sql).fetchall()]


def build_and_measure(b: Bench, base: Path) -> None:
    a = b.args
    run = f"b{os.getpid()}"
    anchor = time.time()
    ws = base / "ws"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    keys: dict[str, str] = {}
    auth: dict[str, str] = {}
    state: dict[str, Any] = {}

    def init() -> None:
        cmd = ["init", str(ws)]
        if a.backend == "postgres":
            url = a.database_url or os.environ.get("TAKT_TEST_POSTGRES_URL")
            if not url:
                raise RuntimeError("--backend postgres needs --database-url (or TAKT_TEST_POSTGRES_URL)")
            db = ingest_bench.fresh_database(url, f"takt_bench_product_{os.getpid()}")
            b.figures["_database_url"] = db
            state["admin_url"] = url
            cmd += ["--database-url", db]
        run_cli(cmd, env)
        for kind, extra in (("write", ["--provenance", "customer_provided", "--trust", "server"]), ("read", []),
                            ("admin", [])):
            _, out = run_cli(["keys", "create", "-w", str(ws), "--kind", kind, "--name", f"bench-{kind}", *extra], env)
            keys[kind] = out.strip().splitlines()[-1]
        auth["write"] = "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()
        auth["read"] = f"Bearer {keys['read']}"
        auth["admin"] = f"Bearer {keys['admin']}"

    def import_customers() -> None:
        path = base / "customers.csv"
        write_customers(path, a.profiles)
        seconds, out = run_cli(["import", "customers", str(path), "-w", str(ws)], env)
        b.put(import_customers_rows=a.profiles, import_customers_seconds=seconds,
              import_rows_per_s=a.profiles / seconds)

    def ingest() -> None:
        server = Server(ws, {**env, "TAKT_PROFILES__LIVE": "false"}, base / "serve-ingest.log")
        try:
            server.wait_ready()
            last = [time.perf_counter()]
            started = time.perf_counter()

            def progress(acked: int) -> None:
                if time.perf_counter() - last[0] > 5:
                    last[0] = time.perf_counter()
                    rate = acked / (last[0] - started)
                    eta = (a.events - acked) / rate if rate else 0
                    b.say(f"    {acked:,} of {a.events:,} events acknowledged ({rate:,.0f}/s, ~{eta:.0f} s left)")

            tp = asyncio.run(post_all(server.port, auth["write"],
                                      batches(a.events, a.profiles, run, anchor, PER_REQUEST), a.events, 16, progress))
            head = server.health()["log_head"]
        finally:
            rss = server.stop()
        state["log_head"] = head
        b.put(ingest_events_per_s=tp["events_per_s"], ingest_seconds=tp["seconds"],
              ingest_refused_429=tp["refused_429"], ingest_peak_rss_mb=rss, log_events=head)

    def rebuild() -> None:
        started = time.perf_counter()
        proc = subprocess.Popen([*takt_command(), "rebuild", "-w", str(ws)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        last = time.perf_counter()
        while proc.poll() is None:
            time.sleep(0.2)
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                b.say(f"    rebuilding … {last - started:.0f} s, RSS {sampler.peak / 2**20:,.0f} MB so far")
        out, err = proc.communicate()
        seconds = time.perf_counter() - started
        peak = sampler.finish()
        if proc.returncode != 0:
            raise RuntimeError(f"takt rebuild exited {proc.returncode}: {(out + err)[-1500:]}")
        m = re.search(r"rebuilt ([\d,]+) profiles from ([\d,]+) events in [\d.]+ s \(([\d,]+) events/s\)", out)
        n = int(m.group(2).replace(",", "")) if m else int(state["log_head"])
        b.put(rebuild_events_per_s=n / seconds, rebuild_seconds=seconds, rebuild_peak_rss_mb=peak,
              rebuild_events=n)
        if m:
            b.put(rebuild_profiles=int(m.group(1).replace(",", "")),
                  rebuild_reported_events_per_s=int(m.group(3).replace(",", "")))

    def kernel_rebuild() -> None:
        seconds, _ = Database(b, ws).timed([REBUILD_SQL[a.backend]])
        n = int(state["log_head"])
        b.put(kernel_rebuild_sql_events_per_s=n / seconds, kernel_rebuild_sql_seconds=seconds)

    def cli_help() -> None:
        times = [run_cli(["--help"], env)[0] for _ in range(5)]
        b.put(cli_help_seconds=statistics.median(times), cli_help_min_seconds=min(times))

    def cli_count() -> None:
        seconds, _ = run_cli(["segment", "create", "-w", str(ws), SEGMENT, DEFINITION], env)
        b.put(cli_segment_create_seconds=seconds)
        first, out = run_cli(["segment", "count", "-w", str(ws), SEGMENT, "--json"], env)
        repeat, out2 = run_cli(["segment", "count", "-w", str(ws), SEGMENT, "--json"], env)
        state["members"] = int(json.loads(out)["count"])
        b.put(cli_count_seconds=first, cli_count_repeat_seconds=repeat, members=state["members"])

    def kernel_count() -> None:
        from takt.projections.tables import count_query
        from takt.segments import parse
        from takt.segments.compile import compile_segment
        from takt.segments.dialects import dialect

        name = "postgres" if a.backend == "postgres" else "duckdb"
        sql = dialect(name).sql(count_query(compile_segment(parse(DEFINITION), now=datetime.now(UTC),
                                                            dialect_name=name)))
        db = Database(b, ws)
        seconds, row = db.timed([sql], runs=3)
        b.put(kernel_count_sql_seconds=seconds, kernel_members=int(row[0]) if row else -1,
              count_agrees=bool(row) and int(row[0]) == state.get("members"))
        ids = db.column("SELECT profile_id FROM profiles ORDER BY hash(profile_id) LIMIT 2000"
                        if name == "duckdb" else "SELECT profile_id FROM profiles ORDER BY md5(profile_id) LIMIT 2000")
        state["profile_ids"] = [str(x) for x in ids]

    server_box: list[Server] = []

    def serve() -> None:
        server = Server(ws, env, base / "serve.log")
        server_box.append(server)
        ready = server.wait_ready()
        caught = server.wait_caught_up(b.say)
        b.put(serve_ready_seconds=ready, serve_caught_up_seconds=caught,
              serve_rss_ready_mb=psutil.Process(server.proc.pid).memory_info().rss / 2**20)
        status, body = server.post("/v1/offers", auth["admin"], {"offers": decide_bench.catalog(datetime.now(UTC))})
        if status != 200:
            raise RuntimeError(f"POST /v1/offers answered {status}: {body}")

    def api_count() -> None:
        server = server_box[0]
        times = []
        for _ in range(4):
            t = time.perf_counter()
            status, body = server.get(f"/v1/segments/{SEGMENT}/count", auth["read"])
            times.append(time.perf_counter() - t)
            if status != 200:
                raise RuntimeError(f"GET /v1/segments/{SEGMENT}/count answered {status}: {body}")
        state["api_members"] = int(body["count"])
        b.put(api_count_first_seconds=times[0], api_count_seconds=statistics.median(times[1:]),
              api_members=state["api_members"])

    def count_after_ingest() -> None:
        server = server_box[0]
        bodies = matching_people(run, time.time())
        started = time.perf_counter()
        tp = asyncio.run(post_all(server.port, auth["write"], iter(bodies), NEW_PEOPLE * 100, 4, lambda n: None))
        acked = time.perf_counter()
        status, body = server.get(f"/v1/segments/{SEGMENT}/count", auth["read"])
        counted = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"GET /v1/segments/{SEGMENT}/count answered {status}: {body}")
        b.put(count_after_ingest_seconds=counted - acked, count_after_ingest_ack_seconds=acked - started,
              count_after_ingest_delta=int(body["count"]) - state["api_members"],
              count_after_ingest_events=tp["events"])

    def load() -> None:
        server = server_box[0]
        rng = random.Random(3)
        people = [f"user_id:u{rng.randrange(a.profiles)}" for _ in range(2000)]
        ids = state.get("profile_ids") or []
        paths = ([f"/v1/profiles/{pid}" for pid in ids] if ids
                 else [f"/v1/profiles?identifier={p}" for p in people])
        rate = a.rate
        streams = [
            {"name": "decide", "method": "POST", "path": "/v1/decide", "rate": rate, "auth": auth["read"],
             "connections": 64, "bodies": [json.dumps({"profile": p, "intent": "marketing",
                                                        "channels": ["email", "in_app"]}) for p in people]},
            {"name": "nbo", "method": "POST", "path": "/v1/next-best-offer", "rate": rate, "auth": auth["read"],
             "connections": 64, "bodies": [json.dumps({"profile": p, "placement": "home", "limit": 3})
                                           for p in people]},
            {"name": "read", "method": "GET", "path": paths[0], "paths": paths, "rate": rate, "auth": auth["read"],
             "connections": 64},
            {"name": "ingest", "method": "POST", "path": "/v1/batch", "rate": a.ingest_rate / LOAD_PER_REQUEST,
             "auth": auth["write"], "connections": 16, "run": run, "profiles": a.profiles, "anchor": anchor},
        ]
        spec = {"port": server.port, "seconds": a.seconds, "warmup": 2.0, "streams": streams, "run": run,
                "drain": a.drain,
                "probe_user": f"u{a.profiles // 2}", "read_auth": auth["read"], "write_auth": auth["write"]}
        b.say(f"    open loop: decide, next-best-offer, profile reads at {rate:g}/s each and "
              f"{a.ingest_rate:,}/s events, {a.seconds:g} s (+2 s warm-up) …")
        proc = psutil.Process(server.proc.pid)
        # what came before (the new people's events, folded live) must not land in the load's figures
        server.wait_caught_up(b.say)
        decide_bench.settle(proc, limit=60)
        cpu0 = proc.cpu_times()
        wall0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--load"], input=json.dumps(spec), capture_output=True,
                             text=True, timeout=a.seconds * 20 + 600)
        if out.returncode != 0:
            raise RuntimeError(f"the load generator failed: {out.stderr[-2000:]}")
        cpu1 = proc.cpu_times()
        res = json.loads(out.stdout.strip().splitlines()[-1])
        b.figures["load"] = res
        b.put(load_server_cpu_share=((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
              / (time.perf_counter() - wall0), load_average=os.getloadavg()[0])
        for name, key in (("decide", "decide_p99_ms"), ("nbo", "nbo_p99_ms"), ("read", "read_p99_ms"),
                          ("ingest", None)):
            r = res[name]
            if "error" in r:
                continue
            b.say(f"    {name}: achieved {r['achieved_rate']:,.0f}/s of {r['offered_rate']:,.0f}, p50 "
                  f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, errors {sum(r['errors'].values())}, "
                  f"unanswered after the drain {r['unanswered']}")
            if key:
                b.put(**{key: r["p99_ms"], key.replace("p99", "p50"): r["p50_ms"],
                         key.replace("_p99_ms", "_achieved_rate"): r["achieved_rate"],
                         key.replace("_p99_ms", "_errors"): sum(r["errors"].values()),
                         key.replace("_p99_ms", "_unanswered"): r["unanswered"]})
            else:
                b.put(load_ingest_events_per_s=r["achieved_rate"], load_ingest_errors=sum(r["errors"].values()))
        if "error" not in res["visible"]:
            v = res["visible"]
            b.put(visible_p99_ms=v["p99_ms"], visible_p50_ms=v["p50_ms"], visible_probes=v["probes"],
                  visible_timeouts=v["timeouts"])
        broken = {name: r["error"] for name, r in res.items() if "error" in r}
        if broken:
            raise RuntimeError(f"load streams failed: {broken}")

    b.stage("init", init)
    b.stage("import customers", import_customers, needs=("init",))
    b.stage("ingest events over HTTP", ingest, needs=("import customers",))
    b.stage("takt rebuild", rebuild, needs=("ingest events over HTTP",))
    b.stage("kernel: rebuild aggregates in SQL", kernel_rebuild, needs=("takt rebuild",))
    b.stage("takt --help", cli_help)
    b.stage("takt segment count", cli_count, needs=("takt rebuild",))
    b.stage("kernel: the count's SQL", kernel_count, needs=("takt segment count",))
    try:
        if b.stage("takt serve", serve, needs=("takt rebuild",)):
            b.stage("API count", api_count, needs=("takt serve",))
            b.stage("count after ingest", count_after_ingest, needs=("API count",))
            b.stage("open-loop load", load, needs=("takt serve",))
    finally:
        if server_box:
            peak = server_box[0].stop()
            if "takt serve" in b.done:
                b.put(serve_peak_rss_mb=peak)
        if state.get("admin_url") and not a.keep:
            try:
                import psycopg

                with psycopg.connect(state["admin_url"], autocommit=True) as con:
                    con.execute(f'DROP DATABASE IF EXISTS "takt_bench_product_{os.getpid()}" WITH (FORCE)')
            except Exception as e:
                b.say(f"could not drop the benchmark database: {e}")


def verdict(op: str, value: Any, target: float) -> bool | None:
    if not isinstance(value, int | float) or value != value:  # missing or NaN
        return None
    return bool(value >= target) if op == ">=" else bool(value < target)


def summary(b: Bench) -> dict[str, Any]:
    a = b.args
    import duckdb

    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
                   f"Python {platform.python_version()}, DuckDB {duckdb.__version__}",
        "command": "python bench/product.py" + (" --quick" if a.quick else "")
                   + f" --profiles {a.profiles} --events {a.events} --backend {a.backend}",
        "backend": a.backend, "profiles": a.profiles, "events": a.events, "rate": a.rate,
        "ingest_rate": a.ingest_rate, "seconds": a.seconds,
    }
    out.update({k: v for k, v in b.figures.items() if not k.startswith("_")})
    results = {}
    for key, op, target, unit, kernel in TARGETS:
        value = b.figures.get(key)
        results[key] = {"value": value, "target": f"{op} {target:g}", "unit": unit,
                        "met": verdict(op, value, target),
                        "kernel": kernel, "kernel_value": b.figures.get(kernel) if kernel else None}
    out["results"] = results
    out["met"] = sum(1 for r in results.values() if r["met"] is True)
    out["missed"] = [k for k, r in results.items() if r["met"] is False]
    out["not_measured"] = [k for k, r in results.items() if r["met"] is None]
    out["failures"] = b.failures
    return out


def table(s: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3f}" if abs(v) < 1 else f"{v:,.2f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    rows = [("figure", "value", "target", "", "kernel (same run)")]
    for key, r in s["results"].items():
        kernel = f"{r['kernel']} = {fmt(r['kernel_value'])}" if r["kernel"] else ""
        met = {True: "met", False: "MISSED", None: "not measured"}[r["met"]]
        rows.append((key, f"{fmt(r['value'])} {r['unit']}", r["target"], met, kernel))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if s["failures"]:
        lines.append("failures:")
        lines += [f"  {f['stage']}: {f['error'][:300]}" for f in s["failures"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 profiles, 400,000 events, 10 s of load")
    ap.add_argument("--json", action="store_true", help="the last line of output is one JSON object")
    ap.add_argument("--profiles", type=int, default=None, help="customers imported (default 1,000,000)")
    ap.add_argument("--events", type=int, default=None, help="tracking events ingested (default 20,000,000)")
    ap.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
    ap.add_argument("--database-url", default=None,
                    help="PostgreSQL server for --backend postgres (default $TAKT_TEST_POSTGRES_URL); a fresh "
                         "database takt_bench_product_PID is created on it and dropped afterwards")
    ap.add_argument("--keep", metavar="DIR", default=None,
                    help="build the workspace in DIR (must not exist) and keep it, with the servers' logs")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds of the load (default 30)")
    ap.add_argument("--rate", type=float, default=500.0, help="decide, next-best-offer and read requests/s each")
    ap.add_argument("--ingest-rate", type=int, default=5000, help="events/s ingested during the load")
    ap.add_argument("--drain", type=float, default=120.0,
                    help="seconds after the load's schedule ends that unanswered requests are still awaited; "
                         "then they count as unanswered, with their wait so far as latency (default 120)")
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)  # the load generator: spec on stdin
    args = ap.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(open_loop(json.loads(sys.stdin.read())))))
        return
    args.profiles = args.profiles or (20_000 if args.quick else 1_000_000)
    args.events = args.events or (400_000 if args.quick else 20_000_000)
    args.seconds = args.seconds or (10.0 if args.quick else 30.0)
    if args.events < args.profiles:
        ap.error("--events must be at least --profiles (each person's first event links them to their record)")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    # a stopped run still stops its servers and removes its workspace: SIGTERM unwinds like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:
        base = Path(args.keep)
        base.mkdir(parents=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="takt-bench-product-"))
    b = Bench(args, say)
    say(f"product benchmark: {args.profiles:,} profiles, {args.events:,} events, {args.backend}, in {base}")
    try:
        build_and_measure(b, base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    s = summary(b)
    say("")
    say(table(s))
    if args.json:
        print(json.dumps(s))
    sys.exit(1 if b.failures else 0)


if __name__ == "__main__":
    main()
