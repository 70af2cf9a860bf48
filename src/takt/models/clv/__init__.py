"""Customer lifetime value: BG/NBD and Pareto/NBD for purchase frequency and dropout, Gamma-Gamma for spend
(:mod:`takt.models.clv.fit`; ``docs/clv.md``).

The package itself imports nothing heavy: ``clv("…")`` in segments (:mod:`takt.models.clv.segment`) and the
stored figures (:mod:`takt.models.clv.store`) are needed by every segment count, while fitting needs numpy,
pandas and scipy (about 2.5 s of imports). The fitting names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BgNbd", "ClvFit", "GammaGamma", "ParetoNbd", "fit_summary", "fit_transactions"]

_FROM_FIT = {"ClvFit", "fit_summary", "fit_transactions", "CUSTOMER_COLUMNS"}
_MODULES = {"bgnbd", "gammagamma", "paretonbd"}
_CLASSES = {"BgNbd": "bgnbd", "GammaGamma": "gammagamma", "ParetoNbd": "paretonbd"}


def __getattr__(name: str) -> Any:
    if name in _FROM_FIT:
        return getattr(importlib.import_module("takt.models.clv.fit"), name)
    if name in _MODULES:
        return importlib.import_module(f"takt.models.clv.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(f"takt.models.clv.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'takt.models.clv' has no attribute {name!r}")
