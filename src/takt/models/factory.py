"""The model factory: one LightGBM model per target, validated over time, compared with a baseline, registered.

For a horizon ``h`` and ``now`` (a parameter, never the wall clock here):

1. features at the training cutoff ``T1 = now − 2h`` and at the validation cutoff ``T2 = now − h``
   (:mod:`takt.models.features`, one matrix shared by every target);
2. labels in ``(T1, T1 + h]`` for training and ``(T2, T2 + h]`` = ``(T2, now]`` for validation
   (:mod:`takt.models.targets`) — the validation period lies entirely after the training one;
3. per target a small LightGBM model trained at T1 and scored at T2; AUC, PR-AUC, lift at 10 % and calibration
   error (:mod:`takt.models.metrics`) for the model and for the target's baseline (recency / popularity);
4. the model is **accepted** only when its validation AUC is at least ``models.min_auc`` and beats the
   baseline's by ``models.min_auc_gain``; otherwise **rejected** (also when a period has fewer than
   ``models.min_positives`` positives). An exception in one target is recorded as **failed** and the others go
   on. Every outcome is registered (:mod:`takt.models.registry`) with its version, features, training window,
   metrics, baseline metrics, data fingerprint and drift reference (the features and scores at T2).

Scoring (:func:`score`) applies each active model to the features at ``now`` and replaces its rows in
``model_scores``; :func:`monitor` compares features and scores at ``now`` with the training reference (PSI).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from takt.errors import TaktError
from takt.models import drift, metrics
from takt.models.features import FeatureMatrix, FeatureSpec, choose_spec, compute, prepare
from takt.models.registry import ModelRecord, Registry
from takt.models.targets import Target, baseline_scores, discover, labels
from takt.settings import Settings, register


def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be positive, got {v!r}")


def _not_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v!r}")


register("models.horizon_days", 30, "Default horizon of the targets, in days (`takt models train --horizon`).",
         check=_positive)
register("models.min_positives", 20, "Fewest positive examples in the training and in the validation period; "
         "a target with fewer is rejected.", check=_positive)
register("models.min_auc", 0.55, "Lowest validation AUC an accepted model may have.", kind="float",
         check=_not_negative)
register("models.min_auc_gain", 0.01, "How much a model's validation AUC must exceed its baseline's to be "
         "accepted.", kind="float")
register("models.rounds", 60, "Boosting rounds per LightGBM model.", check=_positive)
register("models.num_leaves", 15, "Leaves per tree.", check=_positive)
register("models.learning_rate", 0.1, "LightGBM learning rate.", kind="float", check=_positive)
register("models.threads", 1, "Threads per LightGBM model (local engine). One is fastest on a small or busy "
         "machine: OpenMP threads waiting for a core they share slow training down many times.", check=_positive)
register("models.workers", 2, "Processes that train models in parallel (local engine), each with `models.threads` "
         "threads; 1 trains in this process.", check=_positive)
register("models.category_features", 30, "Categories (most frequent first) that get their own purchase "
         "history features.", check=_not_negative)
register("models.interest_features", 20, "Interest keys (most frequent first) that get a decayed interest "
         "feature.", check=_not_negative)
register("models.channel_features", 8, "Touchpoints (most used first) that get a usage feature.",
         check=_not_negative)
register("models.interest_half_life_days", 30.0, "Half-life of the decayed interest features, in days.",
         kind="float", check=_positive)
register("models.drift_psi", 0.2, "Population stability index of a model's scores (training reference vs now) "
         "above which `takt models monitor` flags it.", kind="float", check=_positive)
register("models.feature_drift_psi", 0.25, "PSI of a single feature above which the model is flagged.",
         kind="float", check=_positive)


@dataclass(frozen=True)
class FactoryConfig:
    horizon_days: int = 30
    min_positives: int = 20
    min_auc: float = 0.55
    min_auc_gain: float = 0.01
    rounds: int = 60
    num_leaves: int = 15
    learning_rate: float = 0.1
    threads: int = 1
    workers: int = 1
    category_features: int = 30
    interest_features: int = 20
    channel_features: int = 8
    interest_half_life_days: float = 30.0
    drift_psi: float = 0.2
    feature_drift_psi: float = 0.25
    declared: tuple[dict[str, Any], ...] = ()
    discover: bool = True

    @classmethod
    def from_settings(cls, s: Settings, **overrides: Any) -> FactoryConfig:
        values: dict[str, Any] = {
            "horizon_days": s["models.horizon_days"], "min_positives": s["models.min_positives"],
            "min_auc": s["models.min_auc"], "min_auc_gain": s["models.min_auc_gain"], "rounds": s["models.rounds"],
            "num_leaves": s["models.num_leaves"], "learning_rate": s["models.learning_rate"],
            "threads": s["models.threads"], "workers": s["models.workers"], "category_features": s["models.category_features"],
            "interest_features": s["models.interest_features"], "channel_features": s["models.channel_features"],
            "interest_half_life_days": s["models.interest_half_life_days"], "drift_psi": s["models.drift_psi"],
            "feature_drift_psi": s["models.feature_drift_psi"], "declared": tuple(s["models.targets"]),
            "discover": s["models.discover"],
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def dataset_params(self, threads: int | None = None) -> dict[str, Any]:
        return {"max_bin": 63, "verbose": -1, "num_threads": threads or self.threads}

    def params(self, threads: int | None = None) -> dict[str, Any]:
        return {
            "objective": "binary", "num_leaves": self.num_leaves, "learning_rate": self.learning_rate,
            "min_data_in_leaf": 40, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
            "max_bin": 63, "num_threads": threads or self.threads, "seed": 7, "deterministic": True,
            "force_col_wise": True, "verbose": -1,
        }


Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances (the CLI draws bars from it)."""


