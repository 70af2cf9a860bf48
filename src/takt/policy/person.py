"""What policy knows about one person: :class:`PolicyPerson` and its :class:`ContactPoint` values.

The shell fills these from the profile and the person's events (:func:`~takt.policy.consent.fold_consent`,
:func:`~takt.policy.messages.fold_messages`); policy reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from takt.errors import TaktError
from takt.events.model import PROVENANCES
from takt.policy.config import zone
from takt.policy.consent import EMPTY, ConsentLedger
from takt.policy.messages import MessageRecord
from takt.policy.vocab import CHANNELS, CONTACT_KINDS, normalize_contact_value
from takt.text import article


def _bad(message: str) -> TaktError:
    return TaktError(message, code="invalid_policy_input")


@dataclass(frozen=True, slots=True)
class ContactPoint:
    """An address the person can be reached at.

    ``provenance`` is the most trusted provenance any event gave the value (``customer_provided``,
    ``crm_import``, ``observed``, ``third_party``); ``customer_given`` marks a ``crm_import`` value the
    business system records as given by the customer (``contact_points_customer_given`` on the imported row).
    ``value`` is kept in its one form (see :func:`~takt.policy.vocab.normalize_contact_value`).
    ``claim`` marks a contact point only public events asserted (a visitor's claim, see ``docs/policy.md``):
    shown, never used.
    """

    kind: str
    value: str
    provenance: str
    customer_given: bool = False
    verified: bool = False
    claim: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CONTACT_KINDS:
            raise _bad(f"unknown contact point kind {self.kind!r} (expected one of {', '.join(CONTACT_KINDS)})")
        if self.provenance not in PROVENANCES:
            raise _bad(f"unknown provenance {self.provenance!r} (expected one of {', '.join(PROVENANCES)})")
        if not isinstance(self.value, str) or not self.value.strip():
            raise _bad(f"{article(self.kind)} contact point needs a non-empty value")
        object.__setattr__(self, "value", normalize_contact_value(self.kind, self.value))

    @property
    def given_by_customer(self) -> bool:
        """Did the customer give this company this contact point? The flag cannot vouch for observed or
        third-party values."""
        return self.provenance == "customer_provided" or (self.provenance == "crm_import" and self.customer_given)


@dataclass(frozen=True, slots=True)
class PolicyPerson:
    """Everything policy needs about one person.

    * ``contact_points``: every known address with its provenance;
    * ``consent``: the folded consent ledger;
    * ``messages``: the person's messages (from ``message`` events; the pressure window's worth is enough);
    * ``touchpoints``: engagement per channel (e.g. opens, clicks, replies), for channel choice;
    * ``preferred_channel``: the channel the customer said they prefer, if any;
    * ``time_zone``: IANA name, or ``None`` for the ``policy.default_time_zone`` setting;
    * ``complaints``: times the person complained (besides those the messages record);
    * ``suppressed``: suppression-list hashes (see :mod:`takt.policy.suppression`) that block every purpose
      (hard bounces, erasures, operators' entries); the whole list or just the entries matching this person's
      contact points;
    * ``suppressed_marketing``: hashes that block marketing only (unsubscribes, complaints).
    """

    person_id: str = ""
    contact_points: tuple[ContactPoint, ...] = ()
    consent: ConsentLedger = EMPTY
    messages: tuple[MessageRecord, ...] = ()
    touchpoints: Mapping[str, int] = field(default_factory=dict)
    preferred_channel: str | None = None
    time_zone: str | None = None
    complaints: tuple[datetime, ...] = ()
    suppressed: frozenset[str] = frozenset()
    suppressed_marketing: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_points", tuple(self.contact_points))
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "complaints", tuple(self.complaints))
        object.__setattr__(self, "suppressed", frozenset(self.suppressed))
        object.__setattr__(self, "suppressed_marketing", frozenset(self.suppressed_marketing))
        if not all(isinstance(cp, ContactPoint) for cp in self.contact_points):
            raise _bad("contact_points must be ContactPoint values")
        if not isinstance(self.consent, ConsentLedger):
            raise _bad("consent must be a ConsentLedger (see takt.policy.consent.fold_consent)")
        for channel, count in self.touchpoints.items():
            if channel not in CHANNELS:
                raise _bad(f"touchpoints: unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise _bad(f"touchpoints: the count for {channel} must be a whole number ≥ 0, got {count!r}")
        object.__setattr__(self, "touchpoints", MappingProxyType(dict(self.touchpoints)))
        if self.preferred_channel is not None and self.preferred_channel not in CHANNELS:
            raise _bad(f"unknown preferred channel {self.preferred_channel!r} (expected one of "
                       f"{', '.join(CHANNELS)})")
        if self.time_zone is not None:
            zone(self.time_zone)
        for t in self.complaints:
            if not isinstance(t, datetime) or t.tzinfo is None:
                raise _bad("complaint times must be timezone-aware datetimes")
