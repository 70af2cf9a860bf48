"""Finding a customer by name or part of an identifier, over the profile projection.

The log seals identifying values, so search never reads it: it scans what the projection holds today, in profile
id order — every identifier of a profile's identity cluster (``type:value`` as normalized, e.g.
``email:ann@example.com``, ``user_id:…``, ``phone:+49…``), its profile id, and the string values of its traits
(``name``, ``first_name``, ``city``, …). A match is a case-insensitive substring. An erased person's identifiers
and traits are gone from the projection, so they are not found. The scan costs one pass over the profiles (it
stops once a page is full): an operator's tool, not a serving path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from takt.identity.resolver import Cluster
from takt.profiles.state import ProfileState

NAME_TRAITS = ("name", "full_name", "fullName")
FIRST_LAST = (("first_name", "last_name"), ("firstName", "lastName"))


def _trait_value(raw: Any) -> Any:
    return raw.get("value") if isinstance(raw, dict) else raw


def display_name(state: ProfileState) -> str | None:
    """The profile's name as its traits give it (``name``, or first and last name), if any."""
    for t in NAME_TRAITS:
        v = _trait_value(state.traits.get(t))
        if isinstance(v, str) and v.strip():
            return v
    for first, last in FIRST_LAST:
        parts = [_trait_value(state.traits.get(t)) for t in (first, last)]
        words = [p for p in parts if isinstance(p, str) and p.strip()]
        if words:
            return " ".join(words)
    return None


def matches(state: ProfileState, cluster: Cluster | None, query: str) -> list[dict[str, str]]:
    """What of the profile matches ``query`` (lower-cased): ``{"field", "value"}`` pairs, empty for none."""
    found: list[dict[str, str]] = []
    if query in state.id.lower():
        found.append({"field": "id", "value": state.id})
    for ident in cluster.identifiers if cluster is not None else ():
        if query in ident.lower():
            found.append({"field": "identifier", "value": ident})
    for name, raw in sorted(state.traits.items()):
        v = _trait_value(raw)
        if isinstance(v, str) and query in v.lower():
            found.append({"field": f"trait:{name}", "value": v})
    return found


def search(states: Iterable[ProfileState], clusters: dict[str, Cluster], query: str, after: str | None,
           limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The profiles (in id order, after ``after``) matching ``query``: a page of at most ``limit`` and the id
    to continue after (None on the last page)."""
    q = query.strip().lower()
    page: list[dict[str, Any]] = []
    for state in states:
        if after is not None and state.id <= after:
            continue
        cluster = clusters.get(state.id)
        found = matches(state, cluster, q)
        if not found:
            continue
        if len(page) == limit:
            return page, page[-1]["id"]
        page.append({"id": state.id, "name": display_name(state),
                     "identifiers": list(cluster.identifiers) if cluster is not None else [],
                     "matched": found, "events": len(state.positions)})
    return page, None