def _quiet(stage: str, done: int, total: int) -> None:
    pass


# ---- data ----
@dataclass
class TrainingData:
    """Everything training needs, shared by every target: features at both cutoffs, labels, baselines."""

    now: datetime
    horizon_days: int
    train: FeatureMatrix
    valid: FeatureMatrix
    targets: list[Target]
    y_train: dict[str, np.ndarray]
    y_valid: dict[str, np.ndarray]
    baseline_valid: dict[str, np.ndarray]
    fingerprint: str
    seconds: float = 0.0

    @property
    def train_cutoff(self) -> datetime:
        return self.train.cutoff

    @property
    def valid_cutoff(self) -> datetime:
        return self.valid.cutoff


def cutoffs(now: datetime, horizon_days: int) -> tuple[datetime, datetime]:
    """``(T1, T2)``: the training and validation cutoffs."""
    h = timedelta(days=horizon_days)
    return now - 2 * h, now - h


def spec_for(con: Any, cutoff: datetime, config: FactoryConfig) -> FeatureSpec:
    return choose_spec(con, cutoff, categories=config.category_features, interests=config.interest_features,
                       channels=config.channel_features, half_life_days=config.interest_half_life_days)


def all_targets(con: Any, now: datetime, config: FactoryConfig) -> list[Target]:
    t1, _ = cutoffs(now, config.horizon_days)
    return discover(con, t1, config.horizon_days, config.declared, config.discover)


def build_data(con: Any, targets: Sequence[Target], now: datetime, config: FactoryConfig,
               progress: Progress = _quiet) -> TrainingData:
    """Features, labels and baselines on a DuckDB connection that holds the work tables (:func:`prepare`)."""
    started = time.perf_counter()
    t1, t2 = cutoffs(now, config.horizon_days)
    spec = spec_for(con, t1, config)
    progress("features", 0, 4)
    train = compute(con, t1, spec)
    progress("features", 1, 4)
    if len(train) == 0:
        raise TaktError(f"not enough history: no event before the training cutoff {t1:%Y-%m-%d} (now − 2 × "
                        f"{config.horizon_days} days); use a shorter --horizon", code="not_enough_data")
    valid = compute(con, t2, spec)
    progress("features", 2, 4)
    y_train = labels(con, targets, train)
    y_valid = labels(con, targets, valid)
    progress("features", 3, 4)
    base = baseline_scores(con, targets, valid)
    progress("features", 4, 4)
    h = hashlib.sha256()
    h.update(train.fingerprint().encode())
    h.update(valid.fingerprint().encode())
    return TrainingData(now, config.horizon_days, train, valid, list(targets), y_train, y_valid, base,
                        h.hexdigest()[:32], time.perf_counter() - started)


# ---- one target ----
@dataclass
class Outcome:
    target: Target
    status: str
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    model_text: str | None = None
    score_reference: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    engine: str = "local"


