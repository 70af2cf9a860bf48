"""An erasure is audited before it starts and after it ends, and a failure in its middle leaves a state from
which a retry completes it: never a half-erased person reported as not found."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.errors import TaktError
from takt.privacy import rights
from takt.privacy.audit import audit_log
from takt.privacy.rights import erase_person
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.base import Storage
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EMAIL = "ann.retry@example.com"


class Boom(RuntimeError):
    pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Storage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("admin", None)):
        _, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app, raise_server_exceptions=False) as client:
        basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
        for body in ({"type": "identify", "userId": "ann", "traits": {"email": EMAIL, "name": "Ann Retry"}},
                     {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"total": 12}},
                     {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}}):
            assert client.post("/v1/batch", json={"batch": [body]}, headers=basic).status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        client.app.state.ctx.extras["profiles"].save()  # type: ignore[attr-defined]  # rows (and their keys) stored
        yield client, storage, {"Authorization": f"Bearer {keys['admin']}"}
    storage.close()


def _trail(storage: Storage) -> list[tuple[str | None, str]]:
    """The erasure's audit rows, oldest first."""
    return [(e.subject, e.outcome) for e in reversed(audit_log(storage).entries(100, action="privacy.erase"))]


def _fail_once(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(target, name)

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Boom("injected")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)
    return calls


def test_an_erasure_is_audited_before_it_starts_and_after_it_ends(api: Any) -> None:
    client, storage, admin = api
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    r = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert r.status_code == 200 and r.json()["erased"] is True
    assert _trail(storage) == [(pid, "requested"), (pid, "erased")]
    r = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert r.json()["erased"] is False
    assert _trail(storage)[2:] == [(None, "requested"), (None, "not_found")]


def test_the_request_is_in_the_audit_log_even_when_the_erasure_then_fails(api: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client, storage, admin = api
    seen: list[list[tuple[str | None, str]]] = []
    original = rights._suppress_contacts

    def spy(*args: Any) -> int:
        seen.append(_trail(storage))  # what the audit log held when the erasure began its work
        raise Boom("injected")

    monkeypatch.setattr(rights, "_suppress_contacts", spy)
    r = client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"}, headers=admin)
    assert r.status_code == 503 and r.json()["code"] == "erasure_incomplete", r.text
    assert r.headers["Retry-After"]
    pid = seen[0][0][0]
    assert seen == [[(pid, "requested")]]
    assert _trail(storage) == [(pid, "requested"), (pid, "failed: Boom")]
    monkeypatch.setattr(rights, "_suppress_contacts", original)
    assert client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"}, headers=admin).json()["erased"]


# every step of the erasure, failing once; the retry must finish it and say what it erased
STEPS = [(rights, "_suppress_contacts"), (DuckDBStorage, "erase"), (ProfileRunner, "rebuild"),
         (rights, "_refresh_tables"), (rights, "_checkpoint")]


@pytest.mark.parametrize("target,name", STEPS, ids=[n for _, n in STEPS])
def test_a_failure_in_the_middle_is_completed_by_a_retry(api: Any, monkeypatch: pytest.MonkeyPatch, target: Any,
                                                         name: str) -> None:
    client, storage, admin = api
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    if name == "erase":
        _fail_once(monkeypatch, type(storage.log), "erase")
    else:
        _fail_once(monkeypatch, target, name)
    r = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert r.status_code == 503 and r.json()["code"] == "erasure_incomplete", r.text
    again = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["erased"] is True and body["profile_id"] == pid, body  # never "not found" for a half-erased one
    assert body["events"] == 2 and body["keys"] == 2 and body["suppressed"] == 1
    assert client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).status_code == 404
    assert client.get("/v1/profiles", params={"identifier": "user_id:bob"}, headers=admin).status_code == 200
    for se in storage.log.read():
        assert EMAIL not in str(se.event) and "Ann Retry" not in str(se.event)
    assert _trail(storage) == [(pid, "requested"), (pid, "failed: Boom"), (pid, "requested"), (pid, "erased")]
    # and the next one is an ordinary "nothing to erase"
    assert client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin).json()[
        "erased"] is False


