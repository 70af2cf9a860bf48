"""Identity verification, the pure part: a public key's event is verified only by the HMAC of its own userId."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takt.errors import TaktError
from takt.ingest.segment import Limits, Source, events_from_body
from takt.ingest.verification import VerificationError, trust_of, user_hash

SECRET = "tk_v_" + "ab" * 32
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PUBLIC = Source("web", "customer_provided", "public", verification_secret=SECRET)


def test_the_hash_is_hex_hmac_sha256_of_the_user_id_keyed_by_the_secret() -> None:
    # written out independently: what a customer's backend computes
    expected = hmac.new(SECRET.encode(), b"user-42", hashlib.sha256).hexdigest()
    assert user_hash(SECRET, "user-42") == expected and len(expected) == 64


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_a_hash_verifies_its_own_user_id_and_no_other(user_id: str, other: str) -> None:
    good = user_hash(SECRET, user_id)
    assert trust_of("public", user_id, good, SECRET) == "verified"
    assert trust_of("public", user_id, good.upper(), SECRET) == "verified"
    if other != user_id:
        with pytest.raises(VerificationError, match="does not match"):
            trust_of("public", other, good, SECRET)


@pytest.mark.parametrize("claimed", ["", "zz", "é" * 64, 42])
def test_a_malformed_hash_is_refused(claimed: object) -> None:
    with pytest.raises(VerificationError):
        trust_of("public", "u1", claimed, SECRET)


def test_without_a_hash_a_public_event_stays_a_claim_and_server_keys_ignore_the_field() -> None:
    assert trust_of("public", "u1", None, SECRET) == "public"
    assert trust_of("server", "u1", "not-a-hash", SECRET) == "server"
    assert trust_of("server", "u1", None, None) == "server"


def test_a_hash_needs_a_user_id_and_a_secret() -> None:
    with pytest.raises(VerificationError, match="has none"):
        trust_of("public", None, user_hash(SECRET, "u1"), SECRET)
    with pytest.raises(VerificationError, match="not set up"):
        trust_of("public", "u1", user_hash(SECRET, "u1"), None)


def test_ingest_sets_the_trust_and_never_stores_the_hash() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u1", "event": "A", "context": {"userHash": user_hash(SECRET, "u1")}},
        {"type": "track", "userId": "u2", "event": "B"},
        {"type": "track", "anonymousId": "a1", "event": "C", "context": {"trust": "server"}, "trust": "server"},
    ]}
    events = events_from_body(body, "batch", PUBLIC, NOW, Limits())
    assert [e.trust for e in events] == ["verified", "public", "public"]
    assert all("userHash" not in e.context for e in events)
    server = events_from_body(body, "batch", Source("crm", "crm_import", "server"), NOW, Limits())
    assert [e.trust for e in server] == ["server"] * 3 and all("userHash" not in e.context for e in server)


def test_a_batch_with_one_bad_hash_is_refused_whole_naming_the_item() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u1", "event": "A", "context": {"userHash": user_hash(SECRET, "u1")}},
        {"type": "track", "userId": "u2", "event": "B", "context": {"userHash": user_hash(SECRET, "u1")}},
    ]}
    with pytest.raises(TaktError) as e:
        events_from_body(body, "batch", PUBLIC, NOW, Limits())
    assert e.value.status == 400
    assert e.value.errors == [{"index": 1, "field": "context.userHash", "reason": e.value.errors[0]["reason"]}]
    assert "does not match the userId" in e.value.errors[0]["reason"]


def test_the_worked_example_in_the_api_docs_is_right() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    secret = "tk_v_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    assert f"`{secret}`" in doc and "`user-42`" in doc
    assert f"the hash is `{user_hash(secret, 'user-42')}`" in doc