def decide(m: dict[str, Any], b: dict[str, Any], config: FactoryConfig) -> tuple[str, str | None]:
    """Accept or reject a validated model against its baseline."""
    auc, base_auc = m.get("auc"), b.get("auc")
    if auc is None:
        return "rejected", "validation AUC undefined (one class only)"
    if auc < config.min_auc:
        return "rejected", f"validation AUC {auc:.3f} below the minimum {config.min_auc:.2f}"
    if base_auc is not None and auc < base_auc + config.min_auc_gain:
        return "rejected", (f"does not beat its baseline: AUC {auc:.3f} vs baseline {base_auc:.3f} "
                            f"(needs +{config.min_auc_gain:.2f})")
    return "accepted", None


def fit_and_evaluate(target: Target, X_train: Any, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
                     base_valid: np.ndarray, config: FactoryConfig, *, threads: int | None = None,
                     engine: str = "local") -> Outcome:
    """Train one model and judge it. ``X_train`` is a matrix or a constructed ``lightgbm.Dataset`` (its label is
    replaced by ``y_train``)."""
    import lightgbm as lgb

    started = time.perf_counter()
    pos_train, pos_valid = int(y_train.sum()), int(y_valid.sum())
    b = metrics.evaluate(y_valid, base_valid, probability=False)
    if pos_train < config.min_positives or pos_valid < config.min_positives:
        return Outcome(target, "rejected",
                       f"too few positives: {pos_train} in training, {pos_valid} in validation "
                       f"(needs {config.min_positives})", baseline=b, engine=engine,
                       metrics={"positives_train": pos_train, "positives": pos_valid, "rows": len(y_valid)},
                       seconds=time.perf_counter() - started)
    if pos_train == len(y_train):
        return Outcome(target, "rejected", "every training example is positive", baseline=b, engine=engine,
                       seconds=time.perf_counter() - started)
    if isinstance(X_train, lgb.Dataset):
        ds = X_train
        ds.set_label(y_train)
    else:
        ds = lgb.Dataset(X_train, label=y_train, params=config.dataset_params(threads))
    booster = lgb.train(config.params(threads), ds, num_boost_round=config.rounds)
    p = np.asarray(booster.predict(X_valid, num_threads=threads or config.threads), dtype=np.float64)
    m = metrics.evaluate(y_valid, p)
    m["positives_train"] = pos_train
    m["rows_train"] = len(y_train)
    status, reason = decide(m, b, config)
    return Outcome(target, status, reason, m, b, booster.model_to_string(), drift.reference(p),
                   time.perf_counter() - started, engine)


def _record(o: Outcome, data: TrainingData, config: FactoryConfig, reference: dict[str, Any],
            created_at: datetime) -> ModelRecord:
    return ModelRecord(
        model=o.target.name, target=o.target.to_json(), status=o.status, reason=o.reason,
        horizon_days=data.horizon_days, created_at=created_at, train_cutoff=data.train_cutoff,
        valid_cutoff=data.valid_cutoff, features=list(data.train.names), spec=data.train.spec.to_json(),
        metrics=o.metrics, baseline=o.baseline, fingerprint=data.fingerprint, params=config.params(),
        reference={"features": reference, "score": o.score_reference} if o.status == "accepted" else {},
        engine=o.engine, seconds=o.seconds, model_text=o.model_text if o.status == "accepted" else None,
    )


def feature_reference(fm: FeatureMatrix) -> dict[str, Any]:
    return {name: drift.reference(fm.X[:, i]) for i, name in enumerate(fm.names)}


def train(data: TrainingData, registry: Registry, config: FactoryConfig, *, created_at: datetime,
          engine: str = "local", spark_master: str = "local[2]", progress: Progress = _quiet) -> list[ModelRecord]:
    """Train, judge and register a model per target of ``data``; a failing target is registered as failed."""
    ref = feature_reference(data.valid)
    n = len(data.targets)
    outcomes: list[Outcome]
    if engine == "spark":
        from takt.models.spark import train_spark

        progress("training", 0, n)
        outcomes = train_spark(data, config, master=spark_master)
        progress("training", n, n)
    elif engine == "local":
        outcomes = list(_train_local(data, config, progress))
    else:
        raise TaktError(f"unknown engine {engine!r}; use local or spark", code="usage")
    out = []
    for o in outcomes:
        out.append(registry.register(_record(o, data, config, ref, created_at)))
    return out


