"""The suppression list holds keyed hashes of contact points, never the contact points themselves.

A hash is HMAC-SHA256, keyed with the workspace's secret, of ``kind:value`` with the value in its one form
(:func:`~takt.policy.vocab.normalize_contact_value`), hex encoded. The list can then be kept after an erasure
without keeping the address, and cannot be reversed by hashing guesses without the secret. What an entry
blocks depends on why it is there (its scope, see :data:`~takt.policy.suppression_store.SUPPRESSION_SCOPES`):
an unsubscribe or a complaint blocks marketing on the contact point, a hard bounce, an erasure or an operator's
entry blocks every purpose.
"""

from __future__ import annotations

import hashlib
import hmac

from takt.errors import TaktError
from takt.policy.vocab import CONTACT_KINDS, normalize_contact_value


def contact_point_hash(key: bytes, kind: str, value: str) -> str:
    if not isinstance(key, bytes) or not key:
        raise TaktError("the suppression list needs the workspace's secret key (non-empty bytes)",
                        code="invalid_setting", status=500)
    if kind not in CONTACT_KINDS:
        raise TaktError(f"unknown contact point kind {kind!r} (expected one of {', '.join(CONTACT_KINDS)})",
                        code="invalid_contact_point")
    message = f"{kind}:{normalize_contact_value(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
