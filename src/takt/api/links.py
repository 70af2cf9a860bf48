"""Links in messages (unsubscribe, preference center): where they point, and tokens that carry no personal data.

**Where.** A link starts with the setting ``server.public_base_url`` (the address customers reach the server
at), never with the request's ``Host`` header: an admin call through a proxy, or a forged ``Host``, must not
put another address into millions of messages. Unset, links use ``http://<server.host>:<server.port>`` (right
for local use; ``takt serve`` warns).

**What.** A token is opaque: AES-256-GCM (a fresh 96-bit nonce) over a small claim set — the link's kind, the
profile id, and for unsubscribe links the channel and a keyed hash of the contact point (never the address) —
under a key derived from the workspace's signing secret. It cannot be read, forged or altered without the
secret, it survives restarts (the secret is stored), and it is resolved at click time through the live
projection: a merged-away profile id finds its survivor, and the contact point is found again among the
person's current contact points by its hash. After an erasure the profile is gone and the link resolves to
nothing. Tokens of the earlier, readable format (``base64(json).signature``) are refused with
``link_outdated``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from takt.api.context import ApiContext
from takt.errors import TaktError
from takt.policy.vocab import CHANNEL_KIND, normalize_contact_value
from takt.settings import Settings
from takt.storage.base import Storage

SECRET_NAME = "secret:signing"
_NONCE = 12
_PREFIX = "l1"
"""Version mark of the token format (a token starts with it)."""


def public_base_url(settings: Settings) -> str:
    """Where links point: ``server.public_base_url``, else this server's own address (local use)."""
    base = str(settings["server.public_base_url"]).strip().rstrip("/")
    return base or f"http://{settings['server.host']}:{settings['server.port']}"


LOCAL_BASE = "local_base_url"
"""``ApiContext.extras`` key: the address ``takt serve`` listens on (``--host``/``--port`` may differ from the
settings), the default for links when ``server.public_base_url`` is unset."""


def link_base(c: ApiContext) -> str:
    """Where this server's links point."""
    if str(c.settings["server.public_base_url"]).strip():
        return public_base_url(c.settings)
    local = c.extras.get(LOCAL_BASE)
    return str(local) if local else public_base_url(c.settings)


def base_url_warning(settings: Settings, url: str | None = None) -> str | None:
    """What ``takt serve`` says when links would point at a local address."""
    if str(settings["server.public_base_url"]).strip():
        return None
    return (f"warning: server.public_base_url is not set: unsubscribe and preference links will point at "
            f"{url or public_base_url(settings)}, which customers cannot reach. Set it (TAKT_SERVER__PUBLIC_BASE_URL or "
            "takt.toml) to the public https address of this server.")


def signing_secret(storage: Storage) -> bytes:
    """The workspace's signing secret, created on first use (kept in the snapshot store under its own name)."""
    found = storage.snapshots.load(SECRET_NAME)
    if found is not None:
        return found[1]
    secret = secrets.token_bytes(32)
    storage.snapshots.save(SECRET_NAME, 0, secret)
    again = storage.snapshots.load(SECRET_NAME)
    return again[1] if again is not None else secret


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"takt links v1 " + purpose, hashlib.sha256).digest()


def contact_hash(secret: bytes, channel: str, value: str) -> str:
    """A keyed hash of a contact point in its one form (what a token holds instead of the address)."""
    kind = CHANNEL_KIND.get(channel)
    try:
        norm = normalize_contact_value(kind, value) if kind else value.strip()
    except TaktError:
        norm = value.strip()
    return hmac.new(_derive(secret, b"contact"), f"{channel}:{norm}".encode(), hashlib.sha256).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_claims(secret: bytes, claims: dict[str, Any]) -> str:
    """An opaque token for ``claims`` (authenticated encryption under a key derived from ``secret``)."""
    nonce = os.urandom(_NONCE)
    payload = orjson.dumps(claims, option=orjson.OPT_SORT_KEYS)
    return _PREFIX + _b64(nonce + AESGCM(_derive(secret, b"token")).encrypt(nonce, payload, _PREFIX.encode()))


class LinkError(TaktError):
    """A link that cannot be used; ``reason`` is what the customer is told."""


def open_claims(secret: bytes, token: str) -> dict[str, Any]:
    """The claims of a token; a malformed, forged, altered, foreign or old-format one is a :class:`LinkError`."""
    if "." in token and not token.startswith(_PREFIX):
        raise LinkError("This link comes from an earlier version and no longer works. Please use the link in a "
                        "more recent message.", code="link_outdated", status=410)
    if not token.startswith(_PREFIX) or len(token) > 1024:
        raise LinkError("The link is incomplete or damaged.", code="invalid_token", status=400)
    try:
        raw = _unb64(token[len(_PREFIX):])
    except (ValueError, TypeError):
        raise LinkError("The link is incomplete or damaged.", code="invalid_token", status=400) from None
    if len(raw) <= _NONCE + 16:
        raise LinkError("The link is incomplete or damaged.", code="invalid_token", status=400)
    try:
        payload = AESGCM(_derive(secret, b"token")).decrypt(raw[:_NONCE], raw[_NONCE:], _PREFIX.encode())
    except InvalidTag:
        raise LinkError("The link was altered or does not come from us.", code="invalid_token",
                        status=403) from None
    claims = orjson.loads(payload)
    if not isinstance(claims, dict):
        raise LinkError("The link is damaged.", code="invalid_token", status=403)
    return claims
