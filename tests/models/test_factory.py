"""The factory on a synthetic feature matrix: accept signal, reject noise and thin targets, isolate failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from takt.models import factory as F
from takt.models.features import FeatureMatrix, FeatureSpec
from takt.models.registry import Registry
from takt.models.targets import Target
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 1, tzinfo=UTC)
CFG = F.FactoryConfig(rounds=30, threads=1)


def matrix(cutoff: datetime, X: np.ndarray) -> FeatureMatrix:
    spec = FeatureSpec()
    names = [f"f{i}" for i in range(X.shape[1])]
    ids = np.array([f"p{i:05d}" for i in range(len(X))], dtype=object)
    fm = FeatureMatrix(cutoff, ids, X.astype(np.float32), names, spec)
    return fm


def synthetic(n: int = 3000, seed: int = 0) -> F.TrainingData:
    rng = np.random.default_rng(seed)
    t1, t2 = F.cutoffs(NOW, 30)
    X1, X2 = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))

    def signal(X: np.ndarray) -> np.ndarray:
        # nonlinear in f0 and f1: the baseline (f0 alone) sees only part of it
        return ((X[:, 0] + 2 * np.abs(X[:, 1]) + rng.normal(scale=0.5, size=len(X))) > 2.5).astype(np.float32)

    targets = [Target("signal", "event", 30, event="A"), Target("noise", "event", 30, event="B"),
               Target("thin", "event", 30, event="C"), Target("baseline_is_enough", "event", 30, event="D")]
    y1 = {"signal": signal(X1), "noise": (rng.random(n) < 0.2).astype(np.float32),
          "thin": np.zeros(n, np.float32), "baseline_is_enough": (X1[:, 2] > 1).astype(np.float32)}
    y2 = {"signal": signal(X2), "noise": (rng.random(n) < 0.2).astype(np.float32),
          "thin": np.zeros(n, np.float32), "baseline_is_enough": (X2[:, 2] > 1).astype(np.float32)}
    y1["thin"][:5] = 1
    y2["thin"][:5] = 1
    base = {"signal": X2[:, 0], "noise": rng.random(n), "thin": rng.random(n), "baseline_is_enough": X2[:, 2]}
    return F.TrainingData(NOW, 30, matrix(t1, X1), matrix(t2, X2), targets, y1, y2, base, "fp")


def test_accepts_signal_rejects_noise_thin_and_baseline_equal(tmp_path: Any) -> None:
    data = synthetic()
    with DuckDBStorage(tmp_path / "t.duckdb") as storage:
        reg = Registry(storage)
        records = {r.model: r for r in F.train(data, reg, CFG, created_at=NOW)}
        assert records["signal"].status == "accepted"
        assert records["signal"].metrics["auc"] > records["signal"].baseline["auc"] + 0.05
        assert records["noise"].status == "rejected" and "AUC" in (records["noise"].reason or "")
        assert records["thin"].status == "rejected" and "too few positives" in (records["thin"].reason or "")
        assert records["baseline_is_enough"].status == "rejected"
        assert "baseline" in (records["baseline_is_enough"].reason or "")
        active = reg.active()
        assert [r.model for r in active] == ["signal"]
        r = active[0]
        assert r.model_text and r.train_cutoff == NOW - timedelta(days=60) and r.valid_cutoff == NOW - timedelta(days=30)
        assert r.features == [f"f{i}" for i in range(6)] and set(r.reference["features"]) == set(r.features)
        assert r.fingerprint == "fp" and r.params["num_leaves"] == CFG.num_leaves
        assert reg.get("noise").model_text is None


def test_a_failing_target_does_not_stop_the_others(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic(1500)
    real = F.fit_and_evaluate

    def flaky(target: Target, *a: Any, **k: Any) -> F.Outcome:
        if target.name == "noise":
            raise RuntimeError("disk on fire")
        return real(target, *a, **k)

    monkeypatch.setattr(F, "fit_and_evaluate", flaky)
    calls: list[tuple[str, int, int]] = []
    with DuckDBStorage(tmp_path / "t.duckdb") as storage:
        records = {r.model: r for r in F.train(data, Registry(storage), CFG, created_at=NOW,
                                                progress=lambda *a: calls.append(a))}
    assert records["noise"].status == "failed" and "disk on fire" in (records["noise"].reason or "")
    assert records["signal"].status == "accepted" and len(records) == 4
    assert calls[-1] == ("training", 4, 4)


def test_same_result_on_a_shared_dataset_and_a_fresh_one() -> None:
    import lightgbm as lgb

    data = synthetic(1500)
    ds = lgb.Dataset(data.train.X, params={"max_bin": 63, "verbose": -1}, free_raw_data=False).construct()
    t = data.targets[0]
    args = (data.y_train[t.name], data.valid.X, data.y_valid[t.name], data.baseline_valid[t.name], CFG)
    shared = F.fit_and_evaluate(data.targets[1], ds, data.y_train["noise"], *args[1:])  # the label is replaced
    a = F.fit_and_evaluate(t, ds, *args)
    b = F.fit_and_evaluate(t, data.train.X, *args)
    assert shared.target.name == "noise"
    assert a.metrics["auc"] == pytest.approx(b.metrics["auc"]) and a.model_text == b.model_text


@pytest.mark.parametrize(("auc", "base", "status"), [
    (0.80, 0.70, "accepted"), (0.705, 0.70, "rejected"), (0.54, 0.30, "rejected"), (None, 0.5, "rejected"),
    (0.60, None, "accepted")])
def test_decide(auc: float | None, base: float | None, status: str) -> None:
    assert F.decide({"auc": auc}, {"auc": base}, CFG)[0] == status


def test_parallel_workers_give_the_serial_results(tmp_path: Any) -> None:
    data = synthetic(1500, seed=3)
    with DuckDBStorage(tmp_path / "t.duckdb") as storage:
        reg = Registry(storage)
        serial = {r.model: r for r in F.train(data, reg, CFG, created_at=NOW)}
        calls: list[tuple[str, int, int]] = []
        parallel = {r.model: r for r in F.train(data, reg, F.FactoryConfig(rounds=30, threads=1, workers=2),
                                                  created_at=NOW, progress=lambda *a: calls.append(a))}
    assert list(parallel) == [t.name for t in data.targets]  # registered in the targets' order
    for name, r in parallel.items():
        assert r.version == 2 and r.status == serial[name].status and r.metrics == serial[name].metrics
        assert r.model_text == serial[name].model_text and r.reason == serial[name].reason
    assert calls[-1] == ("training", 4, 4)
