"""The live follower never fails silently: a failing fold is logged with its traceback (throttled), and its
recovery too; the follower keeps retrying from the same position."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from takt.clock import FixedClock
from takt.profiles.config import ProfileConfig
from takt.projections import runner as runner_mod
from takt.projections.runner import ErrorThrottle, ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _wait(cond: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failing_fold_is_logged_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger=runner_mod.__name__)
    with DuckDBStorage(tmp_path / "l.duckdb") as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(load(None, env={})), FixedClock(NOW))
        runner.load()
        real = runner.catch_up
        failures = {"left": 2}

        def flaky(*args: Any, **kwargs: Any) -> int:
            if failures["left"] and storage.log.head() > runner.position:
                failures["left"] -= 1
                raise RuntimeError("disk on fire")
            return real(*args, **kwargs)

        monkeypatch.setattr(runner, "catch_up", flaky)
        runner.start()
        try:
            storage.log.append([ev(i, user_id="u1") for i in range(3)])
            runner.notify()
            _wait(lambda: runner.position == storage.log.head())
        finally:
            runner.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("projector following the log from position 0" in m for m in messages)
    failed = [r for r in caplog.records if "the projector failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None and "disk on fire" in str(failed[0].exc_info[1])
    assert len(failed) == 1  # the second failure within a minute is counted, not logged again
    assert any("recovered" in m and "after 2 failures" in m for m in messages)


def test_throttle_logs_again_after_its_interval(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("takt.test.throttle")
    caplog.set_level(logging.WARNING, logger=log.name)
    t = ErrorThrottle(log, "stuck at %d", every_s=0.0)
    for _ in range(3):
        try:
            raise ValueError("x")
        except ValueError:
            t.failed(7)
    assert [r.getMessage() for r in caplog.records] == [
        "stuck at 7 (1 failures so far)", "stuck at 7 (2 failures so far)", "stuck at 7 (3 failures so far)"]


def test_a_500_is_logged_with_its_traceback_and_the_client_sees_only_the_type(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.testclient import TestClient

    from takt.api.app import create_app

    async def broken(request: Request) -> Response:
        raise KeyError("secret-detail")

    caplog.set_level(logging.INFO, logger="takt")
    with DuckDBStorage(tmp_path / "e.duckdb") as storage:
        app = create_app(storage, load(None, env={}), FixedClock(NOW))
        app.add_route("/broken", broken)
        with TestClient(app, raise_server_exceptions=False) as client:
            r = client.get("/broken")
    assert r.status_code == 500 and r.json()["code"] == "internal" and "secret-detail" not in r.text
    errors = [rec for rec in caplog.records if rec.levelno == logging.ERROR]
    assert errors and errors[0].getMessage() == "GET /broken failed" and errors[0].exc_info is not None
    assert any("serving a duckdb workspace" in rec.getMessage() for rec in caplog.records)
    assert any("stopped; profiles reflect the log up to position" in rec.getMessage() for rec in caplog.records)
