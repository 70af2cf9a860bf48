"""The live follower keeps what loading made (and later survivors) out of the cyclic collector's passes:
``gc.freeze`` at start and periodically, ``gc.unfreeze`` at stop."""

from __future__ import annotations

import gc
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from takt.clock import FixedClock
from takt.profiles.config import ProfileConfig
from takt.projections import runner as runner_mod
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_start_freezes_what_loading_made_and_stop_unfreezes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "FREEZE_EVERY_S", 0.0)  # every follower pass
    with DuckDBStorage(tmp_path / "g.duckdb") as storage:
        storage.log.append([ev(i, user_id=f"u{i % 5}") for i in range(20)])
        runner = ProfileRunner(storage, ProfileConfig.from_settings(load(None, env={})), FixedClock(NOW))
        runner.load()
        gc.unfreeze()
        runner.start()
        try:
            assert gc.get_freeze_count() > 0
            gc.unfreeze()  # the follower freezes again on its own, without new events
            runner.notify()
            for _ in range(500):
                if gc.get_freeze_count() > 0:
                    break
                time.sleep(0.01)
            assert gc.get_freeze_count() > 0
        finally:
            runner.stop()
        assert gc.get_freeze_count() == 0
        assert runner.position == storage.log.head()
