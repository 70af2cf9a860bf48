"""The key store contract, for every backend."""

from __future__ import annotations

import pytest

from takt.errors import TaktError
from takt.storage.base import Storage


def test_create_lookup_list_revoke(storage: Storage, clock) -> None:
    key, secret = storage.keys.create("write", "website", None, "customer_provided", now=clock())
    assert key.source == "website" and key.provenance == "customer_provided"
    assert "tk_w_" in secret.reveal() and "tk_w_" not in repr(secret) and "tk_w_" not in str(secret)
    found = storage.keys.lookup(secret.reveal())
    assert found is not None and found.id == key.id and found.active
    assert storage.keys.lookup(secret.reveal() + "x") is None
    assert [k.id for k in storage.keys.list()] == [key.id]
    revoked = storage.keys.revoke("website", now=clock())
    assert not revoked.active
    after = storage.keys.lookup(secret.reveal())
    assert after is not None and not after.active


def test_secret_is_stored_only_hashed(storage: Storage, clock) -> None:
    _, secret = storage.keys.create("admin", "ops", now=clock())
    for k in storage.keys.list():
        assert secret.reveal() not in repr(k.__dict__)


@pytest.mark.parametrize(
    "kind,source,provenance",
    [("nope", None, None), ("read", "web", None), ("write", None, "made_up")],
)
def test_invalid_key_requests_are_refused(storage: Storage, clock, kind, source, provenance) -> None:
    with pytest.raises(TaktError):
        storage.keys.create(kind, "k", source, provenance, now=clock())


def test_revoke_unknown_key(storage: Storage, clock) -> None:
    with pytest.raises(TaktError, match="no key"):
        storage.keys.revoke("missing", now=clock())
