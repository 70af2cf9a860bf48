"""Where an offer's propensity comes from: behind one small interface.

An offer may name a ``model`` (a score name of the model factory, e.g. ``purchase_30d:category:outdoor``).
When the model factory's scores for the person are available (``takt.models.scoring``), the offer's
propensity is that score; otherwise, and for offers that name no model, it is the documented fallback
**1.0** (source ``default``): ranking then rests on relevance and value alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from takt.models.offers.catalog import Offer
from takt.models.offers.rank import Propensity
from takt.storage.base import Storage

DEFAULT: Propensity = (1.0, "default")

ScoreReader = Callable[[Storage, str], Mapping[str, float]]
"""Reads one person's scores: ``(storage, profile_id) → {score name: score in [0, 1]}``."""

_reader: ScoreReader | None = None


def set_score_reader(reader: ScoreReader | None) -> None:
    """Install (or with ``None`` remove) the function that reads a person's model scores."""
    global _reader
    _reader = reader


def propensity_for(storage: Storage, profile_id: str) -> Callable[[Offer], Propensity]:
    """The propensity of each offer for this person (scores are read at most once, and only when an offer
    names a model)."""
    cache: dict[str, Any] = {}

    def scores() -> Mapping[str, float]:
        if "s" not in cache:
            try:
                cache["s"] = _reader(storage, profile_id) if _reader is not None else {}
            except Exception:  # a missing scores table or a failing reader: fall back, never fail the request
                cache["s"] = {}
        return cache["s"]  # type: ignore[no-any-return]

    def propensity(offer: Offer) -> Propensity:
        if offer.model is None or _reader is None:
            return DEFAULT
        s = scores().get(offer.model)
        if s is None:
            return (DEFAULT[0], f"default (no score {offer.model!r})")
        return (min(1.0, max(0.0, float(s))), f"model:{offer.model}")

    return propensity
