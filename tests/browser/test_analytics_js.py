"""Segment's analytics.js (``@segment/analytics-next`` from npm, its UMD bundle unmodified) in headless Chromium,
sending to a real ``takt serve``: identify, track, page and alias each land in the log exactly once, with
both of its delivery strategies (one request per call to ``/v1/t`` …, or batches to ``/v1/b``).

Everything the page loads comes from loopback: the page and the bundle from a small static server, settings
inline (no CDN settings fetch), events to takt on another port, so the browser does real CORS (requests are
observed, not intercepted, except where a test says so)."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.server import TaktServer, Workspace, export_events, make_workspace

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
UMD = HERE / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # no name resolves: only 127.0.0.1 is reachable
DELIVERY_DEADLINE = 60.0  # seconds to wait for the events to arrive before failing (a bound, not a check)

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Pricing - takt test shop</title>
<script src="/analytics-next/bundles/index.js"></script></head>
<body><h1>Pricing</h1></body></html>
"""

# Runs in the page: load analytics.js with inline settings, make one of each call, return what it sent.
SCRIPT = """
async ({writeKey, apiHost, cdnURL, strategy, tag}) => {
  const segmentio = {apiKey: writeKey, apiHost, protocol: "http"};
  if (strategy === "batching") {
    segmentio.deliveryStrategy = {strategy: "batching", config: {size: 4, timeout: 200}};
  }
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey, cdnURL, cdnSettings: {integrations: {"Segment.io": segmentio}, metrics: {sampleRate: 0}}},
    {integrations: {"Segment.io": {apiHost, protocol: "http"}}},
  );
  const contexts = await Promise.all([
    analytics.identify(`${tag}-user`, {email: "ada@example.com", plan: "pro"}, {messageId: `${tag}-identify`}),
    analytics.track("Order Completed", {revenue: 42.5, currency: "EUR"}, {messageId: `${tag}-track`}),
    analytics.page("Docs", "Pricing", {variant: "b"}, {messageId: `${tag}-page`}),
    analytics.alias(`${tag}-user-2`, `${tag}-user`, {messageId: `${tag}-alias`}),
  ]);
  return {
    anonymousId: analytics.user().anonymousId(),
    events: contexts.map((ctx) => ({
      type: ctx.event.type, messageId: ctx.event.messageId, failed: ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null,
    })),
  };
}
"""


