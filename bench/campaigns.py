"""Campaign benchmark (issue 14): a campaign to N eligible people through the product's own path, into a local
SMTP sink, and the delay from a trigger event's acknowledgement to its email.

What a user runs, end to end:

1. ``takt init``, keys, and N people sent over HTTP (``/v1/batch``, a server key): an identify with an email
   and a time zone where it is midday now (so quiet hours hold nobody back), and a double opt-in grant of
   marketing email (a ``Consent Updated`` call). Then ``takt serve`` (which runs the campaign orchestrator) is
   waited for until its profiles reflect the log.
2. A marketing campaign to all of them (``POST /v1/campaigns``, then ``POST /v1/campaigns/NAME/launch``), its
   emails received by an SMTP sink in this process (aiosmtpd): ``sends_per_s`` = emails received over the
   time from the launch request to the last one; ``campaign_seconds``.
3. A triggered campaign (``{"on": "event", "event": "Bench Trigger"}``) and T other people who each send that
   event (``/v1/track``, spread over a few seconds): ``p99_send_delay_ms`` from each acknowledgement to the
   arrival of that person's email.
4. ``peak_rss_mb`` of the server; ``decide_share``: the CPU one ``decide`` takes (measured in this process over
   the same people's published facts, the kernel figure) times the messages sent, over the campaign's wall time.

Targets (issue 14): ``sends_per_s`` ≥ 2,000 on 2 cores, ``p99_send_delay_ms`` < 1,000.

    python bench/campaigns.py [--quick] [--json] [--people N] [--triggers T] [--keep DIR]

``--quick``: 2,000 people and 100 triggers; the default is 100,000 people and 500 triggers. The last line with
--json is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import product  # noqa: E402  (bench/product.py: the server, the CLI, the HTTP load)

import ingest as ingest_bench  # noqa: E402  (bench/ingest.py: free ports)

TARGETS = (("sends_per_s", ">=", 2_000), ("p99_send_delay_ms", "<", 1_000))


class Sink:
    """An SMTP server on loopback that notes when each recipient's message arrived."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = ingest_bench.free_port()
        self.arrived: dict[str, float] = {}
        self.count = 0
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                now = time.perf_counter()
                with sink._lock:
                    for rcpt in envelope.rcpt_tos:
                        sink.arrived.setdefault(rcpt.lower(), now)
                    sink.count += 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def midday_zone(now: datetime) -> str:
    """An ``Etc/GMT±h`` zone where it is about 13:00 now (its sign is inverted: ``Etc/GMT-3`` is UTC+3)."""
    offset = (13 - now.hour) % 24
    if offset > 12:
        offset -= 24
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def people(prefix: str, n: int, zone: str, cohort: str, per_request: int = 200) -> Iterator[bytes]:
    """Identify + a double opt-in grant of marketing email, per person, in ``/v1/batch`` bodies."""
    batch: list[dict[str, Any]] = []
    for i in range(n):
        uid = f"{prefix}-{i}"
        email = f"{uid}@bench.example"
        batch.append({"type": "identify", "userId": uid, "messageId": f"{uid}-id",
                      "traits": {"email": email, "first_name": f"P{i}", "timezone": zone, "cohort": cohort}})
        batch.append({"type": "track", "userId": uid, "messageId": f"{uid}-consent", "event": "Consent Updated",
                      "properties": {"purpose": "marketing", "channel": "email", "contact_point": email,
                                     "status": "granted", "evidence": {"method": "double_opt_in"}}})
        if len(batch) >= per_request:
            yield json.dumps({"batch": batch}).encode()
            batch = []
    if batch:
        yield json.dumps({"batch": batch}).encode()