def _train_local(data: TrainingData, config: FactoryConfig, progress: Progress) -> Any:
    if config.workers > 1 and len(data.targets) > 1:
        yield from _train_parallel(data, config, progress)
        return
    import lightgbm as lgb

    ds = lgb.Dataset(data.train.X, params=config.dataset_params(), free_raw_data=False).construct()
    n = len(data.targets)
    progress("training", 0, n)
    for i, t in enumerate(data.targets):
        started = time.perf_counter()
        try:
            yield fit_and_evaluate(t, ds, data.y_train[t.name], data.valid.X, data.y_valid[t.name],
                                   data.baseline_valid[t.name], config)
        except Exception as e:  # isolate the failure: the other targets go on
            yield Outcome(t, "failed", f"{type(e).__name__}: {e}", seconds=time.perf_counter() - started)
        progress("training", i + 1, n)


_WORKER: dict[str, Any] = {}
"""A training process's copy of the data (set by :func:`_worker_init`) and its binned Dataset."""


def _worker_init(X_train: np.ndarray, X_valid: np.ndarray, y_train: dict[str, np.ndarray],
                 y_valid: dict[str, np.ndarray], base: dict[str, np.ndarray], config: FactoryConfig) -> None:
    _WORKER.update(X_train=X_train, X_valid=X_valid, y_train=y_train, y_valid=y_valid, base=base, config=config)


def _worker_train(target: dict[str, Any]) -> Outcome:
    import lightgbm as lgb

    w = _WORKER
    t = Target.from_json(target)
    started = time.perf_counter()
    try:
        if "ds" not in w:
            w["ds"] = lgb.Dataset(w["X_train"], params=w["config"].dataset_params(), free_raw_data=False).construct()
        return fit_and_evaluate(t, w["ds"], w["y_train"][t.name], w["X_valid"], w["y_valid"][t.name],
                                w["base"][t.name], w["config"])
    except Exception as e:  # reported per target
        return Outcome(t, "failed", f"{type(e).__name__}: {e}", seconds=time.perf_counter() - started)


