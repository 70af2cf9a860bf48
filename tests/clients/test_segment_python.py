"""The unmodified ``segment-analytics-python`` library against a real ``takt serve``: every call it makes
lands in the log exactly once, with the fields it sent, the key's source and provenance."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import segment.analytics as analytics
from segment.analytics import request as segment_request
from segment.analytics.request import APIError

from tests.support.server import TaktServer, Workspace, export_events, make_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", source="backend", provenance="crm_import")


@pytest.fixture
def configured() -> Iterator[list[Any]]:
    """The library's module-level client, reset before and after (it is a process-wide singleton)."""
    saved = {k: getattr(analytics, k) for k in ("write_key", "host", "sync_mode", "gzip", "on_error",
                                                  "max_retries", "send")}
    errors: list[Any] = []
    analytics.default_client = None
    analytics.on_error = lambda error, items: errors.append((error, items))
    analytics.max_retries = 3
    try:
        yield errors
    finally:
        if analytics.default_client is not None and not analytics.default_client.sync_mode:
            analytics.shutdown()  # (the library's join() fails on a sync-mode client: it has no consumers)
        analytics.default_client = None
        for k, v in saved.items():
            setattr(analytics, k, v)


def _calls(tag: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, expected log fields) for one of each call the library makes, with explicit messageIds."""
    return [
        ("identify", {"messageId": f"{tag}-identify", "userId": f"{tag}-u1",
                      "traits": {"email": "ada@example.com", "plan": "pro", "age": 36}}),
        ("track", {"messageId": f"{tag}-track", "userId": f"{tag}-u1", "event": "Order Completed",
                   "properties": {"revenue": 42.5, "currency": "EUR", "items": [{"sku": "a-1", "qty": 2}]}}),
        ("page", {"messageId": f"{tag}-page", "anonymousId": f"{tag}-anon", "name": "Pricing",
                  "properties": {"path": "/pricing", "title": "Pricing"}}),
        ("alias", {"messageId": f"{tag}-alias", "previousId": f"{tag}-anon", "userId": f"{tag}-u1"}),
        ("track", {"messageId": f"{tag}-anon-track", "anonymousId": f"{tag}-anon", "event": "Viewed Plan",
                   "properties": {"plan": "pro"}}),
    ]


def _send(kind: str, f: dict[str, Any]) -> None:
    mid = f["messageId"]
    if kind == "identify":
        analytics.identify(f["userId"], f["traits"], message_id=mid)
    elif kind == "track" and "userId" in f:
        analytics.track(f["userId"], f["event"], f["properties"], message_id=mid)
    elif kind == "track":
        analytics.track(event=f["event"], properties=f["properties"], anonymous_id=f["anonymousId"],
                        message_id=mid)
    elif kind == "page":
        analytics.page(anonymous_id=f["anonymousId"], name=f["name"], properties=f["properties"],
                       message_id=mid)
    elif kind == "alias":
        analytics.alias(f["previousId"], f["userId"], message_id=mid)
    else:  # pragma: no cover
        raise AssertionError(kind)


def _assert_exactly_once(log: list[dict[str, Any]], calls: list[tuple[str, dict[str, Any]]],
                         ws: Workspace) -> None:
    counts = Counter(r["messageId"] for r in log)
    by_id = {r["messageId"]: r for r in log}
    for kind, fields in calls:
        mid = fields["messageId"]
        assert counts[mid] == 1, f"{mid} is in the log {counts[mid]} times"
        rec = by_id[mid]
        assert rec["type"] == kind
        assert rec["source"] == ws.source and rec["provenance"] == ws.provenance
        for name, value in fields.items():
            assert rec[name] == value, (mid, name, rec.get(name), value)
        for absent in ("userId", "anonymousId"):
            if absent not in fields:
                assert absent not in rec, (mid, absent)
        # what the library adds itself arrives too
        assert rec["context"]["library"]["name"] == "analytics-python"
        assert rec["sentAt"] and rec["timestamp"] and rec["receivedAt"]
        assert "writeKey" not in rec


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the library puts on the wire (a spy around its HTTP session; the request still goes out)."""
    seen: list[dict[str, Any]] = []
    real = segment_request._session.post

    def spy(url: str, **kwargs: Any) -> Any:
        rec = {"url": url, "headers": dict(kwargs["headers"]), "data": kwargs["data"], "status": None}
        seen.append(rec)
        try:
            resp = real(url, **kwargs)
        except Exception as e:
            rec["status"] = type(e).__name__
            raise
        rec["status"] = resp.status_code
        return resp

    monkeypatch.setattr(segment_request._session, "post", spy)
    return seen


