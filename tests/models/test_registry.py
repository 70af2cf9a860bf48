"""The model registry and scores table: the same behaviour on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from takt.errors import TaktError
from takt.models.registry import ModelRecord, Registry
from takt.storage.base import Storage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def record(model: str, status: str = "accepted", auc: float = 0.8) -> ModelRecord:
    return ModelRecord(model=model, target={"name": model, "family": "churn", "horizon_days": 30}, status=status,
                       horizon_days=30, created_at=NOW, train_cutoff=datetime(2026, 9, 25, tzinfo=UTC),
                       valid_cutoff=datetime(2026, 10, 25, tzinfo=UTC), features=["a", "b"],
                       spec={"channels": ["web"]}, metrics={"auc": auc}, baseline={"auc": 0.7},
                       fingerprint="abc", params={"num_leaves": 15}, reference={"score": {"edges": [0.5]}},
                       model_text="tree" if status == "accepted" else None,
                       reason=None if status == "accepted" else "does not beat its baseline")


def test_versions_and_active(storage: Storage) -> None:
    reg = Registry(storage)
    assert reg.register(record("churn_30d")).version == 1
    assert reg.register(record("churn_30d", "rejected", 0.6)).version == 2
    assert reg.register(record("unsub_30d", "failed")).version == 1
    latest = {r.model: (r.version, r.status) for r in reg.latest()}
    assert latest == {"churn_30d": (2, "rejected"), "unsub_30d": (1, "failed")}
    active = reg.active()
    assert [(r.model, r.version) for r in active] == [("churn_30d", 1)]  # the latest accepted version
    got = active[0]
    assert got.model_text == "tree" and got.features == ["a", "b"] and got.metrics == {"auc": 0.8}
    assert got.train_cutoff == datetime(2026, 9, 25, tzinfo=UTC) and got.created_at == NOW
    assert got.reference == {"score": {"edges": [0.5]}}
    assert reg.get("churn_30d").version == 2 and reg.get("churn_30d", 1).status == "accepted"
    assert reg.records()[0].model_text is None  # listings leave the model text out
    with pytest.raises(TaktError, match="no model 'nope'"):
        reg.get("nope")
    summary = reg.get("churn_30d", 2).summary()
    assert summary["reason"] == "does not beat its baseline" and summary["features"] == 2
    assert summary["train_cutoff"] == "2026-09-25T00:00:00Z"


def test_scores_replace_per_model(storage: Storage) -> None:
    reg = Registry(storage)
    reg.write_scores("m1", 1, ["p1", "p2"], np.array([0.2, 0.9]), NOW)
    reg.write_scores("m2", 3, ["p1"], np.array([0.5]), NOW)
    assert reg.score("p2", "m1") == pytest.approx(0.9)
    assert reg.scores_of("p1") == [("m1", 1, pytest.approx(0.2), NOW), ("m2", 3, pytest.approx(0.5), NOW)]
    reg.write_scores("m1", 2, ["p3"], np.array([0.1]), NOW)  # replaces every score of m1
    assert reg.score("p2", "m1") is None and reg.score("p3", "m1") == pytest.approx(0.1)
    assert reg.score_counts() == {"m1": 1, "m2": 1}
    with pytest.raises(ValueError, match="differ in length"):
        reg.write_scores("m1", 2, ["p3", "p4"], np.array([0.1]), NOW)
    assert reg.score("p3", "m1") == pytest.approx(0.1)  # nothing half-stored
    n = reg.replace_scores([("m1", 3, ["p1"], np.array([0.3])), ("m2", 4, np.array(["p2", "p3"], dtype=object),
                                                                   np.array([0.4, 0.6]))], NOW)
    assert n == 3 and reg.score_counts() == {"m1": 1, "m2": 2}
    assert reg.scores_of("p1") == [("m1", 3, pytest.approx(0.3), NOW)]
    with pytest.raises(ValueError, match="'m2'"):
        reg.replace_scores([("m1", 4, ["p9"], np.array([0.9])), ("m2", 5, ["p9"], np.array([]))], NOW)
    assert reg.score_counts() == {"m1": 1, "m2": 2} and reg.score("p9", "m1") is None


def test_unknown_status_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="status"):
        Registry(storage).register(record("x", "maybe"))
