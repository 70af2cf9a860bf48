"""Identifiers: typed strings ``type:value`` with one normal form per type.

* ``email``: trimmed and lowercased; must look like ``local@domain.tld``.
* ``phone``: E.164 (``+4930123456``) via ``phonenumbers``; numbers without a country code use the
  ``identity.phone_region`` setting. Numbers that are not valid for their region are not identifiers.
* ``handle`` types (social handles): trimmed, lowercased, without a leading ``@``.
* ``user_id``/``anonymous_id`` (``exact``) are kept as sent; other types are trimmed.

Invalid values never become identifiers; :func:`check_identifier` says why (the import reports it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from takt.errors import invalid
from takt.identity.config import IdentityConfig

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_VALUE = 1024


@dataclass(frozen=True)
class IdentifierCheck:
    """The outcome of normalizing one raw value: ``identifier`` when valid, else ``reason``."""

    type: str
    raw: Any
    identifier: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.identifier is not None


def normalize_email(raw: str) -> str | None:
    v = raw.strip().lower()
    return v if _EMAIL.match(v) else None


def normalize_phone(raw: str, region: str) -> str | None:
    try:
        num = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def check_identifier(type_name: str, raw: Any, config: IdentityConfig) -> IdentifierCheck:
    """Normalize ``raw`` as an identifier of ``type_name``; never raises."""
    t = config.types.get(type_name)
    if t is None:
        return IdentifierCheck(type_name, raw, None, f"unknown identifier type {type_name!r}")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return IdentifierCheck(type_name, raw, None, f"{type_name} must be a string")
    s = str(raw)
    if len(s) > MAX_VALUE:
        return IdentifierCheck(type_name, raw, None, f"{type_name} is longer than {MAX_VALUE} characters")
    value: str | None
    if t.normalize == "email":
        value = normalize_email(s)
        reason = f"not an email address: {s[:60]!r}"
    elif t.normalize == "phone":
        value = normalize_phone(s, config.phone_region)
        reason = f"not a valid phone number (region {config.phone_region}): {s[:40]!r}"
    elif t.normalize == "handle":
        value = s.strip().lstrip("@").lower() or None
        reason = f"empty {type_name}"
    elif t.normalize == "exact":
        value = s if s else None
        reason = f"empty {type_name}"
    else:
        value = s.strip() or None
        reason = f"empty {type_name}"
    if value is None:
        return IdentifierCheck(type_name, raw, None, reason)
    return IdentifierCheck(type_name, raw, f"{type_name}:{value}")


_MEMO_LIMIT = 200_000
_MEMOS: dict[int, tuple[IdentityConfig, dict[tuple[str, str | int], str | None]]] = {}


def _memo(config: IdentityConfig) -> dict[tuple[str, str | int], str | None]:
    found = _MEMOS.get(id(config))
    if found is None or found[0] is not config:
        if len(_MEMOS) >= 32:
            _MEMOS.clear()
        found = _MEMOS[id(config)] = (config, {})  # holds the config: its id cannot be reused meanwhile
    return found[1]


def make_identifier(type_name: str, raw: Any, config: IdentityConfig) -> str | None:
    """The normalized identifier, or ``None`` when ``raw`` is not a valid value of the type. Normal forms are
    memoized per config (phone parsing especially is slow, and the same values come back with every event)."""
    if raw is None:
        return None
    t = config.types.get(type_name)
    if t is not None and t.normalize == "exact" and isinstance(raw, str) and 0 < len(raw) <= MAX_VALUE:
        return f"{type_name}:{raw}"  # the common case (userId, anonymousId), without the checks' overhead
    if type(raw) is not str and type(raw) is not int:
        return check_identifier(type_name, raw, config).identifier
    memo = _memo(config)
    key = (type_name, raw)
    if key in memo:
        return memo[key]
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    found = memo[key] = check_identifier(type_name, raw, config).identifier
    return found


def split_identifier(identifier: str) -> tuple[str, str]:
    type_name, sep, value = identifier.partition(":")
    if not sep:
        raise invalid(f"identifier {identifier!r} must be written type:value", "invalid_identifier")
    return type_name, value


def parse_identifier(text: str, config: IdentityConfig) -> str:
    """A user-written ``type:value`` in normal form; a :class:`~takt.errors.TaktError` when invalid."""
    type_name, value = split_identifier(text)
    check = check_identifier(type_name, value, config)
    if check.identifier is None:
        raise invalid(f"invalid identifier {text[:80]!r}: {check.reason}", "invalid_identifier")
    return check.identifier


def identifier_type(identifier: str) -> str:
    return identifier.partition(":")[0]


def check_identifiers(values: Mapping[str, Any], config: IdentityConfig) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Validate a ``{type: raw value}`` mapping (an import row's identifiers): the valid ones as
    ``{type: identifier}`` and one ``{"field", "reason"}`` problem per invalid one (empty values are absent,
    not problems)."""
    valid: dict[str, str] = {}
    problems: list[dict[str, Any]] = []
    for type_name, raw in values.items():
        if raw is None or raw == "":
            continue
        check = check_identifier(type_name, raw, config)
        if check.identifier is not None:
            valid[type_name] = check.identifier
        else:
            problems.append({"field": type_name, "reason": check.reason})
    return valid, problems
