"""Which identifiers an event carries. All of them are linked: they name one person.

Sources, in this order: ``userId`` (also as the ``identity.user_id_is`` type when set), ``anonymousId``, ``previousId`` of an ``alias`` (taken as an
``anonymous_id``, the Segment use: the id the visitor had before), the trait names of each type in
``traits`` (identify) and ``context.traits`` (any call; Segment and RudderStack both put them there), the
type's ``context`` paths (``device.id``), and for ``record`` events ``properties.identifiers`` and
``properties.traits``. Invalid values are dropped. Derived and unmerge events carry none.

**Claims.** An event with trust ``public`` (a browser or app key anyone can read) asserts its traits; it does not
vouch for them. Its identifiers are only ``userId``, ``anonymousId``, ``previousId`` and the ``context`` paths
(the sender's own ids: a login links a device that way); an email, phone, handle, CRM id or any other identifier
in its traits, ``context.traits`` or record fields is a *claim*. Claims link nobody: the profile fold records them
on the sender's own profile, marked as claims (see ``docs/profiles.md``). ``server`` and ``verified`` events
keep every identifier.

The result is ordered by type priority (see :class:`~takt.identity.config.IdentityConfig`); its first
element is the event's **anchor**: the event belongs to the anchor's profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from takt.events.model import Event
from takt.identity.config import IdentityConfig
from takt.identity.identifiers import identifier_type, make_identifier
from takt.identity.kinds import RECORD, UNMERGE

NO_IDENTITY_KINDS: set[str] = {UNMERGE}
"""Kinds that never carry identifiers; other packages add their derived kinds here."""


@lru_cache(maxsize=256)
def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def _path(mapping: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = mapping
    for part in _parts(dotted):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def identifiers_of(event: Event, config: IdentityConfig) -> tuple[str, ...]:
    if event.kind in NO_IDENTITY_KINDS:
        return ()
    found: list[str] = []

    def add(type_name: str, raw: Any) -> None:
        if raw is None or raw == "":
            return
        ident = make_identifier(type_name, raw, config)
        if ident is not None and ident not in found:
            found.append(ident)

    add("user_id", event.user_id)
    if config.user_id_is:
        add(config.user_id_is, event.user_id)
    add("anonymous_id", event.anonymous_id)
    if event.kind == "alias":
        add("anonymous_id", event.previous_id)
    trait_maps: list[Mapping[str, Any]] = []
    claim = event.is_claim
    if event.traits and not claim:
        trait_maps.append(event.traits)
    ctx_traits = event.context.get("traits") if event.context else None
    if isinstance(ctx_traits, Mapping) and not claim:
        trait_maps.append(ctx_traits)
    if event.kind == RECORD and not claim:
        ids = event.properties.get("identifiers")
        if isinstance(ids, Mapping):
            for type_name, raw in ids.items():
                if type_name in config.types:
                    add(type_name, raw)
        rec_traits = event.properties.get("traits")
        if isinstance(rec_traits, Mapping):
            trait_maps.append(rec_traits)
    for traits in trait_maps:
        for type_name, name in config.trait_sources:
            raw = traits.get(name)
            if raw is not None:
                add(type_name, raw)
    if event.context:
        for type_name, path in config.context_sources:
            add(type_name, _path(event.context, path))
    if len(found) < 2:
        return tuple(found)
    prio = config.priority
    # A unique type keeps only its first value in one event: one event cannot name two such values.
    seen_unique: set[str] = set()
    out: list[str] = []
    for ident in sorted(found, key=lambda i: prio[identifier_type(i)]):
        ty = identifier_type(ident)
        if config.is_unique(ty):
            if ty in seen_unique:
                continue
            seen_unique.add(ty)
        out.append(ident)
    return tuple(out)
