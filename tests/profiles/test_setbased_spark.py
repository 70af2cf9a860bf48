"""The set-based rebuild with its aggregates run on Spark equals the fold (``takt rebuild --engine spark``).

Runs when ``TAKT_TEST_SPARK=1`` (as tests/test_spark_engine.py); then a missing extra or Java fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from takt.events.model import StoredEvent
from takt.profiles.rebuild import rebuild_events
from tests.profiles.test_setbased_rebuild import CONFIG, differences, logs, merging_logs, reference

if os.environ.get("TAKT_TEST_SPARK", "") != "1":
    pytest.skip("Spark execution is opt-in: set TAKT_TEST_SPARK=1", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from takt.segments.spark import spark_session

    session = spark_session()
    yield session


@settings(max_examples=4, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(log=logs(), merging=merging_logs())
def test_the_rebuild_on_spark_equals_the_fold(spark: Any, log: list[StoredEvent], merging: list[StoredEvent]) -> None:
    from takt.storage.spark_setbased import run_columns

    for one in (log, merging):
        p, derived = reference(one)
        got = rebuild_events(one, CONFIG, lambda cols, qs: run_columns(spark, cols, qs))
        assert differences(got, p, derived) == []
