"""Compressed and oversized bodies against a live ``takt serve``: a small body that inflates past the cap is
refused with 400 (the one error shape), the server's memory stays bounded, and it keeps serving."""

from __future__ import annotations

import gzip
import http.client
import signal
import zlib
from collections.abc import Iterator

import orjson
import psutil
import pytest

from tests.support.server import TaktServer, Workspace, basic_auth, export_events, make_workspace

MB = 1024 * 1024
RSS_BOUND = 100 * MB


class Live:
    """One server for the module, and the messageIds it acknowledged."""

    def __init__(self, server: TaktServer, ws: Workspace):
        self.server, self.ws = server, ws
        self.acked: list[str] = []

    def store(self, path: str, body: bytes, headers: dict[str, str], ids: list[str]) -> None:
        status, answer = self.server.post(path, body, {**basic_auth(self.ws.write_key), **headers})
        assert (status, answer) == (200, {"success": True})
        self.acked += ids

    def track(self, message_id: str) -> None:
        self.store("/v1/track", orjson.dumps({"userId": "u", "event": "Fine", "messageId": message_id}), {},
                   [message_id])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    ws = make_workspace(tmp_path_factory.mktemp("bomb") / "ws")
    server = TaktServer(ws).start()
    try:
        yield Live(server, ws)
    finally:
        server.stop()


def _bomb(inflated: int, encoding: str) -> bytes:
    """A JSON-looking body of ``inflated`` bytes (mostly spaces), compressed in one streaming pass."""
    head, tail = b'{"batch": [', b"]}"
    comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    parts = [comp.compress(head)]
    chunk = b" " * MB
    for _ in range(inflated // MB):
        parts.append(comp.compress(chunk))
    parts += [comp.compress(tail), comp.flush()]
    return b"".join(parts)


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@pytest.mark.parametrize("encoding,inflated", [("gzip", 512 * MB), ("deflate", 512 * MB), ("gzip", 4 * MB)])
def test_bomb_is_refused_and_memory_stays_bounded(live: Live, encoding: str, inflated: int) -> None:
    server, ws = live.server, live.ws
    body = _bomb(inflated, encoding)
    assert len(body) < 600 * 1024 and len(body) * 50 < inflated  # small on the wire, huge inflated
    live.track(f"before-{encoding}-{inflated}")  # warm (first requests, imports) before the baseline
    before = _rss(server.pid)
    for _ in range(5):
        status, answer = server.post("/v1/batch", body, {**basic_auth(ws.write_key), "Content-Encoding": encoding})
        assert status == 400, answer
        assert answer["success"] is False and answer["code"] == "too_large"
        assert "decompressed" in answer["message"]
    grown = _rss(server.pid) - before
    assert grown < RSS_BOUND, f"RSS grew by {grown / MB:.0f} MB refusing {inflated // MB} MB bombs"
    live.track(f"after-{encoding}-{inflated}")  # still healthy, and still storing


def test_bomb_with_write_key_in_body_is_refused(live: Live) -> None:
    """analytics.js style (text/plain, key inside the body): refused while inflating, before the key is read."""
    server = live.server
    body = _bomb(256 * MB, "gzip")
    status, answer = server.post("/v1/t", body, {"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    assert status == 400 and answer["code"] == "too_large"


def _raw_post(server: TaktServer, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, dict]:
    """A chunked POST (no Content-Length); the server may answer before the body is all sent."""
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        con.putrequest("POST", path)
        for k, v in headers.items():
            con.putheader(k, v)
        con.putheader("Transfer-Encoding", "chunked")
        con.endheaders()
        try:
            for c in chunks:
                con.send(b"%x\r\n%s\r\n" % (len(c), c))
            con.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body: the answer is still there to read
        resp = con.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        con.close()


def test_oversized_streamed_body_is_refused(live: Live) -> None:
    """No Content-Length, 8 MB streamed: refused at the cap instead of read into memory."""
    server, ws = live.server, live.ws

    def chunks() -> Iterator[bytes]:
        yield b'{"batch": ['
        for _ in range(128):
            yield b" " * 65536
        yield b"]}"

    status, answer = _raw_post(server, "/v1/batch", {**basic_auth(ws.write_key), "Content-Type": "application/json"},
                               chunks())
    assert status == 400 and answer["code"] == "too_large"
    live.track("after-stream")


def test_gzip_body_within_limits_is_stored(live: Live) -> None:
    batch = {"batch": [{"type": "track", "userId": f"u{i}", "event": "Zipped", "messageId": f"zip-{i}",
                        "properties": {"pad": "x" * 1000}} for i in range(300)]}
    raw = orjson.dumps(batch)
    assert 250 * 1024 < len(raw) < 500 * 1024  # near, but under, the decompressed cap
    live.store("/v1/batch", gzip.compress(raw), {"Content-Encoding": "gzip"}, [f"zip-{i}" for i in range(300)])


def test_log_holds_exactly_what_was_acknowledged(live: Live) -> None:
    """Last in the module: every acknowledged event is in the log once, and nothing refused got in."""
    # SIGTERM ends it by itself (graceful; uvicorn re-raises the signal afterwards), no SIGKILL needed
    assert live.server.stop() in (0, -signal.SIGTERM)
    ids = [r["messageId"] for r in export_events(live.ws)]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(live.acked)
