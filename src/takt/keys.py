"""API keys: write keys belong to a source and declare its provenance; read and admin keys read and manage.

A write key also has a **trust** (:data:`WRITE_TRUSTS`): ``public`` for a key that lives in a browser or an app
(anyone can read it, so what it sends is the visitor's *claim*) and ``server`` for a secret key held by a
backend or an import (what it sends is the company's statement). Every event ingested through a key carries
the key's trust (:attr:`takt.events.model.Event.trust`); a public key's event whose ``userId`` carries a valid
identity-verification hash is ``verified`` (:mod:`takt.ingest.verification`).

Keys are random, shown once at creation and stored only as a SHA-256 hash; a key's id is random too and
holds no part of the secret. A :class:`Secret` never prints.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from takt.errors import invalid, not_found
from takt.events.model import PROVENANCE_RANK

KINDS = ("write", "read", "admin")
WRITE_TRUSTS = ("public", "server")
"""A write key's trust: ``public`` (browsers and apps; the default where people create keys) or ``server``."""
STORE_DEFAULT_TRUST = "server"
"""The trust of a write key created through :meth:`KeyStore.create` without one: programmatic callers (imports,
the demo's backend feeds, tests) are backends. The CLI and the HTTP API default to ``public`` instead."""
_PREFIX = {"write": "tk_w_", "read": "tk_r_", "admin": "tk_a_"}


class Secret:
    """A secret string that shows as ``Secret('********')`` in logs, reprs and tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ApiKey:
    id: str
    kind: str
    name: str
    source: str | None
    provenance: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    trust: str | None = None
    """Write keys: ``public`` or ``server`` (:data:`WRITE_TRUSTS`); ``None`` for read and admin keys."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_key(kind: str) -> tuple[str, Secret]:
    """A fresh key: its id (random, independent of the secret) and the secret to show once."""
    raw = _PREFIX[kind] + secrets.token_urlsafe(24)
    return "key_" + secrets.token_hex(8), Secret(raw)


@dataclass(frozen=True)
class KeyRequest:
    """A validated key request: what the store writes besides the id, hash and times."""

    source: str | None
    provenance: str | None
    trust: str | None


def check_key_request(kind: str, name: str, source: str | None, provenance: str | None,
                      trust: str | None = None) -> KeyRequest:
    """Validate a key request; a write key needs a source (default: its name), a provenance (default:
    observed) and a trust (default: :data:`STORE_DEFAULT_TRUST`)."""
    if kind not in KINDS:
        raise invalid(f"key kind must be one of {', '.join(KINDS)}, got {kind!r}", "invalid_key")
    if not isinstance(name, str) or not name.strip():
        raise invalid("a key needs a name", "invalid_key")
    for label, text in (("name", name), ("source", source)):
        if text is not None and (not isinstance(text, str) or "\x00" in text or len(text) > 200):
            raise invalid(f"a key's {label} is text of at most 200 characters, without NUL", "invalid_key")
    if kind != "write":
        if source or provenance or trust:
            raise invalid("only write keys have a source, provenance and trust", "invalid_key")
        return KeyRequest(None, None, None)
    source = source or name
    provenance = provenance or "observed"
    trust = trust or STORE_DEFAULT_TRUST
    if provenance not in PROVENANCE_RANK:
        raise invalid(
            f"provenance must be one of {', '.join(PROVENANCE_RANK)}, got {provenance!r}", "invalid_key"
        )
    if trust not in WRITE_TRUSTS:
        raise invalid(f"a write key's trust must be one of {', '.join(WRITE_TRUSTS)}, got {trust!r}", "invalid_key")
    return KeyRequest(source, provenance, trust)


# ---- shared by the storage backends ----
KEY_COLUMNS = "id, kind, name, source, provenance, created_at, revoked_at, trust"
"""The columns a backend selects to build an :class:`ApiKey` (never the hash)."""


def key_from_row(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(id=row[0], kind=row[1], name=row[2], source=row[3], provenance=row[4],
                  created_at=row[5], revoked_at=row[6], trust=row[7])


def key_to_revoke(rows: Sequence[tuple[Any, ...]], key_id_or_name: str) -> ApiKey:
    """The one key matching an id or name, or a clear error (none, or a name several keys share)."""
    if not rows:
        raise not_found(f"no key with id or name {key_id_or_name!r}")
    if len(rows) > 1:
        raise not_found(f"several keys are named {key_id_or_name!r}; revoke by id")
    return key_from_row(rows[0])


class KeyStore(ABC):
    @abstractmethod
    def create(self, kind: str, name: str, source: str | None = None, provenance: str | None = None,
               *, now: datetime, trust: str | None = None) -> tuple[ApiKey, Secret]:
        """Create a key; the secret is returned once and stored only hashed. ``trust`` (write keys only):
        ``public`` or ``server`` (the default here, :data:`STORE_DEFAULT_TRUST`)."""

    @abstractmethod
    def lookup(self, raw: str) -> ApiKey | None:
        """The key with this secret, revoked or not; ``None`` if unknown."""

    @abstractmethod
    def list(self) -> list[ApiKey]:
        ...

    @abstractmethod
    def revoke(self, key_id_or_name: str, *, now: datetime) -> ApiKey:
        ...
