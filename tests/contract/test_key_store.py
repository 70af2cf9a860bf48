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


def test_key_times_round_trip(storage: Storage, clock) -> None:
    key, secret = storage.keys.create("read", "dashboard", now=clock())
    assert storage.keys.lookup(secret.reveal()) == key
    revoked = storage.keys.revoke(key.id, now=clock())
    assert revoked.revoked_at == clock()
    assert storage.keys.lookup(secret.reveal()) == revoked
    assert storage.keys.list() == [revoked]


def test_revoking_twice_keeps_the_first_time(storage: Storage, clock) -> None:
    key, _ = storage.keys.create("admin", "ops", now=clock())
    first = storage.keys.revoke(key.id, now=clock())
    clock.advance(minutes=1)
    again = storage.keys.revoke(key.id, now=clock())
    assert again.revoked_at == first.revoked_at


def test_an_ambiguous_name_must_be_revoked_by_id(storage: Storage, clock) -> None:
    a, _ = storage.keys.create("read", "twin", now=clock())
    b, _ = storage.keys.create("read", "twin", now=clock())
    with pytest.raises(TaktError, match="several keys"):
        storage.keys.revoke("twin", now=clock())
    assert storage.keys.revoke(b.id, now=clock()).revoked_at is not None
    assert [k.active for k in storage.keys.list() if k.id == a.id] == [True]


@pytest.mark.postgres
def test_keys_are_shared_by_every_process_on_postgres(pg_url: str, clock) -> None:
    from takt.storage.postgres import PostgresStorage

    with PostgresStorage(pg_url) as one, PostgresStorage(pg_url) as two:
        key, secret = one.keys.create("write", "app", None, "observed", now=clock())
        assert two.keys.lookup(secret.reveal()) == key
        two.keys.revoke("app", now=clock())
        found = one.keys.lookup(secret.reveal())
        assert found is not None and not found.active
