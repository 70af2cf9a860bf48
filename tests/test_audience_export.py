"""Audience exports carry what activation needs (issue 12.10): fields per member, the contact policy's decision
and the next-best offer, in bulk, audited; the CLI and the API agree."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.clock import FixedClock
from takt.models.offers.catalog import validate_catalog
from takt.models.offers.store import OfferStore
from takt.policy import Intent, PolicySettings, decide
from takt.policy.from_profile import person_from_profile
from takt.policy.suppression_store import suppression_entries, suppression_key
from takt.privacy.audit import audit_log
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.workspace import open_workspace
from tests.policy.builders import consent
from tests.test_cli_segments import NOW, ws  # noqa: F401  (the workspace fixture)
from tests.test_segment_workspace import people

NOON = NOW + timedelta(hours=12)  # outside quiet hours
AT = ["--at", NOON.isoformat()]
SEGMENT = 'trait.country in ["DE", "NL"]'


def members(ws: Path, *args: str) -> tuple[int, str]:  # noqa: F811
    r = CliRunner().invoke(main, ["segment", "members", "-w", str(ws), SEGMENT, *AT, *args])
    return r.exit_code, r.output


def _rows(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _audited(ws: Path) -> list[str]:  # noqa: F811
    with open_workspace(ws).open_storage() as s:
        return sorted(str(e.subject) for e in audit_log(s).entries(limit=10_000, action="segment.export"))


def _expected_fields() -> dict[str, dict[str, object]]:
    """user id → the fields, from the events themselves."""
    out: dict[str, dict[str, object]] = {}
    for e in people():
        if e.kind == "identify" and e.traits.get("country") in ("DE", "NL"):
            out[str(e.user_id)] = {"email": e.traits.get("email"), "country": e.traits["country"]}
    return out


def test_fields_are_exported_and_audited(ws: Path) -> None:  # noqa: F811
    code, out = members(ws)
    assert code == 0 and _audited(ws) == []  # profile ids alone are not personal data
    ids = out.split()
    code, out = members(ws, "--fields", "email,country", "--format", "jsonl")
    assert code == 0, out
    rows = _rows(out)
    assert [r["profile_id"] for r in rows] == ids
    expected = _expected_fields()
    assert sorted((str(r["email"]), r["country"]) for r in rows) == sorted(
        (str(v["email"]), v["country"]) for v in expected.values())  # type: ignore[arg-type]
    assert _audited(ws) == sorted(ids)  # one entry per member exported
    code, out = members(ws, "--fields", "emial")
    assert code != 0 and "unknown field 'emial'" in out and "did you mean 'email'" in out, out
    code, out = members(ws, "--fields", "email", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "profile_id,email" and len(out.splitlines()) == len(ids) + 1


def test_decide_and_offer_in_bulk_agree_with_one_person_at_a_time(ws: Path) -> None:  # noqa: F811
    with open_workspace(ws).open_storage() as s:
        granted = dataclasses.replace(consent("granted", "email", at=NOW - timedelta(days=1)), user_id="u3")
        s.log.append([granted])
        OfferStore(s).put(validate_catalog([
            {"id": "nyc", "title": "New York", "interests": ["destination:new-york"], "value": 700,
             "channels": ["email"]},
            {"id": "socks", "title": "Hiking socks", "value": 20, "channels": ["email"]}]), NOW)
    code, out = members(ws, "--decide", "marketing", "--channels", "email,sms", "--offer", "--fields", "email",
                        "--format", "jsonl")
    assert code == 0, out
    rows = {str(r["profile_id"]): r for r in _rows(out)}
    assert rows
    with open_workspace(ws).open_storage() as s:
        runner = ProfileRunner(s, ProfileConfig(), FixedClock(NOON))
        runner.catch_up()
        settings = PolicySettings.from_settings(open_workspace(ws).settings, suppression_key(s))
        for pid, row in rows.items():
            state = runner.projector.profile(pid)
            assert state is not None
            facts = person_from_profile(state, s.log.get(sorted(set(state.positions))), runner.config.identity,
                                        lambda pts: suppression_entries(s, pts))
            d = decide(facts.person, Intent("marketing"), ["email", "sms"], NOON, settings)
            assert (row["allowed"], row["channel"], row["contact_point"], row["reasons"]) == (
                d.allowed, d.channel, d.contact_point, [r.code for r in d.reasons]), pid
            # an offer only where a message may go
            assert (row["offer_id"] is not None) == d.allowed, row
    allowed = [r for r in rows.values() if r["allowed"]]
    assert [r["email"] for r in allowed] == ["u3@example.com"]
    assert allowed[0]["contact_point"] == "u3@example.com" and allowed[0]["offer_id"] in ("nyc", "socks")
    # usage errors are named before any work
    code, out = members(ws, "--decide", "marketing")
    assert code != 0 and "channels" in out
    code, out = members(ws, "--offer")
    assert code != 0 and "decide" in out


@pytest.mark.parametrize("fmt", ["parquet"])
def test_parquet_export_has_the_columns(ws: Path, tmp_path: Path, fmt: str) -> None:  # noqa: F811
    import pyarrow.parquet as pq

    out_file = tmp_path / "a.parquet"
    code, out = members(ws, "--fields", "email", "--decide", "marketing", "--channels", "email", "--format", fmt,
                        "-o", str(out_file))
    assert code == 0, out
    table = pq.read_table(out_file)
    assert table.column_names == ["profile_id", "email", "allowed", "channel", "contact_point", "reasons"]


def test_the_api_exports_the_same_rows_audited_under_the_key(storage) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from takt.api.app import create_app
    from takt.settings import load

    storage.log.append(people())
    reader, r = storage.keys.create("read", "reader", now=NOW)
    _, a = storage.keys.create("admin", "ops", now=NOW)
    app = create_app(storage, load(None, env={}), FixedClock(NOON))
    with TestClient(app) as client:
        read = {"Authorization": f"Bearer {r.reveal()}"}
        assert client.post("/v1/segments", json={"name": "dn", "definition": SEGMENT},
                           headers={"Authorization": f"Bearer {a.reveal()}"}).status_code == 201
        params = {"fields": "email,country", "decide": "marketing", "channels": "email", "limit": "2"}
        page = client.get("/v1/segments/dn/members", params=params, headers=read)
        assert page.status_code == 200, page.text
        body = page.json()
        assert [row["profile_id"] for row in body["rows"]] == body["members"] and len(body["members"]) == 2
        assert {"email", "country", "allowed", "channel", "contact_point", "reasons"} <= set(body["rows"][0])
        assert "fields=email" in body["next"] and "decide=marketing" in body["next"]
        audited = audit_log(storage).entries(limit=100, action="segment.export")
        assert sorted(str(e.subject) for e in audited) == sorted(body["members"])
        assert {e.key_id for e in audited} == {reader.id}
        csv_text = client.get("/v1/segments/dn/members", params={"fields": "email", "format": "csv"},
                              headers=read).text
        assert csv_text.splitlines()[0] == "profile_id,email"
        bad = client.get("/v1/segments/dn/members", params={"fields": "emial"}, headers=read)
        assert bad.status_code == 400 and "did you mean 'email'" in bad.text
        bad = client.get("/v1/segments/dn/members", params={"decide": "marketing"}, headers=read)
        assert bad.status_code == 400 and "channels" in bad.text


def test_decisions_come_from_the_folded_policy_facts_without_reading_events(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """An export with decisions reads no event for states that hold their policy facts, and gives what reading
    every event gives."""
    from takt.campaigns import audience
    from takt.policy import folded

    with open_workspace(ws).open_storage() as s:
        granted = dataclasses.replace(consent("granted", "email", at=NOW - timedelta(days=1)), user_id="u3")
        s.log.append([granted])
        runner = ProfileRunner(s, ProfileConfig(), FixedClock(NOON))
        runner.catch_up()
        request = audience.audience_request(("email",), "marketing", ("email", "sms"))
        ctx = audience.workspace_context(s, runner, open_workspace(ws).settings, request)
        ids = runner.profile_ids()
        reads: list[int] = []
        get = s.log.get

        def counting_get(positions: list[int]) -> object:
            reads.append(len(positions))
            return get(positions)

        with monkeypatch.context() as m:
            m.setattr(s.log, "get", counting_get)
            fast = list(audience.rows(ctx, ids, request, NOON))
        assert reads == [], "no event read"
        with monkeypatch.context() as m:
            m.setattr(folded, "exact", lambda state: False)
            full = list(audience.rows(ctx, ids, request, NOON))
        assert fast == full and any(r["allowed"] for r in fast) and not all(r["allowed"] for r in fast)
