"""Profile settings: trait ranking, sessions, touchpoints, interests (weights, taxonomy, decay, shifts)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from takt.errors import SettingsError
from takt.events.model import PROVENANCES
from takt.identity.config import IdentityConfig
from takt.privacy.identifying import DEFAULT as DEFAULT_IDENTIFYING
from takt.privacy.identifying import Identifying
from takt.settings import Settings, register

DEFAULT_INTEREST_WEIGHTS: dict[str, float] = {
    "page": 0.5,
    "screen": 0.5,
    "Product Viewed": 1.0,
    "Product Clicked": 1.0,
    "Promotion Clicked": 1.0,
    "Products Searched": 2.0,
    "Product List Viewed": 0.5,
    "Product Added": 3.0,
    "Product Added to Wishlist": 2.0,
    "Product Liked": 2.0,
    "Product Shared": 2.0,
    "Checkout Started": 3.0,
    "Order Completed": 5.0,
    "Email Link Clicked": 1.0,
}

DEFAULT_HALF_LIVES: dict[str, float] = {"default": 30.0, "destination": 21.0}

DEFAULT_SOURCE_CHANNELS: dict[str, str] = {}

TOUCHPOINTS = ("web", "app", "email", "store", "call_center", "chat", "social", "sms", "push", "mail", "other")


def _check_rank(v: Any) -> None:
    if sorted(v) != sorted(PROVENANCES):
        raise ValueError(f"must list each of {', '.join(PROVENANCES)} once, most trusted first")


def _check_weights(v: Any) -> None:
    for k, w in v.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weight of {k!r} must be a number >= 0, got {w!r}")


def _check_half_lives(v: Any) -> None:
    for k, h in v.items():
        if isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h) or h <= 0:
            raise ValueError(f"half-life of {k!r} must be a positive number of days, got {h!r}")


def _check_taxonomy(v: Any) -> None:
    for term, key in v.items():
        if not isinstance(key, str) or ":" not in key or not term.strip():
            raise ValueError(f"taxonomy term {term!r} must map to a key family:value, got {key!r}")


def _check_channels(v: Any) -> None:
    for src, ch in v.items():
        if not isinstance(ch, str) or not ch:
            raise ValueError(f"channel of source {src!r} must be a name, got {ch!r}")


def _non_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v!r}")


def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be positive, got {v!r}")


register("profiles.trait_rank", list(PROVENANCES),
         "Provenances from most to least trusted: when sources disagree on a trait the better-ranked value "
         "wins; among equal rank the later one.", check=_check_rank)
register("profiles.session_minutes", 30,
         "Inactivity that ends a session (events without context.sessionId).", check=_positive)
register("profiles.source_channels", DEFAULT_SOURCE_CHANNELS,
         "Touchpoint of events from a source (write key name → channel, e.g. {pos = \"store\"}) when the "
         "event itself names none.", check=_check_channels)
register("interests.weights", DEFAULT_INTEREST_WEIGHTS,
         "Interest weight added per event: track event name, or `page`/`screen`. Events not listed add none.",
         check=_check_weights)
register("interests.half_life_days", DEFAULT_HALF_LIVES,
         "Half-life of interest scores per key family (the part before `:`); `default` for the rest.",
         check=_check_half_lives)
register("interests.taxonomy", {},
         "Search terms and URL words → interest keys, e.g. {krabi = \"destination:krabi\", "
         "\"new york\" = \"destination:new-york\"}. Matched as whole words, case-insensitive.",
         check=_check_taxonomy)
register("interests.dwell_reference_seconds", 30.0,
         "Dwell time that counts as one full view: a view's weight is scaled by dwell / reference, "
         "between 0.25 and 4.", kind="float", check=_positive)
register("interests.shift_threshold", 2.0,
         "Decayed score a new top interest needs before an `interest_shifted` event is emitted.",
         kind="float", check=_non_negative)
register("interests.shift_margin", 0.1,
         "How much (as a fraction) a new top interest must exceed the previous top's decayed score.",
         kind="float", check=_non_negative)


@dataclass(frozen=True)
class ProfileConfig:
    """Resolved profile settings (and the identity settings the projector needs)."""

    identity: IdentityConfig = field(default_factory=IdentityConfig.build)
    trait_rank: tuple[str, ...] = PROVENANCES
    session_minutes: int = 30
    source_channels: Mapping[str, str] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTEREST_WEIGHTS))
    half_life_days: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HALF_LIVES))
    taxonomy: Mapping[str, str] = field(default_factory=dict)
    dwell_reference_seconds: float = 30.0
    shift_threshold: float = 2.0
    shift_margin: float = 0.1
    identifying: Identifying = DEFAULT_IDENTIFYING
    """Traits and event properties that identify a person (not queryable: :mod:`takt.privacy.identifying`)."""

    def __post_init__(self) -> None:
        for name, value, check in (
            ("profiles.trait_rank", list(self.trait_rank), _check_rank),
            ("profiles.source_channels", dict(self.source_channels), _check_channels),
            ("interests.weights", dict(self.weights), _check_weights),
            ("interests.half_life_days", dict(self.half_life_days), _check_half_lives),
            ("interests.taxonomy", dict(self.taxonomy), _check_taxonomy),
        ):
            try:
                check(value)
            except ValueError as e:
                raise SettingsError(name, str(e)) from None

    @cached_property
    def rank(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.trait_rank)}

    @cached_property
    def taxonomy_terms(self) -> tuple[tuple[str, str], ...]:
        """(normalized term, key), longest terms first."""
        from takt.profiles.interests import words

        terms = {words(t): k for t, k in self.taxonomy.items()}
        return tuple(sorted(terms.items(), key=lambda tk: (-len(tk[0]), tk[0])))

    @cached_property
    def _half_lives(self) -> dict[str, float]:
        return {family: float(days) * 86400.0 for family, days in self.half_life_days.items()}

    def half_life_seconds(self, key: str) -> float:
        """The half-life of the key's family (the part before ``:``), else ``default``, in seconds."""
        hl = self._half_lives
        family = key.partition(":")[0]
        found = hl.get(family)
        return found if found is not None else hl.get("default", 30.0 * 86400.0)

    @staticmethod
    def from_settings(settings: Settings) -> ProfileConfig:
        return ProfileConfig(
            identity=IdentityConfig.from_settings(settings),
            trait_rank=tuple(settings["profiles.trait_rank"]),
            session_minutes=settings["profiles.session_minutes"],
            source_channels=dict(settings["profiles.source_channels"]),
            weights=dict(settings["interests.weights"]),
            half_life_days=dict(settings["interests.half_life_days"]),
            taxonomy=dict(settings["interests.taxonomy"]),
            dwell_reference_seconds=settings["interests.dwell_reference_seconds"],
            shift_threshold=settings["interests.shift_threshold"],
            shift_margin=settings["interests.shift_margin"],
            identifying=Identifying.from_settings(settings),
        )
