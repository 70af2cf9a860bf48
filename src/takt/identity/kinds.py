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

from takt.events.model import register_kind

RECORD = register_kind("record", "imported CRM/commerce record")  # same text as takt.ingest.records
UNMERGE = register_kind(
    "identity.unmerge",
    "Undo identity resolution: properties.identifier (split it off) or properties.merge_id (undo a merge).",
)

RECORD_TYPES = ("customer", "order", "case", "product")
