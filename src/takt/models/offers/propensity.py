"""Where an offer's propensity comes from: behind one small interface.

An offer may name a ``model`` (a model of the model factory, e.g. ``purchase_30d:category:outdoor``).
When the model factory has scored the person (``takt.models.scoring``: the latest batch score per profile and
model), the offer's propensity is that score (source ``model:NAME@vVERSION``); otherwise, and for offers that
name no model, it is the documented fallback **1.0** (source ``default``): ranking then rests on relevance
and value alone. The person's scores are read once per ranking, and only when an offer names a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from takt.models.offers.catalog import Offer
from takt.models.offers.rank import Propensity
from takt.storage.base import Storage

DEFAULT: Propensity = (1.0, "default")

ScoreReader = Callable[[Storage, str], Mapping[str, tuple[float, int | None]]]
"""Reads one person's scores: ``(storage, profile_id) → {model: (score in [0, 1], version)}``."""


def factory_scores(storage: Storage, profile_id: str) -> Mapping[str, tuple[float, int | None]]:
    """The model factory's latest scores of the person."""
    from takt.models.scoring import registry_of

    return {m: (float(sc), int(v)) for m, v, sc, _ in registry_of(storage).scores_of(profile_id)}


_reader: ScoreReader | None = factory_scores


def set_score_reader(reader: ScoreReader | None) -> None:
    """Install (or with ``None`` remove) the function that reads a person's model scores."""
    global _reader
    _reader = reader


def propensity_for(storage: Storage, profile_id: str) -> Callable[[Offer], Propensity]:
    """The propensity of each offer for this person (scores are read at most once, and only when an offer
    names a model)."""
    cache: dict[str, Any] = {}

    def scores() -> Mapping[str, tuple[float, int | None]]:
        if "s" not in cache:
            try:
                cache["s"] = _reader(storage, profile_id) if _reader is not None else {}
            except Exception:  # a missing scores table or a failing reader: fall back, never fail the request
                cache["s"] = {}
        return cache["s"]  # type: ignore[no-any-return]

    def propensity(offer: Offer) -> Propensity:
        if offer.model is None or _reader is None:
            return DEFAULT
        hit = scores().get(offer.model)
        if hit is None:
            return (DEFAULT[0], f"default (no score of {offer.model!r} for this person)")
        score, version = hit
        return (min(1.0, max(0.0, float(score))), f"model:{offer.model}" + (f"@v{version}" if version else ""))

    return propensity
