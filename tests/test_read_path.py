"""The profile read path (issue 3): audit entries group-committed and durable before the response, a failed audit
write fails the read (standard error shape, no personal data), concurrent reads all audited; the ``segments``
section's cached definitions follow every change of the store, on DuckDB and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.errors import TaktError
from takt.privacy import audit
from takt.privacy.audit import AuditLog, audit_log
from takt.segments.store import SqlSegmentStore, segment_store
from takt.settings import load
from takt.storage.base import Storage
from tests.test_segment_workspace import NOW, people

AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the audit log's group commit
def _held(log: AuditLog) -> tuple[threading.Event, threading.Event, list[int]]:
    """Make the log's first insert wait until released; returns (entered, release, group sizes)."""
    entered, release, sizes = threading.Event(), threading.Event(), []
    real = log._insert

    def insert(rows: list[tuple[Any, ...]]) -> None:
        sizes.append(len(rows))
        if len(sizes) == 1:
            entered.set()
            assert release.wait(30)
        real(rows)

    log._insert = insert  # type: ignore[method-assign]
    return entered, release, sizes


def _wait_queued(log: AuditLog, n: int) -> None:
    for _ in range(3000):
        with log._cv:
            if len(log._queue) >= n:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{n} entries never queued")


def test_concurrent_entries_share_a_transaction_and_none_is_lost(storage: Storage) -> None:
    log = audit_log(storage)
    entered, release, sizes = _held(log)
    n = 40
    with ThreadPoolExecutor(n) as pool:
        first = pool.submit(log.record, AT, "k-0", "profile.read", "p_0")
        assert entered.wait(30)  # the first caller leads and is inside its insert
        rest = [pool.submit(log.record, AT, f"k-{i}", "profile.read", f"p_{i}") for i in range(1, n)]
        _wait_queued(log, n - 1)  # everyone else queued behind it, none committed yet
        assert not any(f.done() for f in rest)
        release.set()
        for f in [first, *rest]:
            assert f.result(30) is None
    assert sizes == [1, n - 1]  # the 39 waiting entries went in one transaction
    assert log.stats.groups == 2 and log.stats.entries == n and log.stats.max_group == n - 1
    got = log.entries(limit=1000)
    assert sorted(e.subject or "" for e in got) == sorted(f"p_{i}" for i in range(n))
    assert len({e.id for e in got}) == n


def test_a_long_queue_is_split_into_groups_of_at_most_max_group(storage: Storage, monkeypatch: Any) -> None:
    monkeypatch.setattr(audit, "MAX_GROUP", 5)
    log = audit_log(storage)
    entered, release, sizes = _held(log)
    with ThreadPoolExecutor(13) as pool:
        first = pool.submit(log.record, AT, "k", "profile.read", "lead")
        assert entered.wait(30)
        rest = [pool.submit(log.record, AT, "k", "profile.read", f"p_{i}") for i in range(12)]
        _wait_queued(log, 12)
        release.set()
        for f in [first, *rest]:
            assert f.result(30) is None
    assert sizes == [1, 5, 5, 2]
    assert len(log.entries(limit=100)) == 13


def test_a_failed_group_commits_each_entry_alone_so_one_bad_entry_fails_alone(storage: Storage) -> None:
    log = audit_log(storage)
    entered, release, sizes = _held(log)
    real = log._insert

    def insert(rows: list[tuple[Any, ...]]) -> None:
        if any(r[1] == "bad" for r in rows):
            raise RuntimeError("disk on fire")
        real(rows)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(log.record, AT, "k", "profile.read", "lead")
        assert entered.wait(30)
        log._insert = insert  # type: ignore[method-assign]  # (the leader already holds the holding version)
        futures = {key: pool.submit(log.record, AT, key, "profile.read", key) for key in ("a", "bad", "b", "c")}
        _wait_queued(log, 4)
        release.set()
        first.result(30)
        for key in ("a", "b", "c"):
            assert futures[key].result(30) is None
        with pytest.raises(TaktError) as failed:
            futures["bad"].result(30)
    assert failed.value.code == "audit_unavailable" and failed.value.status == 503
    assert "RuntimeError" in failed.value.message and "disk on fire" not in failed.value.message
    assert sorted(e.subject or "" for e in log.entries()) == ["a", "b", "c", "lead"]
    assert log.stats.failed == 1


