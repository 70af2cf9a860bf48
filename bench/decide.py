"""Next-best-offer latency: p99 of `POST /v1/next-best-offer` at a fixed request rate, through the real server.

    python bench/decide.py [--quick] [--json] [--rate 500] [--seconds 20] [--profiles 5000]

1. A fresh DuckDB workspace gets P synthetic people (identify with email and country, searches with
   destination interests spread over the last 300 days, orders with products), folded by `takt serve` at start.
2. A catalog of 48 offers (destinations, categories with already-bought products, eligibility expressions on
   traits and on order counts, validity windows, caps) is stored through `POST /v1/offers`.
3. Before each phase the server is left to go idle (background work after start-up, the previous phase's
   backlog). An open-loop load generator in its own process (asyncio, 64 keep-alive connections, raw HTTP/1.1) sends
   requests on a fixed schedule of `--rate` per second, each for a random person; a request's latency runs
   from its *scheduled* time to the end of its response, so queueing behind a slow request counts (no
   coordinated omission). Phases, in this order, `--seconds` each after a short warm-up:
   - `POST /v1/next-best-offer` with a placement (inbound; the published figure, `p99_ms`);
   - `POST /v1/next-best-offer` with intent marketing (outbound: contact-policy decision per offer);
   - baseline: `POST /v1/decide` (marketing, email + in_app) — the same server, same people.

The last line with --json is one JSON object with the figures (`p99_ms` is the inbound next-best-offer p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt.events.model import Event  # noqa: E402
from takt.storage.duckdb import DuckDBStorage  # noqa: E402

DESTS = ["krabi", "new-york", "lisbon", "oslo", "bali", "rome", "kyoto", "lima", "lapland", "iceland",
         "patagonia", "tokyo"]
CATS = ["outdoor", "tents", "shoes", "bags", "cameras", "books"]
COUNTRIES = ["DE", "FR", "NL", "SE", "IT"]


def people_events(n_people: int, now: datetime, seed: int = 11) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = []
    for p in range(n_people):
        uid = f"u{p}"
        first = now - timedelta(days=rng.uniform(30, 330))
        out.append(Event(kind="identify", message_id=f"id-{p}", source="web", timestamp=first, received_at=first,
                         provenance="customer_provided", user_id=uid,
                         traits={"email": f"p{p}@example.com", "country": rng.choice(COUNTRIES)}))
        for k in range(rng.randint(3, 8)):
            t = now - timedelta(days=rng.uniform(0, 300))
            d = rng.choice(DESTS)
            out.append(Event(kind="track", event="Products Searched", message_id=f"s-{p}-{k}", source="web",
                             timestamp=t, received_at=t, user_id=uid,
                             properties={"query": d, "interests": [f"destination:{d}"]}))
        for k in range(rng.randint(0, 3)):
            t = now - timedelta(days=rng.uniform(0, 300))
            c = rng.choice(CATS)
            out.append(Event(kind="track", event="Order Completed", message_id=f"o-{p}-{k}", source="web",
                             timestamp=t, received_at=t, user_id=uid,
                             properties={"order_id": f"O{p}-{k}", "revenue": round(rng.uniform(20, 400), 2),
                                         "products": [{"product_id": f"sku-{c}-{rng.randint(1, 4)}",
                                                       "category": c}]}))
    return out


def catalog(now: datetime) -> list[dict[str, Any]]:
    offers: list[dict[str, Any]] = []
    for i, d in enumerate(DESTS):
        offers.append({"id": f"trip-{d}", "title": f"Trip to {d}", "interests": [f"destination:{d}"],
                       "value": 400 + 50 * i, "channels": ["email", "in_app"], "cap": {"max": 3, "days": 30}})
        offers.append({"id": f"guide-{d}", "title": f"Guidebook {d}", "interests": [f"destination:{d}"],
                       "categories": ["books"], "value": 25, "products": [f"sku-books-{i % 4 + 1}"]})
        offers.append({"id": f"de-{d}", "title": f"{d} for German customers", "interests": [f"destination:{d}"],
                       "value": 300, "eligibility": 'trait.country = "DE"',
                       "valid_until": (now + timedelta(days=30)).isoformat()})
    for c in CATS:
        for k in range(1, 3):
            offers.append({"id": f"{c}-{k}", "title": f"{c} {k}", "categories": [c], "value": 40 * k,
                           "products": [f"sku-{c}-{k}"],
                           "eligibility": 'count(track "Order Completed") >= 1' if k == 2 else None})
    return [{k: v for k, v in o.items() if v is not None} for o in offers]


def settle(proc: psutil.Process, quiet: float = 0.10, limit: float = 120.0) -> None:
    """Wait until the server is idle (its own background work after start-up, such as writing profile state,
    or the backlog of the previous phase, would otherwise land in the next phase's figures)."""
    deadline = time.time() + limit
    while time.time() < deadline and proc.cpu_percent(interval=1.0) / 100 > quiet:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


# ---- the load generator (runs in its own process: `bench/decide.py --load` with the spec on stdin) ----
async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, path, key = "127.0.0.1", spec["port"], spec["path"], spec["key"]
    bodies = [json.dumps(b).encode() for b in spec["bodies"]]
    rate, seconds, warmup = spec["rate"], spec["seconds"], spec["warmup"]
    conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(spec["connections"]):
        conns.put_nowait(await asyncio.open_connection(host, port))
    loop = asyncio.get_running_loop()
    rng = random.Random(5)
    lat: list[float] = []
    errors: dict[int, int] = {}
    done_at: list[float] = []
    n_warm = int(rate * warmup)
    n = n_warm + int(rate * seconds)
    start = loop.time() + 0.1

    async def one(i: int, scheduled: float, body: bytes) -> None:
        rw = await conns.get()
        raw = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        try:
            status = await _request(rw[0], rw[1], raw)
        finally:
            conns.put_nowait(rw)
        end = loop.time()
        if i >= n_warm:
            lat.append(end - scheduled)
            done_at.append(end)
            if status != 200:
                errors[status] = errors.get(status, 0) + 1

    tasks = []
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled, bodies[rng.randrange(len(bodies))])))
    await asyncio.gather(*tasks)
    first = start + n_warm / rate
    span = max(done_at) - first if done_at else float("nan")
    return {"requests": len(lat), "achieved_rate": len(lat) / span if span else 0.0,
            "p50_ms": pct(lat, 0.5) * 1000, "p90_ms": pct(lat, 0.9) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
            "max_ms": max(lat) * 1000 if lat else float("nan"), "errors": errors}


