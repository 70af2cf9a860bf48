"""Building the demo workspace: keys, events through the real collection API, CRM files through the import.

:func:`build_demo` creates (or reuses) a workspace, creates a write key per source with its provenance plus a
read and an admin key, starts the ASGI app in-process with uvicorn on a loopback port, and POSTs every
generated payload to ``/v1/batch`` from several concurrent senders with each source's write key. The CRM
exports are written as CSV files into ``DIR/crm/`` and imported with the same code as ``takt import``. Then
:func:`build_projections` runs (the hook the projections fill in). Progress goes to a ``rich`` progress bar
when one is given.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import http.client
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from rich.progress import Progress, TaskID

from takt import workspace as ws_mod
from takt.clock import Clock
from takt.demo.catalog import taxonomy
from takt.demo.generator import (
    CASE_COLUMNS,
    CUSTOMER_COLUMNS,
    ENRICHMENT_COLUMNS,
    ENRICHMENT_MAPPING,
    EVENT_SOURCES,
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    SOURCES,
    DemoConfig,
    generate,
    product_rows,
)
from takt.errors import TaktError
from takt.ingest.records import ImportOptions, ImportSummary, import_file
from takt.ingest.verification import USER_HASH, user_hash
from takt.storage.base import Storage

KEYS_FILE = "demo-keys.json"
DEMO_FILE = "demo.json"
CRM_DIR = "crm"
READ_KEY_NAME = "demo-read"
ADMIN_KEY_NAME = "demo-admin"

MAX_BATCH_EVENTS = 400
MAX_BATCH_BYTES = 400 * 1024
SENDERS = 4

PUBLIC_SOURCES = frozenset({"website", "app"})
"""Sources whose write key lives in a web page or an app: public keys, their events the visitor's claims. The
company's backend vouches for its logged-in users (``context.userHash``), so those events are ``verified``.
The store's till and the call-center system are backends (server keys), as are the CRM and vendor imports."""


def trust_of_source(source: str) -> str:
    return "public" if source in PUBLIC_SOURCES else "server"


# ---- keys ----
@dataclass
class DemoKeys:
    write: dict[str, str]
    """source → write key secret"""
    read: str
    admin: str

    def to_json(self, url: str | None = None) -> dict[str, Any]:
        return {
            "url": url,
            "write": {s: {"key": k, "provenance": SOURCES[s], "trust": trust_of_source(s)}
                      for s, k in self.write.items()},
            "read": self.read,
            "admin": self.admin,
        }


def _load_keys(path: Path, storage: Storage) -> DemoKeys | None:
    """The keys of an earlier demo run in this workspace, if they all still work."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        write = {s: v["key"] for s, v in data["write"].items()}
        keys = DemoKeys(write, data["read"], data["admin"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(keys.write) != set(SOURCES):
        return None
    for raw in (*keys.write.values(), keys.read, keys.admin):
        k = storage.keys.lookup(raw)
        if k is None or not k.active:
            return None
    for source, raw in keys.write.items():  # from before keys had a trust: made again, public where it belongs
        k = storage.keys.lookup(raw)
        if k is None or k.trust != trust_of_source(source):
            return None
    return keys


def ensure_keys(storage: Storage, path: Path, now: datetime) -> DemoKeys:
    """Reuse the keys in ``path`` if they are valid, else create a write key per source, a read and an admin
    key, and write them to ``path`` (readable only by the owner)."""
    existing = _load_keys(path, storage)
    if existing is not None:
        return existing
    write = {}
    for source, provenance in SOURCES.items():
        _, secret = storage.keys.create("write", f"demo-{source}", source, provenance, now=now,
                                        trust=trust_of_source(source))
        write[source] = secret.reveal()
    _, read = storage.keys.create("read", READ_KEY_NAME, now=now)
    _, admin = storage.keys.create("admin", ADMIN_KEY_NAME, now=now)
    keys = DemoKeys(write, read.reveal(), admin.reveal())
    save_keys(path, keys, None)
    return keys


def save_keys(path: Path, keys: DemoKeys, url: str | None) -> None:
    path.write_text(json.dumps(keys.to_json(url), indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)


# ---- the in-process server ----
class LocalServer:
    """The ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="takt-demo-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise TaktError("the demo's ingestion server did not start", code="demo_failed", status=500)
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        # Wait for the whole shutdown (the app's lifespan finishes the writer and lets live projections
        # catch up, which can take a while after a large feed): storage must not be closed under it.
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()


