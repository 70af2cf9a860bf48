"""Identity verification: how a browser's claim "I am user 42" becomes trustworthy.

A public write key lives in a web page, so anyone can send ``userId: "42"`` with it. The company's backend,
which knows who is logged in, computes ``userHash = hex(HMAC-SHA256(verification secret, userId))`` and gives it
to the page; the page sends it as ``context.userHash``. takt recomputes it: a match makes the event
``verified`` (the backend vouched for the userId), a mismatch refuses the item, and no hash leaves the event
``public`` (a claim). Server keys are trusted already and ignore the field. The same scheme as Intercom's
``user_hash``.

Pure functions: the secret is given (the workspace keeps it, :mod:`takt.workspace`).
"""

from __future__ import annotations

import hmac

USER_HASH = "userHash"
"""The ``context`` field carrying the hash."""


class VerificationError(ValueError):
    """The hash is there but does not vouch for this event's userId."""


def user_hash(secret: str, user_id: str) -> str:
    """The hash the company's backend computes for a logged-in user: hex HMAC-SHA256 keyed by the secret's
    UTF-8 bytes, over the userId's UTF-8 bytes."""
    return hmac.digest(secret.encode("utf-8"), user_id.encode("utf-8"), "sha256").hex()


def trust_of(key_trust: str, user_id: str | None, claimed_hash: object, secret: str | None) -> str:
    """The trust of one event sent with a key of ``key_trust``: ``verified`` when a public key's event carries a
    valid hash of its userId, else the key's. Raises :class:`VerificationError` naming the problem when a public
    key's event carries a hash that does not verify."""
    if key_trust != "public" or claimed_hash is None:
        return key_trust
    if not isinstance(claimed_hash, str) or not claimed_hash:
        raise VerificationError(f"{USER_HASH} must be a non-empty hex string")
    if user_id is None:
        raise VerificationError(f"{USER_HASH} verifies a userId, and this event has none")
    if secret is None:
        raise VerificationError("identity verification is not set up on this server")
    if not hmac.compare_digest(claimed_hash.strip().lower().encode("utf-8"), user_hash(secret, user_id).encode()):
        raise VerificationError(f"{USER_HASH} does not match the userId: expected the hex HMAC-SHA256 of the userId "
                                "under the workspace's verification secret (`takt keys verification-secret`)")
    return "verified"