class StaticSite:
    """The shop's pages and the npm bundle, on loopback; records every path asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                site.requests.append(path)
                body, ctype = site.resolve(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def resolve(self, path: str) -> tuple[bytes | None, str]:
        if path in ("/", "/pricing"):
            return PAGE, "text/html; charset=utf-8"
        prefix = "/analytics-next/bundles/"
        if path.startswith(prefix):
            name = path[len(prefix):]
            f = UMD / name
            if "/" not in name and name.endswith(".js") and f.is_file():
                return f.read_bytes(), "application/javascript"
        return None, ""

    def __enter__(self) -> StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (UMD / "index.js").is_file():
        pytest.fail("analytics.js is not installed: run scripts/browser (npm ci in tests/browser)")
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run scripts/browser (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", source="website", provenance="customer_provided", trust="public")


def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _count(server: TaktServer, ws: Workspace) -> int:
    req = urllib.request.Request(server.url + "/v1/events/count",
                                 headers={"Authorization": f"Bearer {ws.admin_key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(json.loads(resp.read())["count"])


@pytest.mark.parametrize("strategy", ["standard", "batching"])
def test_analytics_js_calls_land_exactly_once(browser: Any, workspace: Workspace, strategy: str) -> None:
    tag = f"js-{strategy}"
    with TaktServer(workspace) as server, StaticSite() as site:
        context = browser.new_context()
        page = context.new_page()
        outside: list[str] = []
        sent: list[tuple[str, str, str | None]] = []
        bodies: list[Any] = []
        answers: list[tuple[str, int]] = []
        page_errors: list[str] = []

        def on_request(req: Any) -> None:
            if urlsplit(req.url).hostname not in ("127.0.0.1", "localhost"):
                outside.append(req.url)
            if req.url.startswith(server.url):
                sent.append((req.method, urlsplit(req.url).path, req.header_value("content-type")))
                if req.method == "POST" and req.post_data:
                    bodies.append(json.loads(req.post_data))

        page.on("request", on_request)
        page.on("response", lambda r: answers.append((urlsplit(r.url).path, r.status))
                if r.url.startswith(server.url) else None)
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.goto(site.url + "/pricing")
        result = page.evaluate(SCRIPT, {"writeKey": workspace.write_key, "apiHost": f"127.0.0.1:{server.port}/v1",
                                        "cdnURL": site.url, "strategy": strategy, "tag": tag})
        deadline = time.monotonic() + DELIVERY_DEADLINE
        while _count(server, workspace) < 4 and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        context.close()

    assert not page_errors, page_errors
    assert not outside, f"the page tried to reach beyond loopback: {outside}"
    assert [e["failed"] for e in result["events"]] == [None] * 4, result
    # what analytics.js really sent: text/plain bodies to the short paths, or one batch
    posts = [(m, p, ct) for m, p, ct in sent if m == "POST"]
    if strategy == "standard":
        assert sorted(p for _, p, _ in posts) == ["/v1/a", "/v1/i", "/v1/p", "/v1/t"], sent
    else:
        assert [p for _, p, _ in posts] == ["/v1/b"], sent
    assert all(ct and ct.startswith("text/plain") for _, _, ct in posts), sent
    assert answers and all(status == 200 for _, status in answers), answers

    log = export_events(workspace)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rec in log:
        by_id.setdefault(rec["messageId"], []).append(rec)
    expected = {f"{tag}-identify": "identify", f"{tag}-track": "track", f"{tag}-page": "page",
                f"{tag}-alias": "alias"}
    assert sorted(by_id) == sorted(expected), sorted(by_id)
    anon = result["anonymousId"]
    for mid, kind in expected.items():
        assert len(by_id[mid]) == 1, f"{mid} is in the log {len(by_id[mid])} times"
        rec = by_id[mid][0]
        assert rec["type"] == kind
        assert rec["source"] == "website" and rec["provenance"] == "customer_provided"
        assert rec["context"]["library"]["name"] == "analytics.js"
        assert rec["context"]["page"]["url"] == site.url + "/pricing"
        assert "writeKey" not in rec
        if kind != "alias":
            assert rec["anonymousId"] == anon
    identify, track, page_ev, alias = (by_id[f"{tag}-{k}"][0] for k in ("identify", "track", "page", "alias"))
    assert identify["userId"] == f"{tag}-user" and identify["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert track["userId"] == f"{tag}-user" and track["event"] == "Order Completed"
    assert track["properties"] == {"revenue": 42.5, "currency": "EUR"}
    assert page_ev["name"] == "Pricing" and page_ev["properties"]["variant"] == "b"
    assert page_ev["properties"]["category"] == "Docs" and page_ev["properties"]["path"] == "/pricing"
    assert page_ev["properties"]["title"] == "Pricing - takt test shop"
    assert alias["previousId"] == f"{tag}-user"  # (analytics.js sends the identified user as userId)

    # and field for field, what analytics.js put on the wire is what the log holds
    wire = {}
    for b in bodies:
        assert b["writeKey"] == workspace.write_key
        for item in b.get("batch", [b]):
            wire[item["messageId"]] = item
    assert sorted(wire) == sorted(expected)
    for mid, item in wire.items():
        rec = by_id[mid][0]
        for field in ("type", "userId", "anonymousId", "previousId", "event", "name", "properties", "traits",
                      "context", "timestamp"):
            if field == "timestamp":
                assert _instant(rec[field]) == _instant(item[field]), (mid, field)
            elif item.get(field) not in (None, {}):
                assert rec[field] == item[field], (mid, field, rec.get(field), item[field])
            else:
                assert field not in rec, (mid, field)
    assert "/analytics-next/bundles/index.js" in site.requests


LOAD_ONLY = """
async ({writeKey, apiHost, cdnURL, strategy}) => {
  const segmentio = {apiKey: writeKey, apiHost, protocol: "http"};
  if (strategy === "batching") {
    segmentio.deliveryStrategy = {strategy: "batching", config: {size: 1, timeout: 100}};
  }
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey, cdnURL, cdnSettings: {integrations: {"Segment.io": segmentio}, metrics: {sampleRate: 0}}},
  );
  window.analytics = analytics;
  return analytics.user().anonymousId();
}
"""


def _wait_count(server: TaktServer, ws: Workspace, n: int, page: Any) -> None:
    end = time.monotonic() + DELIVERY_DEADLINE
    while True:
        count = _count(server, ws)
        if count >= n:
            return
        assert time.monotonic() < end, f"only {count} of {n} events arrived"
        page.wait_for_timeout(100)


class Wire:
    """What a page POSTs to takt, seen from the browser (observed, never intercepted)."""

    def __init__(self, page: Any, server: TaktServer):
        self.posts: list[str] = []  # messageIds, once per attempt
        self.retry_counts: list[str] = []  # X-Retry-Count headers sent
        self.server = server
        page.on("request", self._on_request)

    def _on_request(self, r: Any) -> None:
        if r.url.startswith(self.server.url) and r.method == "POST":
            body = json.loads(r.post_data)
            self.posts.extend(item["messageId"] for item in body.get("batch", [body]))
            if r.header_value("x-retry-count"):
                self.retry_counts.append(r.header_value("x-retry-count"))

    def wait_attempts(self, ids: dict[str, int], page: Any) -> None:
        end = time.monotonic() + DELIVERY_DEADLINE
        while any(self.posts.count(m) < n for m, n in ids.items()):
            assert time.monotonic() < end, (ids, self.posts)
            page.wait_for_timeout(50)


@pytest.mark.parametrize("strategy", ["standard", "batching"])
def test_analytics_js_retries_after_lost_acks_and_a_crash(browser: Any, workspace: Workspace, strategy: str) -> None:
    """A lost acknowledgement (stored, but the browser sees the connection drop) and a SIGKILL'd server:
    analytics.js retries with the same messageIds, and each call is stored exactly once."""
    load = {"writeKey": workspace.write_key, "cdnURL": "", "strategy": strategy}
    with StaticSite() as site:
        load["cdnURL"] = site.url
        server = TaktServer(workspace).start()
        load["apiHost"] = f"127.0.0.1:{server.port}/v1"
        try:
            # 1. The acknowledgement is lost. (Playwright routes this page's requests to do that, and then
            #    answers CORS preflights itself: CORS is exercised by part 2, which intercepts nothing.)
            context = browser.new_context()
            page = context.new_page()
            wire = Wire(page, server)
            lost: list[int] = []

            def lose_first_ack(route: Any) -> None:
                if lost:
                    route.continue_()
                    return
                stored = route.fetch()  # it reaches takt and is committed …
                lost.append(stored.status)
                route.abort("connectionreset")  # … but the browser never hears so

            page.route(f"{server.url}/v1/{'t' if strategy == 'standard' else 'b'}", lose_first_ack)
            page.goto(site.url + "/pricing")
            page.evaluate(LOAD_ONLY, load)
            page.evaluate("analytics.track('Lost Ack', {n: 1}, {messageId: 'lost-ack'})")
            wire.wait_attempts({"lost-ack": 2}, page)  # sent, "lost", retried …
            _wait_count(server, workspace, 1, page)
            assert lost == [200]
            context.close()

            # 2. The server is killed (SIGKILL) with calls in flight, and comes back. No interception here:
            #    the retries carry X-Retry-Count, so takt's CORS answer must allow that header.
            context = browser.new_context()
            page = context.new_page()
            wire2 = Wire(page, server)
            page.goto(site.url + "/pricing")
            page.evaluate(LOAD_ONLY, load)
            page.evaluate("analytics.track('Before Crash', {}, {messageId: 'before-crash'})")
            _wait_count(server, workspace, 2, page)
            server.kill()
            page.evaluate("analytics.identify('crash-user', {plan: 'pro'}, {messageId: 'while-down-identify'})")
            page.evaluate("analytics.page('Docs', 'Down', {}, {messageId: 'while-down-page'})")
            wire2.wait_attempts({"while-down-identify": 1, "while-down-page": 1}, page)  # tried while down
            server.start()
            _wait_count(server, workspace, 4, page)
            assert wire2.retry_counts, "the retries should carry X-Retry-Count"
            context.close()
        finally:
            server.stop()

    log = export_events(workspace)
    counts = Counter(r["messageId"] for r in log)
    assert counts == {"lost-ack": 1, "before-crash": 1, "while-down-identify": 1, "while-down-page": 1}, counts
    assert wire.posts.count("lost-ack") >= 2
    assert wire2.posts.count("while-down-identify") >= 2 and wire2.posts.count("while-down-page") >= 2
