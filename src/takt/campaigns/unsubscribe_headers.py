"""RFC 8058 one-click unsubscribe headers for a marketing email: the link that exists today
(``/v1/unsubscribe/{token}``, :mod:`takt.api.unsubscribe`) under the workspace's public base URL."""

from __future__ import annotations

from collections.abc import Callable

from takt.settings import Settings
from takt.storage.base import Storage

Headers = Callable[[str, str, str], dict[str, str]]
"""(profile id, channel, contact point) → the headers."""


def one_click_headers(storage: Storage, settings: Settings, base_url: str | None = None) -> Headers:
    from takt.api.links import public_base_url, signing_secret
    from takt.api.unsubscribe import make_token

    secret = signing_secret(storage)
    base = (base_url or public_base_url(settings)).rstrip("/")

    def headers(profile_id: str, channel: str, contact_point: str) -> dict[str, str]:
        url = f"{base}/v1/unsubscribe/{make_token(secret, profile_id, channel, contact_point)}"
        return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    return headers
