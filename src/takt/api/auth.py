"""Who is calling: write keys (HTTP Basic username or ``writeKey`` in the body), read and admin keys (Bearer)."""

from __future__ import annotations

import base64
import time

from starlette.requests import Request

from takt.errors import forbidden, unauthorized
from takt.keys import ApiKey, KeyStore
from takt.text import article

_CACHE_SECONDS = 5.0


class Authenticator:
    """Resolves raw keys through the key store, caching answers briefly (revocations reach other processes
    within seconds; a revocation through this process's API takes effect at once)."""

    def __init__(self, keys: KeyStore):
        self.keys = keys
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def resolve(self, raw: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._cache.get(raw)
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        key = self.keys.lookup(raw)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[raw] = (now, key)
        return key

    def forget(self) -> None:
        self._cache.clear()

    def require(self, raw: str | None, kinds: tuple[str, ...]) -> ApiKey:
        if not raw:
            raise unauthorized("this endpoint needs a key")
        key = self.resolve(raw)
        if key is None:
            raise unauthorized("unknown key")
        if not key.active:
            raise unauthorized("this key has been revoked")
        if key.kind not in kinds:
            raise forbidden(f"{article(key.kind)} key cannot use this endpoint (it needs {article(' or '.join(kinds))} key)")
        return key


def basic_username(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
