"""The event kinds identity resolution reads besides the Segment calls.

``record``
    A row imported from a business system (CRM, shop, service desk). ``properties``::

        {"record_type": "customer" | "order" | "case" | "product",
         "row_key": "C1",                                   # the row's key in its system
         "identifiers": {"crm_id": "C1", "email": "a@x.com", "phone": "+49 30 1234567"},
         "traits": {"first_name": "Ada", ...},              # customer rows
         "contact_points_customer_given": true}             # customer rows: the customer gave these contacts

    Every identifier in ``identifiers`` links the row to a person (values are normalized as for events;
    invalid ones are dropped, see :func:`takt.identity.identifiers.check_identifier`). Order rows carry
    ``order_id``, ``revenue``/``total``, ``currency``, ``categories``/``products``; case rows ``case_id`` and
    ``status`` (``open``/``closed``), optionally ``product_in_repair``.

``identity.unmerge``
    Undo identity resolution for a person: ``properties`` has either ``{"identifier": "email:a@x.com"}``
    (split that identifier off into its own profile) or ``{"merge_id": "mrg_…"}`` (undo that recorded merge:
    the two sides as they were just before it are kept apart from then on). It carries no identifiers itself.
"""

from __future__ import annotations

from takt.events.model import register_kind

RECORD = register_kind(
    "record",
    "A row imported from a business system: properties.record_type (customer, order, case, product), "
    "properties.row_key, properties.identifiers {type: value}, properties.traits.",
)
UNMERGE = register_kind(
    "identity.unmerge",
    "Undo identity resolution: properties.identifier (split it off) or properties.merge_id (undo a merge).",
)

RECORD_TYPES = ("customer", "order", "case", "product")
