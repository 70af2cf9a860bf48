"""Which fields identify a person: declared once, for traits and for event properties.

A trait or event property whose name is declared identifying (emails, phones, names, addresses, social
handles, IP addresses, device ids, identifiers) is personal data that only the sealed log and the profile
state hold. The queryable projections — the segment contract tables and the live evaluator's view of a
profile, which must agree — hold no plaintext of it:

* ``profile_traits.value`` of an identifying trait is :data:`MARKER` (JSON ``true``: "has a value"), so
  ``trait.email exists`` and ``trait.email from customer_provided`` still work; comparing its value
  (``=``, ``in``, ``contains``) is refused when a definition is checked (:mod:`takt.segments.check`);
* ``profile_events.properties`` leaves identifying properties out, at any depth (``traits.email`` of an
  import record goes, ``traits.country`` stays).

Names match case-insensitively and ignoring ``_``, ``-`` and spaces (``firstName`` is ``first_name``); a
pattern ``address.*`` matches ``address`` and everything under it, and a leading ``*`` matches any name that
ends so (``*email`` matches ``billing_email`` and ``contactEmail``). The lists are settings
(``privacy.identifying_traits``, ``privacy.identifying_properties``): to add a field, list it with the
defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from takt.settings import Settings, register

MARKER = True
"""What an identifying trait's value is in every queryable projection (when it has a value)."""
MARKER_JSON = "true"

DEFAULT_TRAITS: tuple[str, ...] = (
    "email", "phone", "mobile", "first_name", "last_name", "name", "full_name", "username", "address.*",
    "street", "postal_code", "postal_address", "ip", "device_id", "advertising_id", "user_id", "anonymous_id",
    "twitter", "instagram", "facebook", "linkedin", "tiktok", "social_handle",
)
DEFAULT_PROPERTIES: tuple[str, ...] = (
    "*email", "*phone", "*mobile", "*first_name", "*last_name", "*full_name", "*username", "*address.*",
    "*street", "recipient", "recipient_name", "customer_name", "contact_name", "holder_name",
    "email", "phone", "mobile", "first_name", "last_name", "full_name", "username", "address.*", "street",
    "postal_code", "postal_address", "ip", "device_id", "advertising_id", "user_id", "anonymous_id",
    "identifier", "identifiers", "row_key", "twitter", "instagram", "facebook", "linkedin", "tiktok",
    "social_handle",
)


def _check_names(v: Any) -> None:
    if not isinstance(v, list) or not all(isinstance(n, str) and n.strip() for n in v):
        raise ValueError("must be a list of field names (a trailing .* matches everything under a name)")


register("privacy.identifying_traits", list(DEFAULT_TRAITS),
         "Traits that identify a person: their values stay sealed in the log and the profile state; the segment "
         "tables hold only that they have a value (`trait.email exists` works, `trait.email = …` is refused). "
         "Case, `_` and `-` are ignored; `address.*` matches `address` and all under it; a leading `*` matches names "
         "ending so (`*email`: `billing_email`). List the defaults too "
         "when adding one.", check=_check_names)
register("privacy.identifying_properties", list(DEFAULT_PROPERTIES),
         "Event properties that identify a person (at any depth of `properties`): left out of the segment "
         "tables' `profile_events.properties` and of what segment conditions can read. Matched as "
         "`privacy.identifying_traits`.", check=_check_names)


def normalize(name: str) -> str:
    """``firstName``, ``first_name``, ``First-Name`` → ``firstname``."""
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


@functools.lru_cache(maxsize=16)
def _names(patterns: tuple[str, ...]) -> _Names:
    return _Names(patterns)


class _Names:
    """Matching of names against the patterns, remembered per name (event properties repeat the same few)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self.exact = frozenset(normalize(p) for p in patterns if not p.endswith(".*") and not p.startswith("*"))
        self.prefixes = tuple(normalize(p[:-2]) for p in patterns if p.endswith(".*") and not p.startswith("*"))
        self.suffixes = tuple(normalize(p[1:].removesuffix(".*")) for p in patterns if p.startswith("*"))
        self._memo: dict[str, bool] = {}

    def match(self, name: str) -> bool:
        """Whether a (dotted) name is identifying: its own name, or one of its path's parts, is listed."""
        found = self._memo.get(name)
        if found is None:
            n = normalize(name)
            parts = n.split(".")
            found = n in self.exact or any(part in self.exact or part in self.prefixes for part in parts) or any(
                n == p or n.startswith(p + ".") for p in self.prefixes) or any(
                part.endswith(x) for part in parts for x in self.suffixes)
            if len(self._memo) < 100_000:
                self._memo[name] = found
        return found


@dataclass(frozen=True)
class Identifying:
    """The identifying trait and property names of a workspace."""

    traits: tuple[str, ...] = DEFAULT_TRAITS
    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    @property
    def _t(self) -> _Names:
        return _names(tuple(self.traits))

    @property
    def _p(self) -> _Names:
        return _names(tuple(self.properties))

    @staticmethod
    def from_settings(settings: Settings) -> Identifying:
        return Identifying(traits=tuple(settings["privacy.identifying_traits"]),
                           properties=tuple(settings["privacy.identifying_properties"]))

    def trait(self, name: str) -> bool:
        return self._t.match(name)

    def property(self, path: str | Iterable[str]) -> bool:
        """Whether a property path (dotted text or its parts) is identifying (or lies under one that is)."""
        dotted = path if isinstance(path, str) else ".".join(path)
        return self._p.match(dotted)

    def trait_value(self, name: str, value: Any) -> Any:
        """A trait's value as the queryable projections hold it: :data:`MARKER` for an identifying trait
        with a value."""
        if value is None or not self.trait(name):
            return value
        return MARKER

    def properties_of(self, props: Mapping[str, Any]) -> Mapping[str, Any]:
        """``props`` without its identifying properties (at any depth); ``props`` itself when it has none."""
        return _strip(props, self._p) if _has(props, self._p) else props


def _has(v: Any, names: _Names) -> bool:
    if type(v) is dict or isinstance(v, Mapping):
        for k, x in v.items():
            if names.match(str(k)):
                return True
            if (type(x) is dict or type(x) is list) and _has(x, names):
                return True
        return False
    if type(v) is list:
        return any((type(x) is dict or type(x) is list) and _has(x, names) for x in v)
    return False


def _strip(v: Any, names: _Names) -> Any:
    if isinstance(v, Mapping):
        return {k: _strip(x, names) for k, x in v.items() if not names.match(str(k))}
    if isinstance(v, list):
        return [_strip(x, names) for x in v]
    return v


DEFAULT = Identifying()
