"""``takt profiles show|search|timeline`` on the workspace itself: a summary by default, the API's document with
--json (segments included), search audited under the CLI's actor, the timeline in event time order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from takt.cli.main import main
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def _ws(tmp_path: Path) -> str:
    ws = str(tmp_path / "ws")
    assert run("init", ws)[0] == 0
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    s.log.append([
        ev(0, kind="identify", user_id="u1", traits={"email": "ann@example.com", "name": "Ann Lindqvist",
                                                     "country": "SE"}, provenance="customer_provided"),
        ev(1, user_id="u1", at=datetime(2026, 11, 20, tzinfo=UTC)),
        ev(2, user_id="u1", at=datetime(2025, 1, 1, tzinfo=UTC)),  # later in the log, older in time
        ev(3, kind="identify", user_id="u2", traits={"email": "bob@example.org", "name": "Bob Berg"}),
    ])
    s.close()
    return ws


def test_show_is_a_summary_and_json_is_the_api_document(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    assert run("segment", "create", "-w", ws, "swedes", 'trait.country = "SE"')[0] == 0
    code, out = run("profiles", "show", "-w", ws, "email:ann@example.com")
    assert code == 0 and "Ann Lindqvist" in out and "customer_provided" in out and "swedes v1" in out
    assert not out.lstrip().startswith("{")
    code, out = run("profiles", "show", "-w", ws, "email:ann@example.com", "--json")
    body = json.loads(out)
    assert body["segments"] == [{"name": "swedes", "version": 1}]
    assert json.loads(run("profiles", "show", "-w", ws, body["id"], "--json")[1])["id"] == body["id"]


def test_search_is_audited_and_the_timeline_is_in_time_order(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    code, out = run("profiles", "search", "-w", ws, "LINDQ", "--json")
    found = json.loads(out)["profiles"]
    assert code == 0 and [p["name"] for p in found] == ["Ann Lindqvist"]
    code, out = run("profiles", "search", "-w", ws, "lindq")
    assert found[0]["id"] in out.split()  # whole, in the table
    audit = [json.loads(x) for x in run("audit", "-w", ws, "--json", "--action", "profile.search")[1].splitlines()]
    assert [a["subject"] for a in audit] == [found[0]["id"], found[0]["id"]]
    assert all(a["key_id"].startswith("cli:") for a in audit)
    code, out = run("profiles", "timeline", "-w", ws, "email:ann@example.com", "--json")
    events = json.loads(out)["events"]
    assert [e["messageId"] for e in events] == ["m-1", "m-0", "m-2"]
    code, out = run("profiles", "timeline", "-w", ws, "email:ann@example.com", "--limit", "1", "--json")
    cursor = json.loads(out)["next_before"]
    code, out = run("profiles", "timeline", "-w", ws, "email:ann@example.com", "--before", cursor, "--json")
    assert [e["messageId"] for e in json.loads(out)["events"]] == ["m-0", "m-2"]


def test_the_summary_shows_consent_from_the_folded_policy_facts(tmp_path: Path, monkeypatch: Any) -> None:
    """The local summary's consent comes from the policy facts the fold kept (no event read) and equals what
    reading the person's events gives."""
    from tests.policy.builders import consent

    ws = _ws(tmp_path)
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    s.log.append([consent("granted", "email", "ann@example.com", at=datetime(2026, 11, 1, tzinfo=UTC)),
                  consent("withdrawn", "sms", at=datetime(2026, 11, 2, tzinfo=UTC))])
    s.close()
    code, out = run("profiles", "show", "-w", ws, "email:ann@example.com")
    assert code == 0 and "consent" in out and "granted" in out and "withdrawn" in out, out
    from takt.policy import folded

    monkeypatch.setattr(folded, "exact", lambda state: False)  # the events' way
    assert run("profiles", "show", "-w", ws, "email:ann@example.com") == (code, out)
