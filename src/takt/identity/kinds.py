"""The event kinds identity resolution reads besides the Segment calls.

``record`` (registered here and by :mod:`takt.ingest.records` with the same description)
    A row imported from a business system (CRM, shop, service desk); ``provenance`` is usually
    ``crm_import``. ``properties`` by ``record_type``:

    * customer: ``row_key, identifiers {crm_id, email, phone, …}, traits {first_name, …},
      contact_points_customer_given: bool, postal_address {street, postal_code, city, country}``
    * order: ``row_key, identifiers, order_id, revenue, currency, products [{product_id, category, price,
      quantity}], categories, store, status`` (``refunded``/``returned`` count as returns, ``cancelled``
      is ignored)
    * case: ``row_key, identifiers, case_id, status (open|closed), subject, channel, product_id, in_repair``
    * product: ``row_key, product_id, name, category, price, interests`` (no identifiers: not a person)

    Every value in ``identifiers`` (type → value; any type of the ``identity.types`` setting) links the row
    to a person; values are normalized as for events and invalid ones dropped
    (:func:`takt.identity.identifiers.check_identifier` tells the import why).

``identity.unmerge``
    Undo identity resolution for a person: ``properties`` has either ``{"identifier": "email:a@x.com"}``
    (split that identifier off into its own profile) or ``{"merge_id": "mrg_…"}`` (undo that recorded merge:
    the two sides as they were just before it are kept apart from then on). It carries no identifiers itself.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from takt.errors import invalid
from takt.events.model import Event, register_kind
from takt.identity.config import IdentityConfig
from takt.identity.identifiers import parse_identifier

RECORD = register_kind("record", "imported CRM/commerce record")  # same text as takt.ingest.records
UNMERGE = register_kind(
    "identity.unmerge",
    "Undo identity resolution: properties.identifier (split it off) or properties.merge_id (undo a merge).",
)

RECORD_TYPES = ("customer", "order", "case", "product")


def unmerge_event(*, at: datetime, config: IdentityConfig, identifier: str | None = None,
                  merge_id: str | None = None, source: str = "admin", message_id: str | None = None,
                  reason: str | None = None) -> Event:
    """An ``identity.unmerge`` event for the log: exactly one of ``identifier`` (``type:value``, normalized;
    an invalid one is a :class:`~takt.errors.TaktError`) or ``merge_id``. Without a ``message_id`` one is
    derived from the request and ``at``, so a retried request is one event."""
    if (identifier is None) == (merge_id is None):
        raise invalid("an unmerge names exactly one of identifier or merge_id", "invalid_unmerge")
    props: dict[str, str] = {}
    if identifier is not None:
        props["identifier"] = parse_identifier(identifier, config)
    elif merge_id is not None:
        if not merge_id.startswith("mrg_"):
            raise invalid(f"merge_id {merge_id[:40]!r} is not a merge id (mrg_…)", "invalid_unmerge")
        props["merge_id"] = merge_id
    if reason:
        props["reason"] = reason
    if message_id is None:
        key = "\x1f".join((*props.values(), at.isoformat()))
        message_id = "takt-unmerge-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return Event(kind=UNMERGE, message_id=message_id, source=source, timestamp=at, received_at=at,
                 provenance="observed", properties=props)
