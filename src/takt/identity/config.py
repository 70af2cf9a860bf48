"""Identity settings: which identifier types exist, which are unique per person, where they come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import phonenumbers

from takt.errors import SettingsError
from takt.settings import Settings, register

BUILTIN_TYPES = ("user_id", "anonymous_id", "email", "phone")
NORMALIZERS = ("exact", "trim", "email", "phone", "handle")

DEFAULT_TYPES: dict[str, Any] = {
    "crm_id": {"unique": True, "traits": ["crm_id", "crmId"]},
    "loyalty_number": {"unique": True, "traits": ["loyalty_number", "loyaltyNumber"]},
    "device_id": {"unique": False, "traits": [], "context": ["device.id"]},
    "instagram": {"unique": False, "traits": ["instagram"], "normalize": "handle"},
    "facebook": {"unique": False, "traits": ["facebook"], "normalize": "handle"},
    "x": {"unique": False, "traits": ["twitter", "x_handle"], "normalize": "handle"},
    "tiktok": {"unique": False, "traits": ["tiktok"], "normalize": "handle"},
}


def _check_types(value: Any) -> None:
    for name, spec in value.items():
        _type_from(name, spec)


def _check_region(value: Any) -> None:
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {value!r} (use an ISO 3166 code such as DE or US)")


register(
    "identity.types", DEFAULT_TYPES,
    "Identifier types besides user_id, anonymous_id, email and phone: name → {unique: bool (one value per "
    "person; links that would join two values are conflicts), traits: [trait names that carry it], context: "
    "[dotted context paths, e.g. device.id], normalize: exact|trim|email|phone|handle}.",
    check=_check_types,
)
register("identity.user_id_is", "",
         "An identifier type every userId also is, e.g. crm_id when the login id (and the store's customer "
         "number) is the CRM customer number: events with a userId then meet imported records by that type. "
         "Empty: none (userId is only a user_id).")
register("identity.phone_region", "DE",
         "Region assumed for phone numbers written without a country code (ISO 3166 code).",
         check=_check_region)


@dataclass(frozen=True)
class IdentifierType:
    name: str
    unique: bool
    traits: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    normalize: str = "trim"


def _type_from(name: str, spec: Any) -> IdentifierType:
    if not isinstance(name, str) or not name or ":" in name or name in BUILTIN_TYPES:
        raise ValueError(f"identifier type name {name!r} must be a new name without ':'")
    if not isinstance(spec, Mapping):
        raise ValueError(f"identifier type {name!r} must be a table")
    unknown = set(spec) - {"unique", "traits", "context", "normalize"}
    if unknown:
        raise ValueError(f"identifier type {name!r} has unknown keys {sorted(unknown)}")
    unique = spec.get("unique", False)
    traits = spec.get("traits", [])
    context = spec.get("context", [])
    normalize = spec.get("normalize", "trim")
    if not isinstance(unique, bool):
        raise ValueError(f"identifier type {name!r}: unique must be true or false")
    for label, seq in (("traits", traits), ("context", context)):
        if not isinstance(seq, list) or not all(isinstance(t, str) and t for t in seq):
            raise ValueError(f"identifier type {name!r}: {label} must be a list of names")
    if normalize not in NORMALIZERS:
        raise ValueError(f"identifier type {name!r}: normalize must be one of {', '.join(NORMALIZERS)}")
    return IdentifierType(name, unique, tuple(traits), tuple(context), normalize)


_BUILTINS = {
    "user_id": IdentifierType("user_id", True, (), (), "exact"),
    "anonymous_id": IdentifierType("anonymous_id", False, (), (), "exact"),
    "email": IdentifierType("email", False, ("email",), (), "email"),
    "phone": IdentifierType("phone", False, ("phone",), (), "phone"),
}


@dataclass(frozen=True)
class IdentityConfig:
    """Resolved identity settings. ``priority`` orders types: an event belongs to the profile of its first."""

    types: Mapping[str, IdentifierType] = field(default_factory=lambda: dict(_BUILTINS))
    phone_region: str = "DE"
    user_id_is: str = ""
    """A type every ``userId`` also is (``identity.user_id_is``; empty: none)."""

    @cached_property
    def priority(self) -> dict[str, int]:
        return _priority(tuple(self.types.values()))

    @staticmethod
    def build(types: Mapping[str, Any] | None = None, phone_region: str = "DE",
              user_id_is: str = "") -> IdentityConfig:
        out: dict[str, IdentifierType] = dict(_BUILTINS)
        for name, spec in (DEFAULT_TYPES if types is None else types).items():
            out[name] = _type_from(name, spec)
        if user_id_is and (user_id_is not in out or user_id_is in ("user_id", "anonymous_id")):
            raise ValueError(f"identity.user_id_is: {user_id_is!r} is not an identifier type besides user_id and "
                             f"anonymous_id (types: {', '.join(sorted(out))})")
        return IdentityConfig(out, phone_region.upper(), user_id_is)

    @staticmethod
    def from_settings(settings: Settings) -> IdentityConfig:
        try:
            return IdentityConfig.build(settings["identity.types"], settings["identity.phone_region"],
                                        settings["identity.user_id_is"])
        except ValueError as e:
            name = "identity.user_id_is" if str(e).startswith("identity.user_id_is") else "identity.types"
            raise SettingsError(name, str(e)) from None

    @cached_property
    def trait_sources(self) -> tuple[tuple[str, str], ...]:
        """(type, trait name) pairs, in type order: where identifiers hide in traits."""
        return tuple((t.name, tn) for t in self.types.values() for tn in t.traits)

    @cached_property
    def context_sources(self) -> tuple[tuple[str, str], ...]:
        """(type, dotted context path) pairs."""
        return tuple((t.name, path) for t in self.types.values() for path in t.context)

    def is_unique(self, type_name: str) -> bool:
        t = self.types.get(type_name)
        return bool(t and t.unique)


def _priority(types: tuple[IdentifierType, ...]) -> dict[str, int]:
    """user_id, other unique types by name, email, phone, other types by name, anonymous_id last."""
    def group(t: IdentifierType) -> tuple[int, str]:
        if t.name == "user_id":
            return (0, "")
        if t.unique:
            return (1, t.name)
        if t.name == "email":
            return (2, "")
        if t.name == "phone":
            return (3, "")
        if t.name == "anonymous_id":
            return (5, "")
        return (4, t.name)

    return {t.name: i for i, t in enumerate(sorted(types, key=group))}
