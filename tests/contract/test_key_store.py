"""The key store contract, for every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from takt.errors import TaktError
from takt.storage.base import Storage
from tests.conftest import open_backend


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
    [("nope", None, None), ("read", "web", None), ("write", None, "made_up"), ("write", "nul\x00", None),
     ("write", "x" * 201, None)],
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


# ---- write keys have a trust: public (browsers, apps) or server (backends, imports) ----
def test_a_write_key_keeps_its_trust(storage: Storage, clock) -> None:
    public, p_secret = storage.keys.create("write", "browser", None, "customer_provided", now=clock(), trust="public")
    server, s_secret = storage.keys.create("write", "backend", None, "customer_provided", now=clock(), trust="server")
    assert (public.trust, server.trust) == ("public", "server")
    assert storage.keys.lookup(p_secret.reveal()) == public
    assert storage.keys.lookup(s_secret.reveal()) == server
    assert {k.name: k.trust for k in storage.keys.list()} == {"browser": "public", "backend": "server"}
    assert storage.keys.revoke("browser", now=clock()).trust == "public"


def test_the_store_defaults_write_keys_to_server_and_others_to_none(storage: Storage, clock) -> None:
    write, _ = storage.keys.create("write", "import", now=clock())
    read, _ = storage.keys.create("read", "dash", now=clock())
    admin, _ = storage.keys.create("admin", "ops", now=clock())
    assert (write.trust, read.trust, admin.trust) == ("server", None, None)
    assert {k.name: k.trust for k in storage.keys.list()} == {"import": "server", "dash": None, "ops": None}


@pytest.mark.parametrize("kind,trust", [("write", "verified"), ("write", "root"), ("read", "public"),
                                        ("admin", "server")])
def test_only_write_keys_take_a_trust_and_only_public_or_server(storage: Storage, clock, kind, trust) -> None:
    with pytest.raises(TaktError, match="trust"):
        storage.keys.create(kind, "k", now=clock(), trust=trust)
    assert storage.keys.list() == []


def test_a_key_id_holds_no_part_of_the_secret(storage: Storage, clock) -> None:
    for kind in ("write", "read", "admin"):
        for _ in range(5):
            key, secret = storage.keys.create(kind, "k", now=clock())
            raw = secret.reveal()
            assert not any(raw[i:i + 6] in key.id for i in range(len(raw) - 5)), (key.id, kind)
    assert len({k.id for k in storage.keys.list()}) == 15


OLD_KEYS_TABLE = ("CREATE TABLE api_keys (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR NOT NULL, "
                  "source VARCHAR, provenance VARCHAR, key_hash VARCHAR NOT NULL UNIQUE, "
                  "created_at TIMESTAMPTZ NOT NULL, revoked_at TIMESTAMPTZ)")


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_an_older_workspace_keeps_its_write_keys_meaning_server(backend: str, tmp_path: Path, request, clock) -> None:
    """Keys created before keys had a trust: the migration adds the column and makes the write keys server keys
    (their events were the company's statement, and stay so)."""
    from takt.keys import hash_key

    rows = [("tk_w_old", "write", "crm", "crm", "crm_import", hash_key("tk_w_old-secret"), clock()),
            ("tk_a_old", "admin", "ops", None, None, hash_key("tk_a_old-secret"), clock())]
    if backend == "duckdb":
        import duckdb

        con = duckdb.connect(str(tmp_path / "takt.duckdb"))
        con.execute(OLD_KEYS_TABLE)
        con.executemany("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", rows)
        con.close()
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as pcon:
            pcon.execute(OLD_KEYS_TABLE.replace("VARCHAR", "TEXT"))
            for r in rows:
                pcon.execute("INSERT INTO api_keys VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)", r)
    storage = open_backend(backend, tmp_path, request)
    try:
        old = storage.keys.lookup("tk_w_old-secret")
        assert old is not None and old.trust == "server" and old.provenance == "crm_import"
        admin = storage.keys.lookup("tk_a_old-secret")
        assert admin is not None and admin.trust is None
        new, _ = storage.keys.create("write", "web", now=clock(), trust="public")
        assert {k.id: k.trust for k in storage.keys.list()} == {"tk_w_old": "server", "tk_a_old": None,
                                                                 new.id: "public"}
    finally:
        storage.close()
