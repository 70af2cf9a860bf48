"""One services object per open storage: every caller gets the same stores from it; another storage (another
workspace) gets its own; nothing outlives the storage in a module-level registry."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime
from pathlib import Path

from takt import workspace as ws_mod
from takt.api.segments import attach as attach_runner
from takt.clock import FixedClock
from takt.models.scoring import registry_of
from takt.policy.segment_functions import table_of
from takt.policy.suppression_store import suppression_key, suppression_list
from takt.privacy.audit import audit_log
from takt.segments.live import attached
from takt.segments.store import segment_store
from takt.services import attached_services, services_of
from takt.storage.base import Storage


def test_the_accessors_read_one_services_object(storage: Storage) -> None:
    services = services_of(storage)
    assert services_of(storage) is services
    assert suppression_list(storage) is services.suppression is suppression_list(storage)
    assert suppression_key(storage) == services.suppression_key and len(services.suppression_key) == 32
    assert segment_store(storage) is services.segments
    assert table_of(storage) is services.contactability
    assert registry_of(storage) is services.models
    assert audit_log(storage) is services.audit
    assert attached(storage) is None and services.live is None


def test_each_storage_has_its_own(tmp_path: Path) -> None:
    one, two = ws_mod.init(tmp_path / "one"), ws_mod.init(tmp_path / "two")
    with one.open_storage() as a, two.open_storage() as b:
        assert services_of(a) is not services_of(b)
        assert suppression_list(a) is not suppression_list(b)
        assert suppression_key(a) != suppression_key(b)  # two workspaces, two keys
        assert services_of(a).settings is one.settings  # built by open_storage, with the workspace's settings


def test_services_go_with_their_storage(tmp_path: Path) -> None:
    """No module keeps a store alive once its storage is closed and dropped."""
    ws = ws_mod.init(tmp_path / "w")
    storage = ws.open_storage()
    services = services_of(storage)
    runner = services.runner_for(FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    attach_runner(storage, runner)
    assert services.runner is runner
    refs = [weakref.ref(x) for x in (services, services.suppression, services.segments, services.audit,
                                     services.contactability, services.models)]
    storage.close()
    del storage, services, runner
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_reading_never_builds() -> None:
    assert attached_services(object()) is None
    assert attached(None) is None