def test_an_unknown_action_is_refused_before_anything_is_queued(storage: Storage) -> None:
    log = audit_log(storage)
    with pytest.raises(ValueError, match="unknown audit action"):
        log.record(AT, "k", "profile.peek", "p")
    assert log.entries() == [] and log._queue == []


# ---------------------------------------------------------------- over HTTP
class Api:
    def __init__(self, client: TestClient, storage: Storage, admin: str, read: str, read_id: str):
        self.client, self.storage, self.read_id = client, storage, read_id
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.read = {"Authorization": f"Bearer {read}"}

    @property
    def runner(self) -> Any:
        return self.client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]

    def profile(self, ref: str) -> Any:
        r = self.client.get(f"/v1/profiles/{ref}", headers=self.read)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def api(storage: Storage) -> Iterator[Api]:
    storage.log.append(people())
    _, a = storage.keys.create("admin", "ops", now=NOW)
    key, r = storage.keys.create("read", "reader", now=NOW)
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        api = Api(client, storage, a.reveal(), r.reveal(), key.id)
        api.runner.catch_up()
        yield api


def _pid(api: Api, uid: str) -> str:
    r = api.client.get("/v1/profiles", params={"identifier": f"user_id:{uid}"}, headers=api.read)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_concurrent_reads_are_each_audited_before_they_return(api: Api) -> None:
    pids = [_pid(api, f"u{i}") for i in range(12)]
    log = audit_log(api.storage)
    before = len(log.entries(limit=1000))
    seen: list[tuple[str, int]] = []

    def read(pid: str) -> str:
        body = api.profile(pid)
        # durable before the response: the entry is already readable when the body arrives
        entries = log.entries(limit=1000, subject=pid, action="profile.read")
        seen.append((pid, len(entries)))
        return str(body["id"])

    wanted = pids * 5
    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(read, wanted))
    assert got == wanted
    assert all(n >= 1 for _, n in seen)
    entries = log.entries(limit=1000, action="profile.read")
    assert len(log.entries(limit=1000)) - before == len(wanted)
    assert sorted(e.subject or "" for e in entries) == sorted(wanted)
    assert {e.key_id for e in entries} == {api.read_id}


def test_a_read_whose_audit_entry_cannot_be_written_fails_without_personal_data(api: Api,
                                                                               monkeypatch: Any) -> None:
    pid = _pid(api, "u1")
    log = audit_log(api.storage)
    before = log.entries(limit=1000)

    def broken(rows: list[tuple[Any, ...]]) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(log, "_insert", broken)
    for url, params in ((f"/v1/profiles/{pid}", None), ("/v1/profiles", {"identifier": "user_id:u1"}),
                        (f"/v1/profiles/{pid}/timeline", None)):
        r = api.client.get(url, params=params, headers=api.read)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        body = r.json()
        assert body["success"] is False and body["code"] == "audit_unavailable"
        assert set(body) <= {"success", "code", "message", "errors"}
        assert "u1@example.com" not in r.text and "Order Completed" not in r.text
    monkeypatch.undo()
    assert log.entries(limit=1000) == before  # nothing was audited, and nothing was returned
    assert api.profile(pid)["id"] == pid  # the next read works again
    assert [e.action for e in log.entries(limit=1000)] == ["profile.read"] + [e.action for e in before]


def test_an_unknown_profile_is_404_and_not_audited(api: Api) -> None:
    r = api.client.get("/v1/profiles/p_nobody", headers=api.read)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = api.client.get("/v1/profiles", params={"identifier": "user_id:nobody"}, headers=api.read)
    assert r.status_code == 404
    r = api.client.get("/v1/profiles/p_nobody", params={"at": "yesterday"}, headers=api.read)
    assert r.status_code in (400, 404)
    assert audit_log(api.storage).entries() == []


