"""``takt policy``: the suppression list and the contactability table from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from takt import workspace as ws_mod
from takt.cli.main import main
from takt.events.model import Event

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def stdout(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def _append(ws: str, events: list[Event]) -> None:
    with ws_mod.open_workspace(ws).open_storage() as storage:
        storage.log.append(events)


def _ev(i: int, kind: str, props: dict[str, object] | None = None, **fields: object) -> Event:
    return Event(kind=kind, message_id=f"m{i}", source="web", timestamp=T0, received_at=T0,
                 provenance="customer_provided", user_id="ann", properties=props or {}, **fields)  # type: ignore[arg-type]


def test_suppression_commands(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    assert run("init", ws)[0] == 0
    _append(ws, [_ev(1, "message", {"message_id": "x", "status": "complained", "channel": "email",
                                    "contact_point": "Ann@Example.com", "intent": "marketing"})])
    code, out = run("policy", "suppression", "sync", "-w", ws)
    assert code == 0 and "1 new entries; 1 on the list" in out
    code, out = run("policy", "suppression", "check", "-w", ws, "email", "ann@example.com")
    assert code == 0 and "email ann@example.com: suppressed (marketing only)" in out and "complaint" in out
    code, out = run("policy", "suppression", "add", "-w", ws, "phone", "+49 30 1234567")
    assert code == 0 and out.startswith("suppressed phone (admin, every purpose): ")
    out = stdout("policy", "suppression", "list", "-w", ws, "--json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert sorted((r["reason"], r["scope"]) for r in rows) == [("admin", "all"), ("complaint", "marketing")]
    table = stdout("policy", "suppression", "list", "-w", ws)
    assert "marketing only" in table and "every purpose" in table
    assert "ann" not in out.lower() and "1234567" not in out
    code, out = run("policy", "suppression", "check", "-w", ws, "email", "bob@example.com")
    assert code == 0 and "not suppressed" in out
    code, out = run("policy", "suppression", "add", "-w", ws, "email", "  ")
    assert code == 2 and "non-empty" in out and "Traceback" not in out


def test_contactability_refresh_and_segment_language(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    run("init", ws)
    _append(ws, [_ev(1, "identify", traits={"email": "ann@example.com"}),
                 _ev(2, "consent", {"purpose": "marketing", "channel": "email", "status": "granted",
                                    "actor": "customer", "evidence": {"method": "double_opt_in"}})])
    code, out = run("policy", "contactability", "-w", ws)
    assert code == 0 and "1 profiles" in out
    from takt.policy.segment_functions import table_of

    with ws_mod.open_workspace(ws).open_storage() as storage:
        pairs = {(ch, pu) for _, ch, pu in table_of(storage).rows()}
    assert ("email", "marketing") in pairs and ("sms", "marketing") not in pairs
    # the CLI knows the function (the plugin registers it)
    code, out = run("segment", "explain", 'contactable("email", "marketing")')
    assert code == 0 and "can be contacted by email for marketing" in out
