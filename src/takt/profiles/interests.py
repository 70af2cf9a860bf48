"""Interests: weighted keys (``family:value``) with exponential decay.

A key's state is ``(score, as_of)`` (``as_of`` in epoch seconds). Adding weight ``w`` at time ``t``::

    score = score · 2^(−(t − as_of) / h) + w,  as_of = t          (t ≥ as_of)
    score = score + w · 2^(−(as_of − t) / h)                      (a late event: as_of stays)

so the score is always Σ wᵢ · 2^(−(as_of − tᵢ)/h), whatever the order the events came in, and reading it at
``now`` is O(1): ``score · 2^(−(now − as_of)/h)``. ``h`` is the half-life of the key's family (the part
before ``:``). Without new events a score only falls; renewed interest raises it again.

Keys come from ``properties.interests`` (list) and ``properties.interest`` (a key, or a word taken through the
taxonomy, else ``topic:<slug>``), ``properties.category``/``categories`` and the categories of
``properties.products`` (``category:<slug>``), page paths (``context.page.path``/``properties.path``, else the URL's path) and
search queries (``properties.query``) through the ``interests.taxonomy`` setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from takt.events.model import Event
from takt.identity.resolver import aware

if TYPE_CHECKING:
    from takt.profiles.config import ProfileConfig

_NON_WORD = re.compile(r"[^0-9a-z]+")

MIN_DWELL_FACTOR = 0.25
MAX_DWELL_FACTOR = 4.0


def words(text: str) -> str:
    """Lowercased words separated by single spaces ("/Destinations/New-York" → "destinations new york")."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def slug(text: str) -> str:
    return "-".join(words(text).split())


class _Memo:
    """Per-config memo of pure string functions the fold calls for every event (the same few page paths,
    search terms and categories come back millions of times). Bounded: cleared when it grows too large."""

    __slots__ = ("config", "half_lives", "keys", "taxonomy")

    LIMIT = 200_000

    def __init__(self, config: ProfileConfig) -> None:
        self.config = config  # held, so the id it is filed under cannot be reused while it lives
        self.keys: dict[tuple[Any, str], tuple[str, ...]] = {}
        self.taxonomy: dict[str, tuple[str, ...]] = {}
        self.half_lives: dict[str, float] = {}


_MEMOS: dict[int, _Memo] = {}


def memo(config: ProfileConfig) -> _Memo:
    m = _MEMOS.get(id(config))
    if m is None or m.config is not config:
        if len(_MEMOS) >= 32:
            _MEMOS.clear()
        m = _MEMOS[id(config)] = _Memo(config)
    return m


def half_life(key: str, config: ProfileConfig) -> float:
    """``config.half_life_seconds(key)``, memoized per key."""
    cache = memo(config).half_lives
    found = cache.get(key)
    if found is None:
        if len(cache) >= _Memo.LIMIT:
            cache.clear()
        found = cache[key] = config.half_life_seconds(key)
    return found


def _taxonomy(text: str, config: ProfileConfig) -> tuple[str, ...]:
    if not config.taxonomy_terms:
        return ()
    cache = memo(config).taxonomy
    found = cache.get(text)
    if found is None:
        padded = f" {words(text)} "
        out: list[str] = []
        for term, key in config.taxonomy_terms:
            if term and f" {term} " in padded and key not in out:
                out.append(key)
        if len(cache) >= _Memo.LIMIT:
            cache.clear()
        found = cache[text] = tuple(out)
    return found


def taxonomy_keys(text: str, config: ProfileConfig) -> list[str]:
    """The taxonomy keys whose terms occur in ``text`` as whole words."""
    return list(_taxonomy(text, config))


def _as_key_uncached(raw: str, family: str, config: ProfileConfig) -> tuple[str, ...]:
    if ":" in raw:
        fam, _, value = raw.partition(":")
        s, f = slug(value), slug(fam)
        return (f"{f}:{s}",) if s and f else ()
    mapped = _taxonomy(raw, config)
    if mapped:
        return mapped
    s = slug(raw)
    return (f"{family}:{s}",) if s else ()