def campaign(name: str, cohort: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "intent": "marketing", "audience": f'trait.cohort = "{cohort}"', "trigger": trigger,
            "channels": ["email"],
            "message": {"email": {"subject": "Hello {{ traits.first_name }}",
                                  "text": "Hi {{ traits.first_name }}, a weekend in New York?\n"
                                          "Unsubscribe: {{ unsubscribe_url }}",
                                  "defaults": {"traits.first_name": "there"}}}}


def decide_cpu_per_message(ws: Path, limit: int = 2_000) -> float:
    """Seconds of CPU one ``decide`` takes on this workspace's people (their folded facts; the kernel figure)."""
    from takt.policy.config import PolicySettings
    from takt.policy.decide import Intent, decide
    from takt.policy.folded import exact
    from takt.policy.from_profile import facts_from_state
    from takt.policy.suppression_store import suppression_key
    from takt.services import services_of
    from takt.workspace import open_workspace

    w = open_workspace(ws)
    with w.open_storage() as storage:
        runner = services_of(storage).runner_for(lambda: datetime.now(UTC))
        runner.load()
        settings = PolicySettings.from_settings(w.settings, suppression_key(storage))
        states = [s for pid in runner.profile_ids()[:limit] if (s := runner.projector.profile(pid)) is not None]
        facts = [facts_from_state(s) for s in states if exact(s)]
        now = datetime.now(UTC)
        started = time.process_time()
        for f in facts:
            decide(f.person, Intent("marketing"), ("email",), now, settings)
        return (time.process_time() - started) / max(1, len(facts))