def test_a_retry_after_a_crash_completes_the_erasure_in_a_new_process(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from takt.events.model import Event

    path = tmp_path / "w.duckdb"
    storage = DuckDBStorage(path)
    storage.log.append([Event(kind="identify", message_id=f"m-{u}", source="crm", timestamp=NOW, received_at=NOW,
                              provenance="customer_provided", user_id=u, traits={"email": f"{u}@example.com"})
                        for u in ("ann", "bob")])
    config = ProfileConfig.from_settings(load(None, env={}))
    runner = ProfileRunner(storage, config, FixedClock(NOW))
    runner.load()
    runner.catch_up()
    runner.save()
    pid = runner.find("user_id:ann")
    _fail_once(monkeypatch, rights, "_refresh_tables")  # after the keys are gone and profiles rebuilt
    with pytest.raises(TaktError, match="erasure did not complete"):
        erase_person(storage, runner, "user_id:ann", NOW, "cli:test")
    storage.close()  # the process dies
    storage = DuckDBStorage(path)
    runner = ProfileRunner(storage, config, FixedClock(NOW))
    runner.load()
    result = erase_person(storage, runner, "user_id:ann", NOW, "cli:test")
    assert result["erased"] is True and result["profile_id"] == pid and result["events"] == 1
    assert _trail(storage) == [(pid, "requested"), (pid, "failed: Boom"), (pid, "requested"), (pid, "erased")]
    storage.close()


def test_progress_is_reported(api: Any) -> None:
    _, storage, _ = api
    runner = ProfileRunner(storage, ProfileConfig.from_settings(load(None, env={})), FixedClock(NOW))
    runner.load()
    steps: list[str] = []
    erase_person(storage, runner, "user_id:ann", NOW, "cli:test", progress=steps.append)
    assert len(steps) >= 4 and any("rebuil" in s for s in steps), steps


@pytest.fixture(params=["duckdb", "postgres"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from takt import workspace as ws_mod

    monkeypatch.setenv("TAKT_KEY_DIR", str(tmp_path / "keys"))
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return ws_mod.init(tmp_path / "ws", database_url=url)


@pytest.mark.parametrize("target,name", [(ProfileRunner, "rebuild"), (rights, "_checkpoint")],
                         ids=["rebuild", "vacuum"])
def test_an_interrupted_erasure_is_finished_by_the_next_process_on_both_backends(
        workspace: Any, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    from takt.events.model import Event

    config = ProfileConfig.from_settings(workspace.settings)
    with workspace.open_storage() as storage:
        storage.log.append([Event(kind="identify", message_id=f"m-{u}", source="crm", timestamp=NOW,
                                  received_at=NOW, provenance="customer_provided", user_id=u,
                                  traits={"email": f"{u}@example.com"}) for u in ("ann", "bob")])
        runner = ProfileRunner(storage, config, FixedClock(NOW))
        runner.load()
        runner.catch_up()
        runner.save()
        pid = runner.find("email:ann@example.com")
        calls = _fail_once(monkeypatch, target, name)
        with pytest.raises(TaktError, match="erasure did not complete"):
            erase_person(storage, runner, "email:ann@example.com", NOW, "cli:test")
        assert calls
    with workspace.open_storage() as storage:  # a new process
        runner = ProfileRunner(storage, config, FixedClock(NOW))
        runner.load()
        result = erase_person(storage, runner, "email:ann@example.com", NOW, "cli:test")
        assert result["erased"] is True and result["profile_id"] == pid and result["keys"] == 2
        assert runner.find("user_id:bob")
        with pytest.raises(TaktError):
            runner.find("user_id:ann")
        assert _trail(storage) == [(pid, "requested"), (pid, "failed: Boom"), (pid, "requested"), (pid, "erased")]
        assert erase_person(storage, runner, "email:ann@example.com", NOW, "cli:test")["erased"] is False


def test_a_crash_between_destroying_the_keys_and_writing_the_counts_down_is_still_erased(
        api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, storage, admin = api
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    original = rights._save_pending
    calls: list[int] = []

    def second_fails(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # the write after the keys are gone
            raise Boom("injected")
        original(*args)

    monkeypatch.setattr(rights, "_save_pending", second_fails)
    assert client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"}, headers=admin).status_code == 503
    body = client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"}, headers=admin).json()
    assert body["erased"] is True and body["profile_id"] == pid
    assert client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).status_code == 404