@pytest.mark.parametrize("mode", ["sync", "queued-gzip"])
def test_library_calls_land_exactly_once(workspace: Workspace, configured: list[Any], mode: str,
                                         sent: list[dict[str, Any]]) -> None:
    calls = _calls(mode)
    with TaktServer(workspace) as server:
        analytics.write_key = workspace.write_key
        analytics.host = server.url
        analytics.sync_mode = mode == "sync"
        analytics.gzip = mode == "queued-gzip"
        for kind, fields in calls:
            _send(kind, fields)
        # A retried call (same messageId, e.g. after a lost acknowledgement) is not stored twice.
        _send(*calls[1])
        if mode != "sync":
            analytics.flush()  # wait until the consumer thread has delivered the queue
            analytics.join()
        analytics.default_client = None
        assert configured == [], configured
    assert sent and all(r["url"] == server.url + "/v1/batch" for r in sent)
    if mode == "sync":
        assert len(sent) == len(calls) + 1
        assert all("Content-Encoding" not in r["headers"] for r in sent)
    else:  # really gzip'd on the wire
        assert all(r["headers"]["Content-Encoding"] == "gzip" and r["data"][:2] == b"\x1f\x8b" for r in sent)
    log = export_events(workspace)
    _assert_exactly_once(log, calls, workspace)
    assert len(log) == len(calls)


def test_library_without_message_ids_gets_its_own_uuids(workspace: Workspace, configured: list[Any]) -> None:
    """With no explicit messageId the library makes a UUID per call: each call is its own event."""
    with TaktServer(workspace) as server:
        analytics.write_key = workspace.write_key
        analytics.host = server.url
        analytics.sync_mode = True
        analytics.gzip = True
        for i in range(3):
            analytics.track("u-repeat", "Clicked", {"n": i})
        analytics.identify("u-repeat", {"name": "Grace"})
        assert configured == [], configured
    log = export_events(workspace)
    assert sorted(r["type"] for r in log) == ["identify", "track", "track", "track"]
    assert sorted(r["properties"]["n"] for r in log if r["type"] == "track") == [0, 1, 2]
    assert len({r["messageId"] for r in log}) == 4


def test_library_reports_refusals(workspace: Workspace, configured: list[Any]) -> None:
    """A bad key or an invalid call is refused (never 2xx-then-drop) and the library hears why."""
    with TaktServer(workspace) as server:
        analytics.write_key = "tk_w_not-a-real-key"
        analytics.host = server.url
        analytics.sync_mode = True
        with pytest.raises(APIError) as e:
            analytics.track("u1", "Refused", message_id="refused-1")
        assert e.value.status == 401 and e.value.code == "unauthorized"
        analytics.default_client = None
        analytics.write_key = workspace.write_key
        with pytest.raises(APIError) as e2:
            analytics.track("u1", "E" * 600, {"n": 1}, message_id="refused-2")  # event names: 512 at most
        assert e2.value.status == 400 and e2.value.code == "invalid_batch"
        (detail,) = e2.value.response.json()["errors"]
        assert detail["index"] == 0 and detail["field"] == "event" and "512" in detail["reason"]
    assert export_events(workspace) == []


def _wait_for(cond: Any, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_library_retries_through_a_server_crash(workspace: Workspace, configured: list[Any],
                                                sent: list[dict[str, Any]]) -> None:
    """SIGKILL the server while the library's queue is busy, restart it: the library's own retries deliver
    every call, and each is stored exactly once."""
    server = TaktServer(workspace).start()
    try:
        analytics.write_key = workspace.write_key
        analytics.host = server.url
        analytics.sync_mode = False
        analytics.max_retries = 10
        for i in range(300):
            analytics.track(f"u{i % 10}", "Crash Test", {"i": i}, message_id=f"crash-{i}")
        _wait_for(lambda: any(r["status"] == 200 for r in sent), "a first delivered batch")
        server.kill()
        for i in range(300, 600):
            analytics.track(f"u{i % 10}", "Crash Test", {"i": i}, message_id=f"crash-{i}")
        _wait_for(lambda: any(isinstance(r["status"], str) for r in sent), "a failed attempt while down")
        server.start()
        analytics.flush()
        analytics.join()
        analytics.default_client = None
    finally:
        server.stop()
    assert configured == [], configured  # the library gave up on nothing
    log = export_events(workspace)
    counts = Counter(r["messageId"] for r in log)
    assert sorted(counts) == sorted(f"crash-{i}" for i in range(600))
    assert set(counts.values()) == {1}
    assert sorted(r["properties"]["i"] for r in log) == list(range(600))
