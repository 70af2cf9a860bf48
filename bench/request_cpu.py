"""Server CPU per request of the served read paths, and an open-loop run, on a copy of a demo workspace.

    python bench/request_cpu.py WORKSPACE [--port 18731] [--requests 1000] [--kinds decide,nbo,read]
                                [--rate R --seconds S [--ingest-rate E]]

``WORKSPACE`` is a workspace ``takt demo`` built (it needs its ``demo-keys.json``; it is written to: use a copy).
Starts ``takt serve`` on it, reads every one of up to 2,000 profiles once (so each is published), then per kind
sends ``--requests`` requests one after the other on one keep-alive connection and prints the server's CPU time
(user + system, psutil) per request: ``POST /v1/decide`` (marketing, email + in_app), ``POST
/v1/next-best-offer`` (placement ``home``), ``GET /v1/profiles/{id}``. With ``--rate``, then runs
``bench/product.py``'s open-loop load generator (decide, next-best-offer and reads at ``--rate`` each, optionally
``--ingest-rate`` events/s) and prints each stream's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import product  # noqa: E402


def profile_ids(ws: Path) -> list[str]:
    con = duckdb.connect(str(ws / "takt.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT profile_id FROM profiles ORDER BY profile_id LIMIT 2000").fetchall()]
    finally:
        con.close()


def body(kind: str, pid: str) -> bytes:
    if kind == "decide":
        return json.dumps({"profile": pid, "intent": "marketing", "channels": ["email", "in_app"]}).encode()
    return json.dumps({"profile": pid, "placement": "home", "limit": 3}).encode()


def raw_request(kind: str, pid: str, auth: str) -> bytes:
    if kind == "read":
        return product.request("GET", f"/v1/profiles/{pid}", auth)
    return product.request("POST", "/v1/decide" if kind == "decide" else "/v1/next-best-offer", auth, body(kind, pid))


async def closed_loop(port: int, kind: str, ids: list[str], n: int, auth: str) -> dict[int, int]:
    conn = product.Conn(port)
    rng = random.Random(1)
    statuses: dict[int, int] = {}
    try:
        for _ in range(n):
            status, _answer = await conn.call(raw_request(kind, ids[rng.randrange(len(ids))], auth))
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        conn.close()
    return statuses


async def publish_all(port: int, ids: list[str], auth: str) -> None:
    """Read every profile once: a profile's first read since the server started loads it from the projector."""
    conn = product.Conn(port)
    try:
        for pid in ids:
            await conn.call(raw_request("read", pid, auth))
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--port", type=int, default=18731)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--kinds", default="decide,nbo,read")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ingest-rate", type=float, default=0.0)
    a = ap.parse_args()
    ws: Path = a.workspace
    keys = json.loads((ws / "demo-keys.json").read_text())
    read = "Bearer " + keys["read"]
    write = "Basic " + base64.b64encode((keys["write"]["store"]["key"] + ":").encode()).decode()
    ids = profile_ids(ws)
    server = subprocess.Popen([*product.takt_command(), "serve", "-w", str(ws), "--port", str(a.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{a.port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        proc = psutil.Process(server.pid)
        asyncio.run(publish_all(a.port, ids, read))
        for kind in a.kinds.split(","):
            asyncio.run(closed_loop(a.port, kind, ids, 100, read))  # warm
            t0 = proc.cpu_times()
            w0 = time.perf_counter()
            statuses = asyncio.run(closed_loop(a.port, kind, ids, a.requests, read))
            t1 = proc.cpu_times()
            cpu = (t1.user + t1.system - t0.user - t0.system) / a.requests * 1000
            wall = (time.perf_counter() - w0) / a.requests * 1000
            print(f"{kind}: server CPU {cpu:.2f} ms per request, wall {wall:.2f} ms, statuses {statuses}", flush=True)
        if a.rate:
            streams: list[dict[str, Any]] = [
                {"name": "decide", "method": "POST", "path": "/v1/decide", "rate": a.rate, "auth": read,
                 "connections": 64, "bodies": [body("decide", p).decode() for p in ids]},
                {"name": "nbo", "method": "POST", "path": "/v1/next-best-offer", "rate": a.rate, "auth": read,
                 "connections": 64, "bodies": [body("nbo", p).decode() for p in ids]},
                {"name": "read", "method": "GET", "path": f"/v1/profiles/{ids[0]}",
                 "paths": [f"/v1/profiles/{p}" for p in ids], "rate": a.rate, "auth": read, "connections": 64},
            ]
            if a.ingest_rate:
                streams.append({"name": "ingest", "method": "POST", "path": "/v1/batch",
                                "rate": a.ingest_rate / product.LOAD_PER_REQUEST, "auth": write, "connections": 16,
                                "run": "cpu", "profiles": len(ids), "anchor": time.time()})
            spec = {"port": a.port, "seconds": a.seconds, "warmup": 2.0, "streams": streams, "run": "cpu",
                    "drain": 30, "probe_user": "u1", "read_auth": read, "write_auth": write}
            t0 = proc.cpu_times()
            w0 = time.perf_counter()
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "product.py"), "--load"],
                                 input=json.dumps(spec), capture_output=True, text=True, check=True)
            t1 = proc.cpu_times()
            share = (t1.user + t1.system - t0.user - t0.system) / (time.perf_counter() - w0)
            print(f"server CPU share during the load: {share:.2f} cores")
            for name, r in json.loads(out.stdout.strip().splitlines()[-1]).items():
                print(name, {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
