"""The HMAC scheme of webhooks and provider callbacks (both directions use it).

A request carries ``X-Takt-Timestamp`` (Unix seconds) and ``X-Takt-Signature: v1=<hex>``, the HMAC-SHA256,
keyed with the channel's secret (``delivery.webhook_secrets``), of ``<timestamp>.<body bytes>``. A receiver
recomputes it, compares in constant time, and refuses a timestamp further than the tolerance from its clock
(a captured request cannot be replayed later).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from takt.errors import TaktError

TIMESTAMP_HEADER = "X-Takt-Timestamp"
SIGNATURE_HEADER = "X-Takt-Signature"
VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={mac}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for k, v in headers.items():
        if k.lower() == lowered:
            return v
    return None


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float) -> None:
    """Raise :class:`TaktError` 401 ``invalid_signature`` unless the request is signed with ``secret`` within
    ``tolerance`` seconds of ``now``."""
    ts_text, sig = _header(headers, TIMESTAMP_HEADER), _header(headers, SIGNATURE_HEADER)
    if not ts_text or not sig:
        raise TaktError(f"a callback must be signed ({TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers)",
                        code="invalid_signature", status=401)
    try:
        ts = int(ts_text.strip())
    except ValueError:
        raise TaktError(f"{TIMESTAMP_HEADER} must be Unix seconds", code="invalid_signature", status=401) from None
    if abs(now - ts) > tolerance:
        raise TaktError(f"{TIMESTAMP_HEADER} is more than {tolerance:g} s from the server's clock",
                        code="invalid_signature", status=401)
    if not hmac.compare_digest(signature(secret, ts, body).encode(), sig.strip().encode()):
        raise TaktError("the callback's signature does not match", code="invalid_signature", status=401)
