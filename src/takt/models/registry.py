"""The model registry and the scores table, in the workspace's store (DuckDB or PostgreSQL).

``model_registry`` holds every trained model — accepted, rejected or failed — with its version (1, 2, … per
model name), target, features, training window, metrics, baseline metrics, data fingerprint, drift reference
and the LightGBM model text. The *active* version of a model is its latest accepted one.

``model_scores`` holds the latest batch score of every active model per profile: ``(profile_id, model,
version, score, scored_at)``; writing a model's scores replaces its previous ones in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from takt.errors import TaktError
from takt.storage.base import Storage

SCHEMA_LOCK = 0x74616B7406  # advisory lock while creating the tables on PostgreSQL

_COLUMNS = ("model", "version", "target", "status", "reason", "created_at", "train_cutoff", "valid_cutoff",
            "horizon_days", "features", "spec", "metrics", "baseline", "fingerprint", "params", "reference",
            "engine", "seconds", "model_text")
_JSON = {"target", "features", "spec", "metrics", "baseline", "params", "reference"}


DDL = """
CREATE TABLE IF NOT EXISTS model_registry (
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    target       VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,
    reason       VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL,
    train_cutoff TIMESTAMPTZ,
    valid_cutoff TIMESTAMPTZ,
    horizon_days INTEGER NOT NULL,
    features     VARCHAR NOT NULL,
    spec         VARCHAR NOT NULL,
    metrics      VARCHAR NOT NULL,
    baseline     VARCHAR NOT NULL,
    fingerprint  VARCHAR NOT NULL,
    params       VARCHAR NOT NULL,
    reference    VARCHAR NOT NULL,
    engine       VARCHAR NOT NULL,
    seconds      DOUBLE NOT NULL,
    model_text   VARCHAR,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS model_scores (
    profile_id VARCHAR NOT NULL,
    model      VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    score      DOUBLE NOT NULL,
    scored_at  TIMESTAMPTZ NOT NULL
)
"""
"""No key on the scores: writes replace a model's rows whole, so they stay unique. A profile's scores are
found through a secondary index where the engine keeps one (:meth:`~takt.storage.session.SqlSession.index`)."""


STATUSES = ("accepted", "rejected", "failed")


@dataclass
class ModelRecord:
    model: str
    target: dict[str, Any]
    status: str
    horizon_days: int
    created_at: datetime
    train_cutoff: datetime | None = None
    valid_cutoff: datetime | None = None
    reason: str | None = None
    features: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    seconds: float = 0.0
    model_text: str | None = None
    version: int = 0

    def row(self) -> list[Any]:
        out = []
        for c in _COLUMNS:
            v = getattr(self, c)
            out.append(json.dumps(v) if c in _JSON else v)
        return out

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ModelRecord:
        d = dict(zip(_COLUMNS, row, strict=True))
        for c in _JSON:
            d[c] = json.loads(d[c])
        for c in ("created_at", "train_cutoff", "valid_cutoff"):
            if d[c] is not None:
                d[c] = _utc(d[c])
        d["version"] = int(d["version"])
        d["seconds"] = float(d["seconds"])
        return cls(**d)

    def summary(self) -> dict[str, Any]:
        """The registry entry without the model text and drift reference (what listings show)."""
        return {
            "model": self.model, "version": self.version, "status": self.status, "reason": self.reason,
            "target": self.target, "created_at": _iso(self.created_at), "train_cutoff": _iso(self.train_cutoff),
            "valid_cutoff": _iso(self.valid_cutoff), "horizon_days": self.horizon_days,
            "features": len(self.features), "metrics": self.metrics, "baseline": self.baseline,
            "fingerprint": self.fingerprint, "engine": self.engine, "seconds": round(self.seconds, 3),
        }


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Registry:
    """``model_registry`` and ``model_scores`` of one storage."""

    def __init__(self, storage: Storage):
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)
            s.index("model_scores", ("profile_id",))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return s.execute(sql, params)

    # ---- models ----
    def register(self, record: ModelRecord) -> ModelRecord:
        """Store ``record`` as the next version of its model (the version is assigned here)."""
        if record.status not in STATUSES:
            raise ValueError(f"unknown model status {record.status!r}")
        cols = ", ".join(_COLUMNS)
        marks = ", ".join(["?"] * len(_COLUMNS))
        marks = ", ".join(["?"] * len(_COLUMNS))
        with self.storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK + 1)
            rows = s.execute("SELECT coalesce(max(version), 0) + 1 FROM model_registry WHERE model = ?",
                             [record.model])
            record.version = int(rows[0][0]) if rows else 1
            s.execute(f"INSERT INTO model_registry ({cols}) VALUES ({marks})", record.row())
        return record

    def get(self, model: str, version: int | None = None) -> ModelRecord:
        cols = ", ".join(_COLUMNS)
        if version is None:
            rows = self._query(f"SELECT {cols} FROM model_registry WHERE model = ? ORDER BY version DESC LIMIT 1",
                               [model])
        else:
            rows = self._query(f"SELECT {cols} FROM model_registry WHERE model = ? AND version = ?",
                               [model, version])
        if not rows:
            what = f"model {model!r}" + (f" version {version}" if version is not None else "")
            raise TaktError(f"no {what} in the registry (`takt models list` shows them)", code="not_found",
                            status=404)
        return ModelRecord.from_row(rows[0])

    def records(self, *, with_text: bool = False) -> list[ModelRecord]:
        """Every registry entry, by model then version."""
        cols = ", ".join(c if (with_text or c != "model_text") else "NULL" for c in _COLUMNS)
        rows = self._query(f"SELECT {cols} FROM model_registry ORDER BY model, version")
        return [ModelRecord.from_row(r) for r in rows]

    def latest(self) -> list[ModelRecord]:
        """The latest version of every model, whatever its status."""
        out: dict[str, ModelRecord] = {}
        for r in self.records():
            out[r.model] = r
        return list(out.values())

    def active(self) -> list[ModelRecord]:
        """The latest accepted version of every model (with the model text)."""
        cols = ", ".join(f"r.{c}" for c in _COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM model_registry r JOIN (SELECT model, max(version) AS v FROM model_registry "
            "WHERE status = 'accepted' GROUP BY model) a ON a.model = r.model AND a.v = r.version ORDER BY r.model")
        return [ModelRecord.from_row(r) for r in rows]

    # ---- scores ----
    def write_scores(self, model: str, version: int, profile_ids: Sequence[str], scores: np.ndarray,
                     scored_at: datetime) -> int:
        """Replace ``model``'s scores with these, atomically."""
        return self.replace_scores([(model, version, profile_ids, scores)], scored_at)

    def replace_scores(self, batches: Sequence[tuple[str, int, Sequence[str] | np.ndarray, np.ndarray]],
                       scored_at: datetime) -> int:
        """Replace the scores of every model in ``batches`` (``(model, version, profile_ids, scores)``) in one
        transaction; returns the rows written."""
        for model, _, pids, scores in batches:
            if len(pids) != len(scores):
                raise ValueError(f"model {model!r}: profile ids and scores differ in length")
        models = [b[0] for b in batches]
        if not models:
            return 0
        total = 0
        import pyarrow as pa

        micros = int(scored_at.timestamp() * 1_000_000)
        with self.storage.session(transaction=True) as s:
            s.execute(f"DELETE FROM model_scores WHERE model IN ({', '.join('?' * len(models))})", models)
            for model, version, pids, scores in batches:
                n = len(scores)
                s.insert("model_scores", pa.table({
                    "profile_id": pa.array(np.asarray(pids, dtype=object), pa.string()),
                    "model": pa.array([model] * n, pa.string()),
                    "version": pa.array(np.full(n, version, dtype=np.int32)),
                    "score": pa.array(np.asarray(scores, dtype=np.float64)),
                    "scored_at": pa.array(np.full(n, micros, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC")),
                }))
                total += n
        return total

    def delete_scores(self, model: str) -> None:
        self._query("DELETE FROM model_scores WHERE model = ?", [model])

    def delete_profiles(self, profile_ids: Sequence[str]) -> None:
        """Delete every score of these profiles (an erasure)."""
        if profile_ids:
            self._query("DELETE FROM model_scores WHERE profile_id IN (SELECT unnest(CAST(? AS VARCHAR[])))",
                        [list(profile_ids)])

    def scores_of(self, profile_id: str) -> list[tuple[str, int, float, datetime]]:
        """``(model, version, score, scored_at)`` of a profile, by model."""
        rows = self._query("SELECT model, version, score, scored_at FROM model_scores WHERE profile_id = ? "
                           "ORDER BY model", [profile_id])
        return [(str(m), int(v), float(s), _utc(t)) for m, v, s, t in rows]

    def scores_of_profiles(self, profile_ids: Sequence[str]) -> dict[str, dict[str, tuple[float, int | None]]]:
        """``{profile_id: {model: (score, version)}}`` of these profiles, in one query (for bulk exports)."""
        if not profile_ids:
            return {}
        marks = ", ".join("?" for _ in profile_ids)
        out: dict[str, dict[str, tuple[float, int | None]]] = {}
        for pid, m, v, s in self._query(f"SELECT profile_id, model, version, score FROM model_scores "
                                        f"WHERE profile_id IN ({marks})", list(profile_ids)):
            out.setdefault(str(pid), {})[str(m)] = (float(s), int(v))
        return out

    def score(self, profile_id: str, model: str) -> float | None:
        rows = self._query("SELECT score FROM model_scores WHERE profile_id = ? AND model = ?",
                           [profile_id, model])
        return float(rows[0][0]) if rows else None

    def scored_models(self) -> set[str]:
        """The registered models that have scores: one indexed look-up per model, not a scan of every score."""
        return {r.model for r in self.latest()
                if self._query("SELECT 1 FROM model_scores WHERE model = ? LIMIT 1", [r.model])}

    def score_counts(self) -> dict[str, int]:
        return {str(m): int(n) for m, n in self._query("SELECT model, count(*) FROM model_scores GROUP BY model")}