def test_an_invalid_at_is_400_and_not_audited(api: Api) -> None:
    pid = _pid(api, "u2")
    log = audit_log(api.storage)
    n = len(log.entries())
    r = api.client.get(f"/v1/profiles/{pid}", params={"at": "yesterday"}, headers=api.read)
    assert r.status_code == 400 and "'at'" in r.json()["message"]
    assert len(log.entries()) == n


# ---------------------------------------------------------------- the segments section
def _segments(api: Api, pid: str, at: datetime | None = None) -> list[tuple[str, int]]:
    r = api.client.get(f"/v1/profiles/{pid}", params={"at": at.isoformat()} if at else None, headers=api.read)
    assert r.status_code == 200, r.text
    return [(s["name"], s["version"]) for s in r.json()["segments"]]


def test_the_segments_section_follows_every_change_of_the_store(api: Api) -> None:
    pid = _pid(api, "u1")  # country FR, one order 10 days ago
    assert _segments(api, pid) == []
    assert api.client.post("/v1/segments", json={"name": "fr", "definition": 'trait.country = "FR"'},
                           headers=api.admin).status_code == 201
    assert _segments(api, pid) == [("fr", 1)]
    assert api.client.put("/v1/segments/fr", json={"definition": 'trait.country = "DE"'},
                          headers=api.admin).status_code == 200
    assert _segments(api, pid) == []
    # a version written by another process (another server on the same PostgreSQL database, the CLI):
    # a store object of its own, not this server's
    other = SqlSegmentStore(api.storage)
    assert other is not segment_store(api.storage)
    other.update("fr", text='trait.country = "FR"', now=NOW)
    assert _segments(api, pid) == [("fr", 3)]
    assert api.client.delete("/v1/segments/fr", headers=api.admin).status_code == 200
    assert _segments(api, pid) == []


def test_events_are_read_only_for_definitions_that_aggregate_them(api: Api, monkeypatch: Any) -> None:
    pid = _pid(api, "u1")
    reads: list[int] = []
    real = api.storage.log.get

    def counting(positions: Any) -> Any:
        reads.append(len(positions))
        return real(positions)

    monkeypatch.setattr(api.storage.log, "get", counting)
    api.client.post("/v1/segments", json={"name": "fr", "definition": 'trait.country = "FR"'}, headers=api.admin)
    api.client.post("/v1/segments", json={"name": "fr2", "definition": 'in segment("fr") and trait.country = "FR"'},
                    headers=api.admin)
    reads.clear()
    assert _segments(api, pid) == [("fr", 1), ("fr2", 1)]
    assert reads == []  # no definition counts events: none read
    api.client.post("/v1/segments", json={"name": "buyers", "definition": 'count(track "Order Completed") >= 1'},
                    headers=api.admin)
    api.client.post("/v1/segments", json={"name": "fr-buyers",
                                          "definition": 'in segment("buyers") and in segment("fr")'}, headers=api.admin)
    reads.clear()
    assert _segments(api, pid) == [("buyers", 1), ("fr", 1), ("fr-buyers", 1), ("fr2", 1)]
    assert reads and reads[0] >= 2  # the profile's identify and order
    # time is a parameter, not part of any cache: the order (10 days before NOW) is outside "in last 5d" …
    api.client.post("/v1/segments", json={"name": "recent",
                                          "definition": 'count(track "Order Completed" in last 30d) >= 1'},
                    headers=api.admin)
    assert ("recent", 1) in _segments(api, pid)
    assert ("recent", 1) not in _segments(api, pid, at=NOW + timedelta(days=25))


def test_the_section_matches_the_profile_segments_endpoint(api: Api) -> None:
    for name, d in (("fr", 'trait.country = "FR"'), ("buyers", 'count(track "Order Completed") >= 2'),
                    ("app", 'touchpoint("app").count >= 1')):
        assert api.client.post("/v1/segments", json={"name": name, "definition": d},
                               headers=api.admin).status_code == 201
    for i in range(12):
        pid = _pid(api, f"u{i}")
        r = api.client.get(f"/v1/profiles/{pid}/segments", headers=api.read)
        assert r.status_code == 200, r.text
        assert _segments(api, pid) == [(s["name"], s["version"]) for s in r.json()["segments"]]
