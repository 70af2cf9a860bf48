"""`--engine spark`: one target per Spark task (applyInPandas) gives the local engine's metrics.

Runs when ``TAKT_TEST_SPARK=1`` (CI sets it); then a missing extra or Java fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from takt.models import factory as F
from takt.models.registry import Registry
from takt.storage.duckdb import DuckDBStorage
from tests.models.test_factory import CFG, NOW, synthetic

if os.environ.get("TAKT_TEST_SPARK", "") != "1":
    pytest.skip("Spark execution is opt-in: set TAKT_TEST_SPARK=1", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from takt.models.spark import use_this_python
    from takt.segments.spark import spark_session

    use_this_python()  # before the session: its workers must import takt
    session = spark_session("local[2]")
    try:
        yield session
    finally:
        session.stop()


def test_spark_training_matches_local(spark: Any, tmp_path: Path) -> None:
    from takt.models.spark import train_spark

    data = synthetic(2000, seed=5)
    remote = {o.target.name: o for o in train_spark(data, CFG, session=spark)}
    with DuckDBStorage(tmp_path / "t.duckdb") as storage:
        local = {r.model: r for r in F.train(data, Registry(storage), CFG, created_at=NOW)}
    assert set(remote) == set(local)
    for name, o in remote.items():
        assert o.engine == "spark"
        assert o.status == local[name].status, name
        for key in ("auc", "pr_auc", "lift_10"):
            a, b = o.metrics.get(key), local[name].metrics.get(key)
            assert (a is None and b is None) or a == pytest.approx(b, abs=0.02), (name, key, a, b)
    assert remote["signal"].status == "accepted" and remote["signal"].model_text


def test_spark_engine_registers(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import takt.segments.spark as ss

    monkeypatch.setattr(ss, "spark_session", lambda master="local[2]": spark)
    data = synthetic(1500, seed=6)
    with DuckDBStorage(tmp_path / "t.duckdb") as storage:
        reg = Registry(storage)
        records = F.train(data, reg, CFG, created_at=NOW, engine="spark")
        assert {r.engine for r in records} == {"spark"}
        assert [r.model for r in reg.active()] == ["signal"]