def wait_for(check: Any, limit: float, step: float = 0.1) -> bool:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def run(b: product.Bench, base: Path) -> None:
    a = b.args
    n, t = a.people, a.triggers
    ws = base / "ws"
    sink = Sink()
    now = datetime.now(UTC)
    zone = midday_zone(now)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TAKT_SMTP__HOST": "127.0.0.1",
           "TAKT_SMTP__PORT": str(sink.port), "TAKT_SMTP__FROM": "Bench <bench@takt.example>",
           "TAKT_DELIVERY__EMAIL__RATE_PER_S": "1000000", "TAKT_SERVER__PUBLIC_BASE_URL": "https://takt.example"}
    product.run_cli(["init", str(ws)], env)
    write = product.run_cli(["keys", "create", "-w", str(ws), "--kind", "write", "--name", "crm",
                             "--provenance", "customer_provided", "--trust", "server"], env)[1].strip().splitlines()[-1]
    admin = product.run_cli(["keys", "create", "-w", str(ws), "--kind", "admin", "--name", "ops"], env
                            )[1].strip().splitlines()[-1]
    basic = "Basic " + base64.b64encode(f"{write}:".encode()).decode()
    bearer = f"Bearer {admin}"
    server = product.Server(ws, env, base / "serve.log")
    try:
        b.put(server_ready_seconds=server.wait_ready())

        def ingest() -> None:
            bodies = list(people("bulk", n, zone, "bulk")) + list(people("trig", t, zone, "trig"))
            total = 2 * (n + t)
            r = asyncio.run(product.post_all(server.port, basic, iter(bodies), total, 8, lambda k: None))
            b.put(ingest_events_per_s=r["events_per_s"])
            b.put(profiles_caught_up_seconds=server.wait_caught_up(b.say))

        b.stage("people over HTTP", ingest)

        def bulk() -> None:
            status, body = server.post("/v1/campaigns", bearer, campaign("bench-bulk", "bulk", {"on": "now"}))
            if status != 201:
                raise RuntimeError(f"POST /v1/campaigns answered {status}: {body}")
            launched = time.perf_counter()  # the launch may send before it answers
            status, body = server.post("/v1/campaigns/bench-bulk/launch", bearer, {})
            if status >= 300:
                raise RuntimeError(f"launch answered {status}: {body}")
            wait_for(lambda: sink.count >= n, a.timeout, 0.05)
            last = max(sink.arrived.values(), default=launched)
            seconds = max(1e-9, last - launched)
            status, body = server.get("/v1/campaigns/bench-bulk/status", bearer)
            b.put(campaign_people=n, emails_received=sink.count, campaign_seconds=seconds,
                  sends_per_s=sink.count / seconds, campaign_status=body)
            if sink.count < n:
                raise RuntimeError(f"{sink.count:,} of {n:,} emails arrived within {a.timeout:.0f} s: {body}")

        b.stage("campaign to everyone", bulk, needs=("people over HTTP",))

        def triggered() -> None:
            before = dict(sink.arrived)
            status, body = server.post("/v1/campaigns", bearer,
                                       campaign("bench-trigger", "trig", {"on": "event", "event": "Bench Trigger"}))
            if status != 201:
                raise RuntimeError(f"POST /v1/campaigns answered {status}: {body}")
            status, body = server.post("/v1/campaigns/bench-trigger/launch", bearer, {})
            if status >= 300:
                raise RuntimeError(f"launch answered {status}: {body}")
            acked: dict[str, float] = {}
            spread = max(1.0, t / 50)  # about 50 triggers a second
            for i in range(t):
                due = time.perf_counter() + spread / t
                uid = f"trig-{i}"
                s, answer = server.post("/v1/track", basic, {"userId": uid, "event": "Bench Trigger",
                                                             "messageId": f"{uid}-trigger"})
                if s != 200:
                    raise RuntimeError(f"/v1/track answered {s}: {answer}")
                acked[f"{uid}@bench.example"] = time.perf_counter()
                time.sleep(max(0.0, due - time.perf_counter()))
            wait_for(lambda: all(k in sink.arrived for k in acked), a.timeout, 0.05)
            delays = sorted((sink.arrived[k] - v) * 1000 for k, v in acked.items()
                            if k in sink.arrived and k not in before)
            if not delays:
                raise RuntimeError("no triggered email arrived")
            b.put(triggers=t, triggered_emails=len(delays),
                  p50_send_delay_ms=delays[len(delays) // 2],
                  p99_send_delay_ms=delays[max(0, int(len(delays) * 0.99) - 1)])

        b.stage("triggered campaign", triggered, needs=("people over HTTP",))
    finally:
        b.put(peak_rss_mb=server.stop())
        sink.stop()

    def kernel() -> None:
        per = decide_cpu_per_message(ws)
        b.put(kernel_decide_ms=per * 1000)
        if "campaign_seconds" in b.figures:
            b.put(decide_share=per * b.figures["emails_received"] / b.figures["campaign_seconds"])

    b.stage("kernel: decide per message", kernel, needs=("campaign to everyone",))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 people and 100 triggers")
    p.add_argument("--json", action="store_true", help="the last line: one JSON object with the figures")
    p.add_argument("--people", type=int, default=None)
    p.add_argument("--triggers", type=int, default=None)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the emails of one stage")
    p.add_argument("--keep", default=None, help="keep the workspace and the server's log in this folder")
    a = p.parse_args()
    a.people = a.people or (2_000 if a.quick else 100_000)
    a.triggers = a.triggers or (100 if a.quick else 500)
    b = product.Bench(a, lambda s: print(s, file=sys.stderr, flush=True))
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="takt-bench-campaigns-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        run(b, base)
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    results = {k: {"value": b.figures.get(k), "target": f"{op} {v:,}",
                   "met": product.verdict(op, b.figures.get(k), v)} for k, op, v in TARGETS}
    out = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "cpus": os.cpu_count()},
           "command": "python bench/campaigns.py" + (" --quick" if a.quick else ""),
           "figures": b.figures, "results": results, "failures": b.failures}
    for k, r in results.items():
        print(f"{k}: {r['value']} (target {r['target']}: {'met' if r['met'] else 'missed'})", file=sys.stderr)
    if a.json:
        print(json.dumps(out, default=str))
    sys.exit(1 if b.failures else 0)


if __name__ == "__main__":
    main()
