"""The names actually seen in a workspace, for checking definitions and suggesting "did you mean".

A field left ``None`` is not checked (any name goes); a set means names outside it are errors, with the
closest names as suggestions. The lead fills it from the store.
"""

from __future__ import annotations

from dataclasses import dataclass


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