def _train_parallel(data: TrainingData, config: FactoryConfig, progress: Progress) -> Any:
    """Targets spread over ``config.workers`` fresh processes (spawned: no state inherited but the data each
    gets once), results in the targets' order. A worker that dies fails its unfinished targets only."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = len(data.targets)
    names = {t.name for t in data.targets}
    args = (data.train.X, data.valid.X, {k: v for k, v in data.y_train.items() if k in names},
            {k: v for k, v in data.y_valid.items() if k in names},
            {k: v for k, v in data.baseline_valid.items() if k in names}, config)
    results: dict[str, Outcome] = {}
    progress("training", 0, n)
    with ProcessPoolExecutor(max_workers=min(config.workers, n), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=args) as pool:
        futures = {pool.submit(_worker_train, t.to_json()): t for t in data.targets}
        for i, fut in enumerate(as_completed(futures), 1):
            t = futures[fut]
            try:
                results[t.name] = fut.result()
            except Exception as e:  # the process died (e.g. out of memory)
                results[t.name] = Outcome(t, "failed", f"training process failed: {type(e).__name__}: {e}")
            progress("training", i, n)
    for t in data.targets:
        yield results[t.name]


# ---- scoring and drift ----
def _predict(record: ModelRecord, X: np.ndarray, threads: int) -> np.ndarray:
    if len(X) == 0:
        return np.zeros(0)
    return np.asarray(_booster(record).predict(X, num_threads=threads), dtype=np.float64)


def _booster(record: ModelRecord) -> Any:
    import lightgbm as lgb

    if not record.model_text:
        raise TaktError(f"model {record.model!r} version {record.version} has no model text", code="invalid_model")
    return lgb.Booster(model_str=record.model_text)


def _matrices(con: Any, records: Sequence[ModelRecord], now: datetime) -> dict[str, FeatureMatrix]:
    by_spec: dict[str, FeatureMatrix] = {}
    for r in records:
        key = repr(sorted(r.spec.items()))
        if key not in by_spec:
            by_spec[key] = compute(con, now, FeatureSpec.from_json(r.spec))
    return by_spec


def _matrix_for(mats: dict[str, FeatureMatrix], r: ModelRecord) -> FeatureMatrix:
    fm = mats[repr(sorted(r.spec.items()))]
    if fm.names != r.features:
        raise TaktError(f"model {r.model!r}: its features differ from the features computed now",
                        code="invalid_model")
    return fm


@dataclass
class ScoreResult:
    model: str
    version: int
    profiles: int
    error: str | None = None


def score(con: Any, registry: Registry, now: datetime, *, models: Sequence[str] | None = None,
          progress: Progress = _quiet, threads: int = 1) -> list[ScoreResult]:
    """Score every profile with every active model (or those named) at ``now`` and replace their rows in
    ``model_scores`` in one transaction (a model whose prediction fails keeps its old scores)."""
    records = [r for r in registry.active() if models is None or r.model in models]
    mats = _matrices(con, records, now)
    out: list[ScoreResult] = []
    batch: list[tuple[str, int, Sequence[str] | np.ndarray, np.ndarray]] = []
    progress("scoring", 0, len(records) + 1)
    for i, r in enumerate(records):
        try:
            fm = _matrix_for(mats, r)
            batch.append((r.model, r.version, fm.profile_ids, _predict(r, fm.X, threads)))
            out.append(ScoreResult(r.model, r.version, len(fm)))
        except Exception as e:  # one model's failure does not stop the others
            out.append(ScoreResult(r.model, r.version, 0, f"{type(e).__name__}: {e}"))
        progress("scoring", i + 1, len(records) + 1)
    registry.replace_scores(batch, now)  # every model's new scores in one transaction
    progress("scoring", len(records) + 1, len(records) + 1)
    return out


@dataclass
class DriftReport:
    model: str
    version: int
    score_psi: float
    features: dict[str, float]
    drifted: bool
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        top = sorted(self.features.items(), key=lambda kv: -kv[1])[:5]
        return {"model": self.model, "version": self.version, "score_psi": round(self.score_psi, 4),
                "drifted": self.drifted, "reasons": self.reasons,
                "top_features": [{"feature": k, "psi": round(v, 4)} for k, v in top]}


def monitor(con: Any, registry: Registry, now: datetime, config: FactoryConfig,
            progress: Progress = _quiet) -> list[DriftReport]:
    """PSI of every active model's features and scores at ``now`` against its training reference."""
    records = registry.active()
    mats = _matrices(con, records, now)
    out = []
    progress("monitoring", 0, len(records))
    for i, r in enumerate(records):
        fm = _matrix_for(mats, r)
        ref = r.reference
        feats = {name: drift.psi(ref["features"][name], fm.X[:, j])
                 for j, name in enumerate(fm.names) if name in ref.get("features", {})}
        p = _predict(r, fm.X, config.threads)
        s_psi = drift.psi(ref["score"], p) if ref.get("score") else 0.0
        reasons = []
        if s_psi > config.drift_psi:
            reasons.append(f"score PSI {s_psi:.3f} > {config.drift_psi:g}")
        moved = [k for k, v in feats.items() if v > config.feature_drift_psi]
        if moved:
            reasons.append(f"{len(moved)} feature{'s' if len(moved) > 1 else ''} with PSI > "
                           f"{config.feature_drift_psi:g} ({', '.join(sorted(moved, key=lambda k: -feats[k])[:3])})")
        out.append(DriftReport(r.model, r.version, s_psi, feats, bool(reasons), reasons))
        progress("monitoring", i + 1, len(records))
    return out


def workspace_connection(storage: Any, settings: Settings, clock: Any) -> Any:
    """A DuckDB workspace's connection with the profile tables brought up to date and the factory's work tables
    prepared (:func:`takt.models.features.prepare`)."""
    from takt.profiles.config import ProfileConfig
    from takt.projections.runner import ProfileRunner
    from takt.projections.tables import WorkspaceTables
    con = storage.duckdb_connection("the model factory computes features")  # registry and scores: any engine
    config = ProfileConfig.from_settings(settings)
    runner = ProfileRunner(storage, config, clock)
    runner.load()
    runner.catch_up()
    WorkspaceTables(storage, runner, computed=[]).refresh()  # the tables the projection keeps, made current
    prepare(con)
    return con
