"""The names actually seen in a workspace, for checking definitions and suggesting "did you mean".

A field left ``None`` is not checked (any name goes); a set means names outside it are errors, with the
closest names as suggestions. The lead fills it from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from takt.privacy.identifying import Identifying


@dataclass(frozen=True, slots=True)
class Vocabulary:
    traits: frozenset[str] | None = None
    events: frozenset[str] | None = None
    """Track event names."""
    pages: frozenset[str] | None = None
    """Page and screen names."""
    kinds: frozenset[str] | None = None
    """Event kinds beyond the registered ones (track, page, ... are always known)."""
    properties: frozenset[str] | None = None
    """Event property paths, dotted (``address.city``)."""
    interests: frozenset[str] | None = None
    touchpoints: frozenset[str] | None = None
    segments: frozenset[str] | None = None
    models: frozenset[str] | None = None
    """Models with scores (the accepted ones), for ``score("…")``."""
    untrained_models: frozenset[str] = frozenset()
    """Models that can be trained (declared or discovered targets, rejected or failed models) but have no
    scores yet: ``score("…")`` of one is an error that says to train it."""
    clv_saved: bool | None = None
    """Whether per-profile CLV is stored (``takt clv score``), for ``clv("…")``; ``None``: not checked."""
    identifying: Identifying | None = None
    """The workspace's identifying traits and event properties (:mod:`takt.privacy.identifying`): their values
    are not queryable, so comparing one is an error; ``None``: not checked."""
