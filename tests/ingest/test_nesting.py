"""Nesting deeper than what is stored (issue 11 item 3): refused with a per-item reason, never a 500 from the
serializer (orjson stops at 254 levels) or the database."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.ingest.segment import MAX_BODY_DEPTH, ItemError, Limits, Source, json_depth, normalize
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def nested(depth: int, leaf: Any = 1) -> Any:
    """An object ``depth`` levels deep (``{"a": {"a": … leaf}}``), alternating objects and lists."""
    v = leaf
    for i in range(depth):
        v = {"a": v} if (depth - 1 - i) % 2 == 0 else [v]
    return v


def test_depth_counts_objects_and_lists() -> None:
    assert json_depth(1) == 0 and json_depth({}) == 1 and json_depth({"a": [1]}) == 2
    assert json_depth(nested(10_000)) == 10_000  # iterative: no RecursionError


@pytest.mark.parametrize("field", ["properties", "traits", "context", "integrations", "somethingElse"])
def test_an_item_nested_too_deep_is_refused_with_its_field(field: str) -> None:
    limits = Limits(max_depth=32)
    ok = {"type": "track", "userId": "u", "event": "E", field: nested(32)}
    normalize(ok, None, Source("web", "observed"), NOW, limits)
    bad = {"type": "track", "userId": "u", "event": "E", field: nested(33)}
    with pytest.raises(ItemError) as e:
        normalize(bad, None, Source("web", "observed"), NOW, limits)
    assert e.value.field == field and "32" in e.value.reason


@pytest.fixture
def api(tmp_path: Path, clock) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str], dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, w = storage.keys.create("write", "website", None, "customer_provided", now=clock())
    _, a = storage.keys.create("admin", "admin", None, None, now=clock())
    write = {"Authorization": "Basic " + base64.b64encode(f"{w.reveal()}:".encode()).decode(),
             "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {a.reveal()}", "Content-Type": "application/json"}
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        yield client, storage, write, admin
    storage.close()


@pytest.mark.parametrize("depth", [40, 197, 253, 300, 1000])
def test_deep_properties_are_a_400_naming_the_item(api, depth: int) -> None:
    client, storage, write, _ = api
    item = {"type": "track", "userId": "u", "event": "E", "properties": nested(depth)}
    r = client.post("/v1/track", headers=write, content=dumps(item))
    assert r.status_code == 400, r.text
    r = client.post("/v1/batch", headers=write,
                    content=dumps({"batch": [{"type": "track", "userId": "u", "event": "ok"}, item]}))
    assert r.status_code == 400, r.text
    if depth + 3 <= MAX_BODY_DEPTH:  # a body nested deeper than any stored one is refused whole
        assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(1, "properties")]
    assert storage.log.count() == 0


def test_a_deep_top_level_batch_context_is_refused(api) -> None:
    client, storage, write, _ = api
    r = client.post("/v1/batch", headers=write, content=dumps(
        {"context": nested(300), "batch": [{"type": "track", "userId": "u", "event": "E"}]}))
    assert r.status_code == 400, r.text
    assert storage.log.count() == 0


@pytest.mark.parametrize("path,body", [
    ("/v1/consent", {"profile": "p1", "channel": "email", "purpose": "marketing", "status": "granted",
                     "evidence": nested(300)}),
    ("/v1/segments", {"name": "deep", "definition": "country = 'DE'", "description": nested(300)}),
    ("/v1/decide", {"profile": nested(300), "intent": "marketing", "channels": ["email"]}),
])
def test_other_json_bodies_nested_too_deep_are_a_400(api, path: str, body: dict[str, Any]) -> None:
    client, _, _, admin = api
    r = client.post(path, headers=admin, content=dumps(body))
    assert r.status_code == 400, r.text
    assert "nest" in r.json()["message"]


def dumps(v: Any) -> bytes:
    """JSON for values deeper than orjson writes (the attacker's client is not orjson)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return json.dumps(v).encode()
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("extra", [0, 1, 2])
@pytest.mark.parametrize("where", ["item", "batch context"])
def test_batch_items_at_the_depth_limit_pass_and_one_deeper_is_refused(where: str, extra: int) -> None:
    """The batch is walked once for its depth, not once per item: an item (or the batch's shared context,
    merged into every item) exactly at the limit passes, one level deeper is refused naming the item or the
    batch, whatever else the batch holds."""
    from takt.errors import TaktError
    from takt.ingest.segment import events_from_body

    limits = Limits(max_depth=8)
    src = Source("web", "observed")
    plain = {"type": "track", "userId": "u", "event": "E"}

    def body(depth: int) -> dict[str, Any]:
        if where == "item":
            return {"batch": [plain, {**plain, "properties": {"x": nested(depth - 1 + extra)}}]}
        return {"context": {"x": nested(depth - 1 + extra)}, "batch": [plain, plain]}

    if extra == 0:
        assert len(events_from_body(body(8), "batch", src, NOW, limits)) == 2
    with pytest.raises(TaktError) as e:
        events_from_body(body(9), "batch", src, NOW, limits)
    assert e.value.status == 400
    if where == "item":
        assert e.value.errors == [{"index": 1, "field": "properties", "reason": e.value.errors[0]["reason"]}]
        assert "8 levels" in e.value.errors[0]["reason"]
