"""`takt models` on a small demo workspace: train --all trains, rejects, registers; scores work in segments."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.cli.main import main
from takt.clock import FixedClock
from takt.demo.feed import build_demo
from takt.demo.generator import DemoConfig
from takt.events.model import Event
from takt.models import scoring
from takt.models.factory import workspace_connection
from takt.profiles.sections import add_sections
from takt.segments import evaluate, parse, to_sql
from takt.segments.view import ProfileView
from takt.settings import Settings, load
from takt.storage.duckdb import DuckDBStorage

END = datetime(2026, 11, 1, tzinfo=UTC)
AT = "2026-11-01T00:00:00Z"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def coin_flips(storage: DuckDBStorage) -> list[Event]:
    """A target that is pure noise: every profile flips a coin now and then (through one of its identifiers),
    whatever it does."""
    con = workspace_connection(storage, Settings(), FixedClock(END))
    first = con.execute("SELECT profile_id, min(position) FROM profile_event_map GROUP BY profile_id "
                        "ORDER BY profile_id").fetchall()
    rng = random.Random(42)
    out = []
    for se in storage.log.get([int(pos) for _, pos in first]):
        who = {"user_id": se.event.user_id} if se.event.user_id else {"anonymous_id": se.event.anonymous_id}
        if not any(who.values()):
            continue
        for k in range(rng.choice((0, 0, 0, 1, 1, 2))):
            at = END - timedelta(days=rng.uniform(0, 120))
            out.append(Event(kind="track", message_id=f"coin-{se.position}-{k}", source="website", timestamp=at,
                             received_at=at, event="Coin Flipped", properties={"side": rng.choice("ht")}, **who))
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("models") / "ws"
    build_demo(path, DemoConfig(end=END, customers=400, days=365, seed=3), clock=FixedClock(END),
               transport="testclient")
    s = DuckDBStorage(path / "takt.duckdb")
    s.log.append(coin_flips(s))
    s.close()
    with (path / "takt.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[models]\nmin_positives = 8\ntargets = [{name = "coin_flip_30d", event = "Coin Flipped"}]\n')
    yield path


def test_train_all_list_score_and_segment(workspace: Path) -> None:
    ws = str(workspace)
    code, out = run("models", "train", "--all", "--at", AT, "-w", ws, "-q")
    assert code == 0, out
    assert "accepted" in out and "rejected" in out and "AUC" in out
    code, out = run("models", "list", "--json", "-w", ws)
    assert code == 0
    board = {m["model"]: m for m in json.loads(out)}
    assert board["coin_flip_30d"]["status"] == "rejected"  # noise never beats its baseline
    accepted = [m for m in board.values() if m["status"] == "accepted"]
    assert accepted, board
    for m in accepted:
        assert m["metrics"]["auc"] >= m["baseline"]["auc"] + 0.01 and m["version"] == 1
        assert m["fingerprint"] and m["train_cutoff"] == "2026-09-02T00:00:00Z"
        assert m["valid_cutoff"] == "2026-10-02T00:00:00Z"
    assert all(m["reason"] for m in board.values() if m["status"] == "rejected")
    code, text = run("models", "list", "-w", ws)
    assert code == 0 and "coin_flip_30d" in text and "accepted" in text.splitlines()[2]  # accepted rows first

    code, out = run("models", "score", "--at", AT, "-w", ws, "-q")
    assert code == 0 and "profiles scored" in out
    model = "churn_30d" if board.get("churn_30d", {}).get("status") == "accepted" else accepted[0]["model"]

    storage = DuckDBStorage(workspace / "takt.duckdb")
    try:
        node = parse(f'score("{model}") > 0.5')
        sql = to_sql(node, now=END, pretty=False)
        sql_members = {r[0] for r in storage.con.execute(sql).fetchall()}
        ids = [r[0] for r in storage.con.execute("SELECT profile_id FROM profiles").fetchall()]
        scoring.attach(storage)
        try:
            live = {p for p in ids if evaluate(node, ProfileView(profile_id=p), END)}
        finally:
            scoring.attach(None)
        assert sql_members and sql_members == live
        scored = storage.con.execute("SELECT count(*) FROM model_scores WHERE model = ?", [model]).fetchall()
        assert len(sql_members) < scored[0][0]
        pid = next(iter(sql_members))
        prof = add_sections(storage, {"id": pid}, END)
        assert prof["scores"][model]["score"] > 0.5 and prof["scores"][model]["version"] == 1
        _, secret = storage.keys.create("admin", "admin", None, None, now=END)
        with TestClient(create_app(storage, load(workspace), FixedClock(END))) as client:
            r = client.get(f"/v1/profiles/{pid}", headers={"Authorization": f"Bearer {secret.reveal()}"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body.get("profile", body)["scores"][model] == prof["scores"][model]
    finally:
        storage.close()

    code, out = run("segment", "count", f'score("{model}") > 0.5', "--at", AT, "-w", ws)
    assert code == 0 and out.startswith(f"{len(sql_members)} profiles match")

    code, out = run("models", "monitor", "--at", AT, "--json", "-w", ws, "-q")
    assert code == 0
    report = json.loads(out)
    assert {m["model"] for m in report["models"]} == {m["model"] for m in accepted}
    assert all(m["score_psi"] >= 0 for m in report["models"])

    # any shift at all counts as drift: every model is flagged and trained again (a new version)
    result = CliRunner().invoke(main, ["models", "monitor", "--at", AT, "--retrain-drifted", "--json", "-w", ws,
                                       "-q"], env={"TAKT_MODELS__DRIFT_PSI": "1e-9"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert all(m["drifted"] and m["reasons"] for m in report["models"])
    assert sorted(r["model"] for r in report["retrained"]) == sorted(m["model"] for m in accepted)
    assert {r["version"] for r in report["retrained"]} == {2}


def test_selected_targets_and_errors(workspace: Path) -> None:
    ws = str(workspace)
    code, out = run("models", "targets", "--at", AT, "-w", ws)
    assert code == 0 and "churn_30d" in out and "coin_flip_30d" in out and "purchase_30d:category:" in out
    code, out = run("models", "train", "--targets", "churn_3d", "--at", AT, "-w", ws)
    assert code == 2 and "unknown target 'churn_3d'" in out and "churn_30d" in out  # did you mean
    code, out = run("segment", "explain", 'score("churn_30d") > 0.5')
    assert code == 0 and out.startswith("people whose churn_30d score is more than 0.5")
    code, out = run("models", "train", "--targets", "unsubscribe_30d,service_case_30d", "--at", AT,
                    "--json", "-w", ws, "-q")
    assert code == 0
    assert sorted(r["model"] for r in json.loads(out)) == ["service_case_30d", "unsubscribe_30d"]
    code, out = run("models", "train", "--all", "--horizon", "0d", "-w", ws)
    assert code == 2 and "horizon" in out
    code, out = run("models", "train", "--all", "--at", "2023-01-01", "-w", ws, "-q")
    assert code == 2 and "not enough history" in out
