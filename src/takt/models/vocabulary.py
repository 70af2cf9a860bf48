"""The names ``score("…")`` and ``clv("…")`` are checked against: models with scores, models that could be
trained but have none yet, and whether CLV is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from takt.storage.base import Storage

STANDARD_TARGETS = ("churn_{h}d", "unsubscribe_{h}d", "service_case_{h}d")
"""Targets discovered in every workspace whatever its data (purchase and response targets depend on it)."""


def model_vocabulary(storage: Storage, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``Vocabulary`` fields: ``models`` (with scores), ``untrained_models`` (registered without scores, declared
    in ``models.targets``, or standard targets), ``clv_saved``. Empty for a storage without model tables."""
    if getattr(storage, "backend", None) not in ("duckdb", "postgres"):
        return {}
    from takt.models.clv.store import SCORES
    from takt.models.offers._db import Sql
    from takt.models.scoring import registry_of

    registry = registry_of(storage)
    scored = frozenset(registry.scored_models())
    possible = {r.model for r in registry.latest()}
    if settings is not None:
        h = int(settings["models.horizon_days"])
        possible |= {str(t["name"]) for t in settings["models.targets"]}
        if settings["models.discover"]:
            possible |= {t.format(h=h) for t in STANDARD_TARGETS}
    return {"models": scored, "untrained_models": frozenset(possible) - scored,
            "clv_saved": Sql(storage).has_table(SCORES)}
