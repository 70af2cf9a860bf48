"""The segment store's contract, on DuckDB and PostgreSQL: versions, validation, references, deletion,
concurrent writers, and membership history read back from the log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from takt.errors import TaktError
from takt.events.model import Event
from takt.segments import SegmentError, Vocabulary, parse, to_json
from takt.segments.store import (
    SegmentConflict,
    SqlSegmentStore,
    membership_history,
    segment_store,
)
from takt.storage.base import Storage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_create_get_list_and_versions(storage: Storage) -> None:
    store = segment_store(storage)
    assert segment_store(storage) is store
    assert isinstance(store, SqlSegmentStore)
    v1 = store.create("vip", text='trait.country = "DE"', now=NOW, by="k_admin")
    assert (v1.name, v1.version, v1.deleted, v1.created_by) == ("vip", 1, False, "k_admin")
    assert v1.json_form == to_json(parse('trait.country = "DE"'))
    assert v1.tree == parse('trait.country = "DE"')
    v2 = store.update("vip", text='trait.country in ["DE", "AT"]', now=NOW + timedelta(hours=1), by="k2")
    assert v2.version == 2
    assert store.get("vip").definition == 'trait.country in ["DE", "AT"]'
    assert store.get("vip").created_at == NOW + timedelta(hours=1)
    assert [v.version for v in store.versions("vip")] == [1, 2]
    assert store.versions("vip")[0].definition == 'trait.country = "DE"'
    # the same definition again stores nothing
    assert store.update("vip", text='trait.country in ["DE", "AT"]', now=NOW, by="k3").version == 2
    store.create("buyers", json_form={"type": "exists", "left": {"type": "trait", "name": "email"}}, now=NOW)
    assert store.get("buyers").definition == "trait.email exists"
    assert [s.name for s in store.list()] == ["buyers", "vip"]
    assert set(store.lookup()) == {"buyers", "vip"}


def test_names_and_definitions_are_validated(storage: Storage) -> None:
    store = segment_store(storage)
    for bad in ("", "has space", "-dash-first", "x" * 65, "ü"):
        with pytest.raises(TaktError) as e:
            store.create(bad, text="trait.email exists", now=NOW)
        assert e.value.code == "invalid_segment_name" and e.value.status == 400
    with pytest.raises(SegmentError) as se:
        store.create("de", text='trait.contry = "DE"', now=NOW, vocabulary=Vocabulary(traits=frozenset({"country"})))
    err = se.value
    assert err.status == 400 and err.code == "invalid_segment"
    assert err.errors[0]["line"] == 1 and err.errors[0]["column"] == 1
    assert "did you mean 'country'" in err.errors[0]["hint"]
    with pytest.raises(SegmentError) as se:
        store.create("de", text='trait.country = "DE" adn trait.email exists', now=NOW)
    assert se.value.errors[0]["column"] == 22
    with pytest.raises(TaktError) as e:
        store.create("de", now=NOW)
    assert e.value.code == "invalid_segment"
    with pytest.raises(TaktError):
        store.create("de", text="trait.email exists", json_form={"type": "exists"}, now=NOW)
    with pytest.raises(SegmentError) as se:
        store.create("de", json_form={"type": "and", "items": [{"type": "nope"}]}, now=NOW)
    assert se.value.errors[0]["field"].startswith("$.items[0]")
    assert store.list() == []  # nothing half-stored


def test_references_unknown_cycles_and_delete(storage: Storage) -> None:
    store = segment_store(storage)
    store.create("de", text='trait.country = "DE"', now=NOW)
    with pytest.raises(SegmentError) as se:
        store.create("de-vip", text='in segment("dee")', now=NOW)
    assert "unknown segment 'dee'" in se.value.message and "did you mean 'de'" in se.value.errors[0]["hint"]
    store.create("de-vip", text='in segment("de") and trait.vip = true', now=NOW)
    store.create("top", text='in segment("de-vip")', now=NOW)
    with pytest.raises(SegmentError) as se:
        store.update("de", text='in segment("top")', now=NOW)
    assert "cycle" in se.value.message and "de → top → de-vip → de" in se.value.message
    with pytest.raises(SegmentError) as se:
        store.create("self", text='in segment("self")', now=NOW)
    assert "cycle" in se.value.message
    with pytest.raises(SegmentConflict) as c:
        store.delete("de", now=NOW)
    assert c.value.status == 409 and c.value.code == "segment_in_use" and "'de-vip'" in c.value.message
    store.delete("top", now=NOW)
    store.delete("de-vip", now=NOW)
    gone = store.delete("de", now=NOW + timedelta(minutes=1), by="k")
    assert gone.deleted and gone.version == 2
    with pytest.raises(TaktError) as e:
        store.get("de")
    assert e.value.status == 404 and "deleted" in e.value.message
    assert [v.deleted for v in store.versions("de")] == [False, True]
    # a deleted name can be created again; its history continues
    again = store.create("de", text='trait.country = "AT"', now=NOW)
    assert again.version == 3
    with pytest.raises(SegmentConflict) as c:
        store.create("de", text='trait.country = "AT"', now=NOW)
    assert c.value.code == "segment_exists"
    with pytest.raises(TaktError) as e:
        store.get("dee")
    assert e.value.status == 404 and "did you mean 'de'" in e.value.message
    with pytest.raises(TaktError) as e:
        store.versions("never")
    assert e.value.status == 404


def test_concurrent_updates_one_wins_per_version(storage: Storage) -> None:
    store = segment_store(storage)
    store.create("race", text="trait.a exists", now=NOW)
    results: list[str] = []

    def write(i: int) -> None:
        try:
            store.update("race", text=f"trait.a{i} exists", now=NOW)
            results.append("ok")
        except SegmentConflict:
            results.append("conflict")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [v.version for v in store.versions("race")]
    assert versions == list(range(1, len(versions) + 1))  # no gaps, no duplicates
    assert results.count("ok") == len(versions) - 1 and len(results) == 6


def _membership(n: int, kind: str, pid: str, segment: str, version: int, at: datetime) -> Event:
    return Event(kind=kind, message_id=f"m{n}", source="takt:segments", timestamp=at, received_at=at,
                 properties={"profile_id": pid, "segment": segment, "version": version,
                             "at": at.isoformat().replace("+00:00", "Z")})


def test_membership_history_from_the_log(storage: Storage) -> None:
    storage.log.append([
        _membership(1, "segment_entered", "p_1", "vip", 1, NOW),
        _membership(2, "segment_entered", "p_2", "vip", 1, NOW),
        Event(kind="track", event="Order Completed", message_id="o1", source="web", timestamp=NOW, received_at=NOW,
              user_id="u1", properties={"profile_id": "p_1", "segment": "vip"}),
        _membership(3, "segment_exited", "p_1", "vip", 2, NOW + timedelta(days=1)),
    ])
    got = membership_history(storage, "p_1")
    assert [(c.kind, c.segment, c.version) for c in got] == [("entered", "vip", 1), ("exited", "vip", 2)]
    assert got[1].at == "2026-11-21T12:00:00Z"
    assert got[0].position < got[1].position
    assert membership_history(storage, "p_3") == []
