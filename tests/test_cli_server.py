"""Every command that makes sense over HTTP works while ``takt serve`` holds the DuckDB workspace (issue 12.7):
the CLI finds the server in the workspace (serve.json) and goes through its API with an admin key (given, from
the environment, or the demo's key file)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from takt.cli.main import main
from tests.support.server import TaktServer, basic_auth, make_workspace

EMAIL = "ann.lindqvist@example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TaktServer, dict[str, str]]]:
    ws = make_workspace(tmp_path_factory.mktemp("served") / "ws")
    with TaktServer(ws) as server:
        batch = [{"type": "identify", "userId": "ann", "messageId": "m1", "timestamp": "2026-11-01T10:00:00Z",
                  "traits": {"email": EMAIL, "name": "Ann Lindqvist"}},
                 {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "m2",
                  "timestamp": "2026-11-02T10:00:00Z", "properties": {"total": 40}},
                 {"type": "identify", "userId": "bob", "messageId": "m3", "timestamp": "2026-11-03T10:00:00Z",
                  "traits": {"email": "bob@example.org", "name": "Bob Berg"}}]
        status, _ = server.post("/v1/batch", json.dumps({"batch": batch}).encode(), basic_auth(ws.write_key))
        assert status == 200
        yield server, {"TAKT_ADMIN_KEY": ws.admin_key}


def run(served: Any, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    server, keys = served
    r = CliRunner().invoke(main, [*args, "-w", str(server.workspace.path)],
                           env={"TAKT_KEY": "", "TAKT_ADMIN_KEY": "", **(keys if env is None else env)},
                           catch_exceptions=False)
    return r.exit_code, r.output


def ok(served: Any, *args: str) -> str:
    code, out = run(served, *args)
    assert code == 0, f"takt {' '.join(args)} exited {code}: {out}"
    return out


def test_the_server_records_itself_owner_only(served: Any) -> None:
    server, _ = served
    record = server.workspace.path / "serve.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text()) == {"pid": server.pid, "url": server.url}


def test_events_count_agrees_with_the_api(served: Any) -> None:
    assert ok(served, "events", "count").strip() == "3"
    body = json.loads(ok(served, "events", "count", "--json"))
    assert body["count"] == 3 and body["sent"] == 3 and body["derived"] == 0


def test_profiles_show_search_timeline(served: Any) -> None:
    summary = ok(served, "profiles", "show", f"email:{EMAIL}")
    assert "Ann Lindqvist" in summary and "customer_provided" in summary
    body = json.loads(ok(served, "profiles", "show", f"email:{EMAIL}", "--json"))
    assert f"email:{EMAIL}" in body["identifiers"] and "segments" in body
    assert json.loads(ok(served, "profiles", "show", body["id"], "--json"))["id"] == body["id"]  # ids go back in
    found = json.loads(ok(served, "profiles", "search", "lindq", "--json"))
    assert [p["id"] for p in found["profiles"]] == [body["id"]]
    assert body["id"] in ok(served, "profiles", "search", "lindq")  # the whole id, in the table
    page = json.loads(ok(served, "profiles", "timeline", f"email:{EMAIL}", "--json"))
    assert [e["messageId"] for e in page["events"]] == ["m2", "m1"]


def test_segments_over_http(served: Any) -> None:
    assert "created" in ok(served, "segment", "create", "buyers", 'count(track "Order Completed") >= 1',
                           "--allow-unknown-names")
    assert "buyers" in ok(served, "segment", "list")
    assert "1 profiles match" in ok(served, "segment", "count", "buyers")
    assert "1 profiles match" in ok(served, "segment", "count", 'count(track "Order Completed") >= 1')  # inline
    pid = json.loads(ok(served, "profiles", "show", f"email:{EMAIL}", "--json"))["id"]
    assert ok(served, "segment", "members", "buyers").split() == [pid]
    explained = ok(served, "segment", "explain", "buyers")
    assert explained.startswith("buyers v1: ") and "-- duckdb" in explained
    assert "updated" in ok(served, "segment", "update", "buyers", 'count(track "Order Completed") >= 2',
                           "--allow-unknown-names")
    assert len(ok(served, "segment", "history", "buyers", "--json").splitlines()) == 2
    assert "deleted" in ok(served, "segment", "delete", "buyers")


def test_privacy_audit_policy_offers_over_http(served: Any, tmp_path: Path) -> None:
    doc = json.loads(ok(served, "privacy", "export", f"email:{EMAIL}"))
    assert doc["profile"]["id"] == doc["profile_id"]
    entries = [json.loads(x) for x in ok(served, "audit", "--json").splitlines()]
    assert any(e["action"] == "privacy.export" for e in entries)
    assert "suppressed email" in ok(served, "policy", "suppression", "add", "email", "gone@example.com")
    assert ": suppressed" in ok(served, "policy", "suppression", "check", "email", "gone@example.com")
    assert len(ok(served, "policy", "suppression", "list", "--json").splitlines()) >= 1
    assert "no offers" in ok(served, "offers", "list")
    assert json.loads(ok(served, "models", "list", "--json")) == []


def test_erase_over_http(served: Any) -> None:
    out = ok(served, "privacy", "erase", "email:bob@example.org", "--yes")
    assert "erased profile" in out
    assert "no profile matches" in ok(served, "profiles", "search", "bob@example.org")


def test_commands_without_an_endpoint_say_what_to_do(served: Any) -> None:
    code, out = run(served, "rebuild")
    assert code == 2 and "stop the server" in out.lower() and "Traceback" not in out


def test_the_demo_key_file_is_found_and_a_missing_key_is_explained(served: Any) -> None:
    server, keys = served
    demo_keys = server.workspace.path / "demo-keys.json"
    code, out = run(served, "events", "count", env={})
    assert code == 2 and "TAKT_ADMIN_KEY" in out
    demo_keys.write_text(json.dumps({"admin": keys["TAKT_ADMIN_KEY"]}))
    os.chmod(demo_keys, 0o600)
    try:
        code, out = run(served, "events", "count", env={})
        assert code == 0 and int(out) >= 3
    finally:
        demo_keys.unlink()


def test_a_stale_record_is_ignored(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    (ws.path / "serve.json").write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9"}))
    r = CliRunner().invoke(main, ["events", "count", "-w", str(ws.path)], catch_exceptions=False)
    assert (r.exit_code, r.output) == (0, "0\n")


def test_offers_load_list_show_delete_over_http(served: Any, tmp_path: Path) -> None:
    f = tmp_path / "offers.yaml"
    f.write_text("offers:\n  - {id: krabi, title: Krabi, interests: [destination:krabi], value: 900}\n"
                 "  - {id: nyc, title: New York, interests: [destination:new-york], value: 700}\n", encoding="utf-8")
    assert "2 new, 0 changed" in ok(served, "offers", "load", str(f))
    f.write_text("offers:\n  - {id: krabi, title: Krabi, interests: [destination:krabi], value: 950}\n",
                 encoding="utf-8")
    out = ok(served, "offers", "load", str(f), "--replace")
    assert "0 new, 1 changed" in out and "retired 1: nyc" in out
    listed = json.loads(ok(served, "offers", "list", "--json"))
    assert [(o["id"], o["version"], o["value"]) for o in listed] == [("krabi", 2, 950.0)]
    assert "krabi" in ok(served, "offers", "list")
    shown = json.loads(ok(served, "offers", "show", "krabi"))
    assert shown["id"] == "krabi" and sorted(v["version"] for v in shown["versions"]) == [1, 2]
    assert "retired krabi" in ok(served, "offers", "delete", "krabi")