def _as_key(raw: Any, family: str, config: ProfileConfig, cache: dict[tuple[Any, str], tuple[str, ...]] | None = None
            ) -> tuple[str, ...]:
    if not isinstance(raw, str) or not raw.strip():
        return ()
    if cache is None:
        cache = memo(config).keys
    found = cache.get((raw, family))
    if found is None:
        if len(cache) >= _Memo.LIMIT:
            cache.clear()
        found = cache[(raw, family)] = _as_key_uncached(raw, family, config)
    return found


def interest_keys(event: Event, config: ProfileConfig) -> list[str]:
    """The interest keys an event is about, without duplicates, in a fixed order."""
    p = event.properties
    keys: list[str] = []
    cache = memo(config).keys

    def add(ks: Iterable[str]) -> None:
        for k in ks:
            if k not in keys:
                keys.append(k)

    raw_list = p.get("interests")
    if isinstance(raw_list, list):
        for item in raw_list:
            add(_as_key(item, "topic", config, cache))
    if "interest" in p:
        add(_as_key(p["interest"], "topic", config, cache))
    if "category" in p:
        add(_as_key(p["category"], "category", config, cache))
    cats = p.get("categories")
    if isinstance(cats, list):
        for c in cats:
            add(_as_key(c, "category", config, cache))
    products = p.get("products")
    if isinstance(products, list):
        for prod in products:
            if isinstance(prod, Mapping):
                add(_as_key(prod.get("category"), "category", config, cache))
    if config.taxonomy_terms:
        for text in (_page_path(event), p.get("query")):
            if isinstance(text, str) and text:
                add(_taxonomy(text, config))
    return keys


def _page_path(event: Event) -> str | None:
    """``context.page.path``, ``properties.path``, else the path of ``context.page.url``/``properties.url``."""
    page = event.context.get("page") if event.context else None
    page = page if isinstance(page, Mapping) else {}
    for value in (page.get("path"), event.properties.get("path")):
        if isinstance(value, str) and value:
            return value
    for value in (page.get("url"), event.properties.get("url")):
        if isinstance(value, str) and value:
            try:
                return urlsplit(value).path
            except ValueError:
                return None
    return None


def event_weight(event: Event, config: ProfileConfig) -> float:
    """The weight the event adds to each of its keys (0: it adds none)."""
    name = event.event if event.kind == "track" else event.kind
    base = config.weights.get(name or "", 0.0)
    if base <= 0:
        return 0.0
    dwell = event.properties.get("dwell_seconds", event.properties.get("duration"))
    if isinstance(dwell, int | float) and not isinstance(dwell, bool) and dwell >= 0:
        factor = min(MAX_DWELL_FACTOR, max(MIN_DWELL_FACTOR, float(dwell) / config.dwell_reference_seconds))
        return float(base) * factor
    return float(base)


# ---- decay ----
def decay(score: float, as_of: float, now: float, half_life_seconds: float) -> float:
    if now <= as_of:
        return score
    return score * 2.0 ** (-(now - as_of) / half_life_seconds)


def add_weight(entry: list[float] | None, weight: float, t: float, half_life_seconds: float) -> list[float]:
    """A key's new ``[score, as_of]`` after adding ``weight`` at ``t`` (see the module docstring)."""
    if entry is None:
        return [weight, t]
    score, as_of = entry
    if t >= as_of:
        return [decay(score, as_of, t, half_life_seconds) + weight, t]
    return [score + weight * 2.0 ** (-(as_of - t) / half_life_seconds), as_of]


def decayed(interests: Mapping[str, list[float]], now: datetime | float, config: ProfileConfig
            ) -> list[tuple[str, float]]:
    """Every key's score decayed to ``now``, highest first (ties by key)."""
    ts = aware(now).timestamp() if isinstance(now, datetime) else float(now)
    scored = [(k, decay(s, a, ts, config.half_life_seconds(k))) for k, (s, a) in interests.items()]
    scored.sort(key=lambda ks: (-ks[1], ks[0]))
    return scored