def run_load(port: int, key: str, path: str, bodies: list[dict[str, Any]], rate: float, seconds: float,
             warmup: float) -> dict[str, Any]:
    spec = {"port": port, "key": key, "path": path, "bodies": bodies, "rate": rate, "seconds": seconds,
            "warmup": warmup, "connections": 64}
    out = subprocess.run([sys.executable, __file__, "--load"], input=json.dumps(spec), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---- the run ----
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 people, 5 s per phase.")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rate", type=float, default=500.0, help="Requests per second (default 500).")
    ap.add_argument("--seconds", type=float, default=None, help="Measured seconds per phase (default 20).")
    ap.add_argument("--profiles", type=int, default=None, help="People in the workspace (default 5,000).")
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)  # the generator: spec on stdin
    args = ap.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_open_loop(json.loads(sys.stdin.read())))))
        return
    n_people = args.profiles or (1000 if args.quick else 5000)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    warmup = 2.0

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="takt-bench-decide-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    takt = [sys.executable, "-m", "takt.cli.main"]
    server = None
    try:
        ws = tmp / "ws"
        subprocess.run([*takt, "init", str(ws)], check=True, env=env, capture_output=True)
        now = datetime.now(UTC)
        events = people_events(n_people, now)
        say(f"workspace: {n_people:,} people, {len(events):,} events …")
        storage = DuckDBStorage(ws / "takt.duckdb")
        for i in range(0, len(events), 20_000):
            storage.log.append(events[i:i + 20_000])
        storage.close()
        keys = {}
        for kind in ("read", "admin"):
            out = subprocess.run([*takt, "keys", "create", "-w", str(ws), "--kind", kind, "--name", f"bench-{kind}"],
                                 check=True, env=env, capture_output=True, text=True).stdout
            keys[kind] = out.strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen([*takt, "serve", "-w", str(ws), "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import http.client

        deadline = time.time() + 300
        head = len(events)
        while time.time() < deadline:  # the server folds the log in its follower thread: wait for it
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/health")
                h = json.loads(conn.getresponse().read())
                if h.get("profiles_position", 0) >= head:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise SystemExit("the server did not catch up in time")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/offers", body=json.dumps({"offers": catalog(now)}),
                     headers={"Authorization": f"Bearer {keys['admin']}", "Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
        rng = random.Random(3)
        people = [f"user_id:u{rng.randrange(n_people)}" for _ in range(2000)]
        decide_bodies = [{"profile": p, "intent": "marketing", "channels": ["email", "in_app"]} for p in people]
        inbound = [{"profile": p, "placement": "home", "limit": 3} for p in people]
        outbound = [{"profile": p, "intent": "marketing", "channels": ["email", "in_app"], "limit": 3}
                    for p in people]
        # one request of each kind to check the answers before measuring
        answers = []
        for path, body in (("/v1/decide", decide_bodies[0]), ("/v1/next-best-offer", inbound[0]),
                           ("/v1/next-best-offer", outbound[0])):
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Authorization": f"Bearer {keys['read']}", "Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, data
            answers.append(json.loads(data))
        sample = answers[1]
        proc = psutil.Process(server.pid)
        results = {}
        for name, path, bodies in (("nbo_inbound", "/v1/next-best-offer", inbound),
                                   ("nbo_outbound", "/v1/next-best-offer", outbound),
                                   ("decide", "/v1/decide", decide_bodies)):
            settle(proc)
            say(f"{name}: {args.rate:g} requests/s for {seconds:g} s (+{warmup:g} s warm-up) …")
            cpu0, wall0 = proc.cpu_times(), time.perf_counter()
            res = run_load(port, keys["read"], path, bodies, args.rate, seconds, warmup)
            cpu1, wall = proc.cpu_times(), time.perf_counter() - wall0
            used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            res["server_cpu_share"] = used / wall
            # CPU the server spent per request (warm-up included): what a dedicated core could sustain
            res["server_cpu_ms_per_request"] = used * 1000 / (res["requests"] + int(args.rate * warmup))
            res["load_average"] = os.getloadavg()[0]
            results[name] = res
            say(f"  achieved {res['achieved_rate']:.0f}/s, p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, "
                f"max {res['max_ms']:.1f} ms, errors {res['errors']}; server CPU {res['server_cpu_share']:.0%} "
                f"of a core, {res['server_cpu_ms_per_request']:.2f} ms per request; load average "
                f"{res['load_average']:.1f}")
        inb, base = results["nbo_inbound"], results["decide"]
        summary = {
            "date": now.date().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
            "profiles": n_people, "events": len(events), "offers": len(catalog(now)), "rate": args.rate,
            "seconds": seconds,
            "p99_ms": inb["p99_ms"], "p50_ms": inb["p50_ms"], "achieved_rate": inb["achieved_rate"],
            "outbound_p99_ms": results["nbo_outbound"]["p99_ms"], "decide_p99_ms": base["p99_ms"],
            "cpu_ms_per_request": inb["server_cpu_ms_per_request"],
            "decide_cpu_ms_per_request": base["server_cpu_ms_per_request"],
            "ratio_to_decide": inb["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
            "phases": results, "example_top_offer": (sample["offers"] or [{}])[0].get("offer_id"),
            "target_p99_ms": 5.0, "met": inb["p99_ms"] < 5.0 and inb["achieved_rate"] >= 0.97 * args.rate,
        }
        say(f"next-best-offer p99 {inb['p99_ms']:.2f} ms at {inb['achieved_rate']:.0f}/s "
            f"(decide p99 {base['p99_ms']:.2f} ms; ratio {summary['ratio_to_decide']:.2f}); target p99 < 5 ms: "
            f"{'met' if summary['met'] else 'missed'}")
        if args.json:
            print(json.dumps(summary))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
