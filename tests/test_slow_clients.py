"""The server closes slow and partial requests (slowloris): headers that do not arrive in time, a body that
stalls. A real uvicorn server (as `takt serve` configures it) on a loopback port, driven through raw sockets."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from takt.api.app import create_app
from takt.api.serving import uvicorn_options
from takt.clock import system_clock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SLACK = 1.5  # scheduling on a busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, secret = storage.keys.create("write", "w", None, "customer_provided", now=system_clock())
    settings = load(None, env={"TAKT_SERVER__HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
                               "TAKT_SERVER__BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
                               "TAKT_SERVER__TIMEOUT_KEEP_ALIVE_SECONDS": "1"})
    port = _free_port()
    options = uvicorn_options(settings, prefer_httptools=request.param == "httptools")
    # httptools comes with uvicorn[standard], a dependency: its absence is a broken install, not a skip
    assert request.param != "httptools" or "HttpTools" in options["http"].__name__
    config = uvicorn.Config(create_app(storage, settings, system_clock), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False, **options)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield {"port": port, "key": secret.reveal()}
    finally:
        srv.should_exit = True
        thread.join(15)
        storage.close()


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)  # the test's own bound: a server that never closes fails here, it does not hang
    return s


def _until_closed(s: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    start = time.monotonic()
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for 10 s (received {got[:200]!r})")
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return time.monotonic() - start, got


def test_half_a_request_head_is_closed_within_the_header_timeout(server: dict[str, Any]) -> None:
    with _connect(server["port"]) as s:
        s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")  # no blank line
        took, _ = _until_closed(s)
    assert took <= HEADER_TIMEOUT + SLACK, took


def test_a_trickled_request_head_is_closed_too(server: dict[str, Any]) -> None:
    with _connect(server["port"]) as s:
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        closed = False
        for i in range(20):  # a header line every 0.3 s: each byte resets nothing
            time.sleep(0.3)
            try:
                s.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                closed = True
                break
        if not closed:
            _until_closed(s)
        assert time.monotonic() - start <= HEADER_TIMEOUT + SLACK + 0.3


def test_a_stalled_body_gets_408_and_the_connection_closes(server: dict[str, Any]) -> None:
    auth = base64.b64encode(f"{server['key']}:".encode()).decode()
    with _connect(server["port"]) as s:
        s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Basic " + auth.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"batch\": [")
        took, got = _until_closed(s)
    assert took <= BODY_TIMEOUT + SLACK, took
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert b"request_timeout" in got


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(server: dict[str, Any]) -> None:
    with _connect(server["port"]) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
            first += s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the next request, half
        took, _ = _until_closed(s)
    assert took <= HEADER_TIMEOUT + SLACK, took


def test_whole_requests_still_work(server: dict[str, Any]) -> None:
    with _connect(server["port"]) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, got = _until_closed(s)
    assert got.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in got