# ---- sending ----
Post = Callable[[str, bytes], tuple[int, dict[str, str], bytes]]
"""(write key, body) → (status, headers, body): one POST /v1/batch."""


def http_poster(url: str) -> Callable[[], Post]:
    """A factory of per-thread keep-alive HTTP posters to ``url``."""
    host, port = url.removeprefix("http://").split(":")

    def make() -> Post:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)

        def post(key: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
            auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            try:
                conn.request("POST", "/v1/batch", body=body, headers=headers)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException):
                conn.close()  # reconnect once
                conn.request("POST", "/v1/batch", body=body, headers=headers)
                resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

        post.close = conn.close  # type: ignore[attr-defined]
        return post

    return make


def testclient_poster(client: Any) -> Callable[[], Post]:
    """Posters through a ``starlette.testclient.TestClient`` (the fallback when no socket can be bound)."""
    lock = threading.Lock()

    def make() -> Post:
        def post(key: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
            auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            with lock:
                r = client.post("/v1/batch", content=body,
                                headers={"Authorization": auth, "Content-Type": "application/json"})
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

        return post

    return make


class BatchSender:
    """Concurrent senders taking ``(key, payloads)`` batches from a bounded queue; retries 429/503."""

    def __init__(self, make_poster: Callable[[], Post], senders: int = SENDERS,
                 on_sent: Callable[[int], None] | None = None):
        self._queue: queue.Queue[tuple[str, list[bytes]] | None] = queue.Queue(maxsize=senders * 4)
        self._on_sent = on_sent
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.requests = 0
        self._threads = [threading.Thread(target=self._run, args=(make_poster,), name=f"takt-demo-sender-{i}",
                                          daemon=True) for i in range(senders)]
        for t in self._threads:
            t.start()

    def submit(self, key: str, items: list[bytes]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((key, items))

    def _run(self, make_poster: Callable[[], Post]) -> None:
        post = make_poster()
        while True:
            job = self._queue.get()
            if job is None:
                close = getattr(post, "close", None)
                if close is not None:
                    close()
                return
            if self._error is not None:
                continue
            key, items = job
            try:
                self._send(post, key, items)
            except BaseException as e:
                self._error = e

    def _send(self, post: Post, key: str, items: list[bytes]) -> None:
        body = b'{"batch":[' + b",".join(items) + b"]}"
        for _attempt in range(60):
            status, headers, text = post(key, body)
            if status == 200:
                with self._lock:
                    self.sent += len(items)
                    self.requests += 1
                if self._on_sent is not None:
                    self._on_sent(len(items))
                return
            if status in (429, 503):
                time.sleep(float(headers.get("retry-after", "1") or 1))
                continue
            raise TaktError(f"the collection API refused a demo batch: {status} {text[:500].decode('utf-8', 'replace')}",
                            code="demo_failed", status=500)
        raise TaktError("the collection API stayed overloaded; the demo gave up", code="demo_failed", status=500)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        if self._error is not None:
            raise self._error


class _Buffers:
    """Per-source payload buffers, shipped as a batch when full. A public source's payload of a logged-in user
    carries the hash the company's backend computes for it (``context.userHash``), as a real site's would."""

    def __init__(self, sender: BatchSender, keys: dict[str, str], verification_secret: str | None = None):
        self.sender = sender
        self.keys = keys
        self.secret = verification_secret
        self.items: dict[str, list[bytes]] = {s: [] for s in EVENT_SOURCES}
        self.size: dict[str, int] = dict.fromkeys(EVENT_SOURCES, 0)

    def add(self, source: str, payload: dict[str, Any]) -> None:
        user = payload.get("userId")
        if self.secret is not None and source in PUBLIC_SOURCES and isinstance(user, str) and user:
            payload = {**payload, "context": {**(payload.get("context") or {}),
                                              USER_HASH: user_hash(self.secret, user)}}
        b = orjson.dumps(payload)
        if self.size[source] + len(b) > MAX_BATCH_BYTES:
            self.ship(source)
        self.items[source].append(b)
        self.size[source] += len(b) + 1
        if len(self.items[source]) >= MAX_BATCH_EVENTS:
            self.ship(source)

    def ship(self, source: str) -> None:
        if self.items[source]:
            self.sender.submit(self.keys[source], self.items[source])
            self.items[source] = []
            self.size[source] = 0

    def flush(self) -> None:
        for s in EVENT_SOURCES:
            self.ship(s)


# ---- CRM files ----
class CrmFiles:
    """The CRM exports the demo writes: customers, enrichment, orders, cases and products CSV files."""

    FILES = {"customers": CUSTOMER_COLUMNS, "enrichment": ENRICHMENT_COLUMNS, "orders": ORDER_COLUMNS,
             "cases": CASE_COLUMNS, "products": PRODUCT_COLUMNS}

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, TextIO] = {}
        self._writers: dict[str, Any] = {}
        for name, cols in self.FILES.items():
            f = open(self.path(name), "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._files[name] = f
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            self._writers[name] = w

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.csv"

    def write(self, name: str, rows: list[dict[str, str]]) -> None:
        if rows:
            self._writers[name].writerows(rows)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


IMPORTS: tuple[tuple[str, str, str, ImportOptions], ...] = (
    ("products", "products", "product catalog", ImportOptions(source="crm", provenance="crm_import")),
    ("customers", "customers", "CRM customers", ImportOptions(source="crm", provenance="crm_import")),
    ("enrichment", "customers", "enrichment vendor", ImportOptions(
        source="enrichment-vendor", provenance="third_party", customer_given=False, mapping=ENRICHMENT_MAPPING)),
    ("orders", "orders", "CRM orders", ImportOptions(source="crm", provenance="crm_import")),
    ("cases", "cases", "CRM service cases", ImportOptions(source="crm", provenance="crm_import")),
)
"""(file, record type, label, options): the order the demo imports its CRM files in."""


# ---- the whole build ----
@dataclass
class DemoResult:
    workspace: Path
    keys: DemoKeys
    customers: int = 0
    events_generated: int = 0
    events_sent: int = 0
    requests: int = 0
    imports: list[tuple[str, ImportSummary]] = field(default_factory=list)
    events_in_log: int = 0
    """Every event the log holds (what GET /v1/events/count says), derived ones included."""
    derived_in_log: int = 0
    """Of which takt derived itself (e.g. interest_shifted)."""
    timings: dict[str, float] = field(default_factory=dict)
    transport: str = "http"
    skipped: bool = False
    """The workspace already held this demo; nothing was sent."""


def _count(result: DemoResult, storage: Storage) -> None:
    from takt.events.counts import event_counts

    counts = event_counts(storage.log)
    result.events_in_log, result.derived_in_log = counts["count"], counts["derived"]


def build_projections(workspace: ws_mod.Workspace, clock: Clock | None = None,
                      progress: Progress | None = None) -> None:
    """HOOK for the lead: build the projections (identity graph, profiles, …) from the demo's event log.

    Called by ``takt demo`` once every event is in the log and the CRM files are imported, with no storage
    open. What it does now: the collection server already folds profiles live while the events arrive, but
    the CRM records are imported after it stopped, so this catches the profile projection up with the whole
    log and saves its snapshot (``takt serve`` then starts ready). Then it computes the contactability table
    behind ``contactable()`` for every profile and records where it is complete, so the first ``takt serve``
    recomputes nothing. Replace freely.
    """
    from takt.clock import system_clock
    from takt.policy import segment_functions
    from takt.policy.config import PolicySettings
    from takt.policy.suppression_store import sync
    from takt.services import services_of

    with workspace.open_storage() as storage:
        runner = services_of(storage).runner_for(clock or system_clock)
        runner.load()
        with _task(progress, "building profiles", max(0, storage.log.head() - runner.position)) as bar:
            applied = runner.catch_up(progress=lambda n: bar(n))
            bar(total=applied, completed=applied)
        runner.save()
        with _task(progress, "suppression list", storage.log.head()) as bar:
            sync(storage, progress=lambda position, total: bar(completed=position, total=total))
        with _task(progress, "contactability", len(runner.profile_ids())) as bar:
            segment_functions.refresh_all(storage, runner, PolicySettings.from_settings(workspace.settings),
                                          runner.clock(), progress=lambda n: bar(n))


@contextlib.contextmanager
def _task(progress: Progress | None, description: str, total: float | None) -> Iterator[
        Callable[..., None]]:
    if progress is None:
        yield lambda *a, **k: None
        return
    task: TaskID = progress.add_task(description, total=total)

    def update(advance: float = 0, **kw: Any) -> None:
        progress.update(task, advance=advance, **kw)

    yield update


def feed_events(storage: Storage, ws: ws_mod.Workspace, cfg: DemoConfig, keys: DemoKeys, crm: CrmFiles,
                result: DemoResult, clock: Clock, progress: Progress | None, transport: str) -> None:
    """Generate every customer; send their payloads through the collection API; write their CRM rows."""
    from takt.api.app import create_app

    # Collection only: folding profiles live while the demo floods the server would share one interpreter
    # with ingestion and fold the same events anyway; build_projections folds the whole log once afterwards.
    # A simulation ending in the future is received as of its end (as its CRM rows are imported): its events are
    # not "in the future" of the collection API's plausible-time window.
    app = create_app(storage, ws.settings, lambda: max(clock(), cfg.end), project=False)
    with contextlib.ExitStack() as stack:
        if transport == "http":
            try:
                server = stack.enter_context(LocalServer(app))
            except OSError:
                transport = "testclient"
            else:
                make_poster, senders = http_poster(server.url), SENDERS
        if transport == "testclient":
            from starlette.testclient import TestClient

            client = stack.enter_context(TestClient(app))
            make_poster, senders = testclient_poster(client), 1
        result.transport = transport
        with _task(progress, "generating customers", cfg.customers) as gen_bar, \
                _task(progress, f"sending events ({transport})", None) as send_bar:
            sender = BatchSender(make_poster, senders, on_sent=lambda n: send_bar(n))
            buffers = _Buffers(sender, keys.write, ws.verification_secret())
            try:
                for data in generate(cfg):
                    for source, payloads in data.payloads.items():
                        for p in payloads:
                            buffers.add(source, p)
                    result.events_generated += data.event_count()
                    crm.write("customers", data.customers)
                    crm.write("enrichment", data.enrichment)
                    crm.write("orders", data.orders)
                    crm.write("cases", data.cases)
                    result.customers += 1
                    gen_bar(1)
                    send_bar(total=result.events_generated)
                buffers.flush()
            finally:
                sender.close()
            result.events_sent = sender.sent
            result.requests = sender.requests
        with _task(progress, "stopping the server", 1) as stop_bar:
            stack.close()
            stop_bar(1)


def import_crm(storage: Storage, crm: CrmFiles, now: datetime, progress: Progress | None) -> list[
        tuple[str, ImportSummary]]:
    """Import the CRM files with the same code as ``takt import``; rejects go to ``crm/*.rejects.csv``."""
    out = []
    for name, record_type, label, options in IMPORTS:
        with _task(progress, f"importing {label}", None) as bar:

            def on_start(total: int | None, bar: Callable[..., None] = bar) -> None:
                bar(total=total)

            summary = import_file(storage.log, crm.path(name), record_type, options, now=now,
                                  progress=bar, on_start=on_start)
            bar(total=summary.read, completed=summary.read)
        out.append((name, summary))
    return out


# ---- the demo's own record of what it built ----
def _state_json(cfg: DemoConfig, complete: bool) -> dict[str, Any]:
    return {"customers": cfg.customers, "days": cfg.days, "seed": cfg.seed,
            "end": cfg.end.astimezone(UTC).isoformat().replace("+00:00", "Z"), "complete": complete}


def read_state(path: Path) -> dict[str, Any] | None:
    """What ``takt demo`` built in ``path`` (``DEMO_FILE``), or ``None``."""
    try:
        data = json.loads((path / DEMO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stored_end(path: Path) -> datetime | None:
    """The end of the demo already built in ``path``, so a rerun without ``--end`` rebuilds the same data."""
    state = read_state(path)
    try:
        return datetime.fromisoformat(state["end"]) if state else None
    except (KeyError, TypeError, ValueError):
        return None


def check_target(path: Path, cfg: DemoConfig) -> dict[str, Any] | None:
    """Refuse to mix the demo into a workspace that is not a demo, or into a demo built differently."""
    state = read_state(path)
    if (path / "takt.toml").exists() and state is None and not (path / KEYS_FILE).exists():
        raise TaktError(f"{path} is a takt workspace that `takt demo` did not build; the demo will not add its "
                        "made-up customers to it. Choose another --workspace.", code="usage")
    if state is not None:
        want = _state_json(cfg, True)
        differs = [f"--{k} {state.get(k)}" for k in ("customers", "days", "seed", "end") if state.get(k) != want[k]]
        if differs:
            raise TaktError(f"{path} holds a demo built with " + " ".join(
                f"--{k} {state.get(k)}" for k in ("customers", "days", "seed", "end")) +
                f" (differs in {', '.join(d.split()[0] for d in differs)}). Use another --workspace for a "
                "different demo, or delete this one.", code="usage")
    return state


DEMO_SETTINGS_MARK = "# --- the demo's settings (takt demo) ---"


def configure(toml: Path) -> None:
    """Add the demo's settings to its ``takt.toml`` (once): every userId is also the customer's CRM number (the
    till and the CRM both key customers by it, so a store purchase and the CRM record are one person), and the
    search and page taxonomy that turns "krabi snorkeling" and "nyc winter" into destination interests."""
    text = toml.read_text(encoding="utf-8")
    if DEMO_SETTINGS_MARK in text:
        return
    lines = ["", DEMO_SETTINGS_MARK, "[identity]", 'user_id_is = "crm_id"', "", "[interests.taxonomy]"]
    lines += [f"{json.dumps(term)} = {json.dumps(key)}" for term, key in sorted(taxonomy().items())]
    toml.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def load_offers(storage: Storage, directory: Path, now: datetime) -> int:
    """Write the demo's offer catalog next to the workspace and load it (as ``takt offers load``)."""
    from takt.demo.offers import write_catalog
    from takt.models.offers.catalog import read_catalog
    from takt.models.offers.store import OfferStore

    offers = read_catalog(write_catalog(directory))
    OfferStore(storage).put(offers, now)
    return len(offers)


def build_demo(path: str | os.PathLike[str], cfg: DemoConfig, *, clock: Clock,
               progress: Progress | None = None, transport: str = "http", rebuild: bool = False) -> DemoResult:
    """Create the demo workspace at ``path``; see the module docstring.

    A workspace this demo already built with the same parameters is left as it is (``skipped``) unless
    ``rebuild``, which sends and imports everything again: idempotent, so it only completes an interrupted
    build. Any other workspace is refused (see :func:`check_target`)."""
    if transport not in ("http", "testclient"):
        raise TaktError(f"unknown transport {transport!r}", code="usage")
    started = time.perf_counter()
    target = ws_mod.resolve_path(path)
    state = check_target(target, cfg)
    ws = ws_mod.init(target)
    if state is None:  # a new demo: its settings before any event is folded
        configure(ws.path / "takt.toml")
        ws = ws_mod.open_workspace(ws.path)
    storage = ws.open_storage()
    try:
        keys = ensure_keys(storage, ws.path / KEYS_FILE, clock())
        result = DemoResult(ws.path, keys)
        if state is not None and state.get("complete") and not rebuild:
            result.skipped = True
            _count(result, storage)
            return result
        (ws.path / DEMO_FILE).write_text(json.dumps(_state_json(cfg, False)) + "\n", encoding="utf-8")
        crm = CrmFiles(ws.path / CRM_DIR)
        try:
            crm.write("products", product_rows())
            t0 = time.perf_counter()
            feed_events(storage, ws, cfg, keys, crm, result, clock, progress, transport)
            result.timings["events"] = time.perf_counter() - t0
        finally:
            crm.close()
        t0 = time.perf_counter()
        # a simulation ending in the future imports as of its end, so its rows are not "in the future"
        result.imports = import_crm(storage, crm, max(clock(), cfg.end), progress)
        result.timings["imports"] = time.perf_counter() - t0
        load_offers(storage, ws.path, clock())
    finally:
        storage.close()
    t0 = time.perf_counter()
    build_projections(ws, clock, progress)
    result.timings["projections"] = time.perf_counter() - t0
    with ws.open_storage() as storage:  # counted after the projections derived their events: the API's count
        _count(result, storage)
    (ws.path / DEMO_FILE).write_text(json.dumps(_state_json(cfg, True)) + "\n", encoding="utf-8")
    result.timings["total"] = time.perf_counter() - started
    return result
