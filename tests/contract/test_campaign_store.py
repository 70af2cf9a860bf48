"""The campaign store contract, on every backend: versions, the newest or a given one, archiving keeps history."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from takt.campaigns.document import parse_document
from takt.campaigns.store import CampaignConflict, SqlCampaignStore
from takt.errors import TaktError
from takt.storage.base import Storage

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def doc(name: str = "ny-city-break", subject: str = "New York?", **more: Any) -> dict[str, Any]:
    return {"name": name, "intent": "marketing", "audience": 'interest("destination:new-york") > 1',
            "trigger": {"on": "now"}, "channels": ["email"],
            "message": {"email": {"subject": subject, "text": "Fly to New York. {{ unsubscribe_url }}"}}, **more}


def test_create_update_get_versions(storage: Storage) -> None:
    store = SqlCampaignStore(storage)
    v1 = store.create(parse_document(doc()), now=NOW, by="key_1")
    assert (v1.name, v1.version, v1.archived, v1.created_by) == ("ny-city-break", 1, False, "key_1")
    assert v1.created_at == NOW
    with pytest.raises(CampaignConflict) as e:
        store.create(parse_document(doc()), now=NOW)
    assert e.value.code == "campaign_exists" and e.value.status == 409
    v2 = store.update(parse_document(doc(subject="New York, again?")), now=NOW + timedelta(hours=1))
    assert v2.version == 2
    assert store.update(parse_document(doc(subject="New York, again?")), now=NOW).version == 2  # unchanged: no version
    assert store.get("ny-city-break").version == 2
    assert store.get("ny-city-break", 1).document["message"]["email"]["subject"] == "New York?"
    assert store.get("ny-city-break").campaign().message["email"].fields["subject"] == "New York, again?"
    assert store.get("ny-city-break").campaign().version == 2
    assert [v.version for v in store.versions("ny-city-break")] == [1, 2]
    with pytest.raises(TaktError) as missing:
        store.get("ny-city-break", 7)
    assert missing.value.status == 404


def test_list_and_archive_keeps_history(storage: Storage) -> None:
    store = SqlCampaignStore(storage)
    store.create(parse_document(doc("b-second")), now=NOW)
    store.create(parse_document(doc("a-first")), now=NOW)
    assert [v.name for v in store.list()] == ["a-first", "b-second"]
    gone = store.delete("a-first", now=NOW, by="key_2")
    assert (gone.version, gone.archived) == (2, True)
    assert [v.name for v in store.list()] == ["b-second"]
    with pytest.raises(TaktError) as e:
        store.get("a-first")
    assert e.value.status == 404 and "deleted" in e.value.message
    assert store.get("a-first", 1).document["name"] == "a-first"  # kept for the record
    assert [v.archived for v in store.versions("a-first")] == [False, True]
    again = store.create(parse_document(doc("a-first")), now=NOW)  # a new life continues the numbering
    assert again.version == 3
    with pytest.raises(TaktError) as nf:
        store.get("a-frist")
    assert nf.value.status == 404 and "a-first" in nf.value.message  # did you mean


def test_a_second_store_sees_the_first_ones_rows(storage: Storage) -> None:
    SqlCampaignStore(storage).create(parse_document(doc()), now=NOW)
    assert SqlCampaignStore(storage).get("ny-city-break").version == 1


def test_concurrent_updates_make_distinct_versions_or_conflict(storage: Storage) -> None:
    store = SqlCampaignStore(storage)
    store.create(parse_document(doc()), now=NOW)
    results: list[int] = []
    conflicts: list[str] = []

    def work(i: int) -> None:
        try:
            results.append(store.update(parse_document(doc(subject=f"s{i}")), now=NOW).version)
        except CampaignConflict as e:
            conflicts.append(e.code)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(set(results))  # never two rows for one version
    assert set(conflicts) <= {"concurrent_change"}
    assert [v.version for v in store.versions("ny-city-break")] == list(range(1, len(results) + 2))
