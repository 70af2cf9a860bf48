from __future__ import annotations

import pytest

from takt.errors import SettingsError, TaktError
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import check_identifier, check_identifiers, make_identifier, parse_identifier
from takt.settings import load
from tests.factories import ev

CFG = IdentityConfig.build()


def test_email_is_trimmed_and_lowercased() -> None:
    assert make_identifier("email", "  Ada.Lovelace@Example.COM ", CFG) == "email:ada.lovelace@example.com"


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b", "two@@x.com", "sp ace@x.com"])
def test_invalid_emails_are_not_identifiers(raw: str) -> None:
    check = check_identifier("email", raw, CFG)
    assert check.identifier is None
    assert check.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("030 12345678", "phone:+493012345678"), ("+49 (30) 1234-5678", "phone:+493012345678"),
     ("+1 650-253-0000", "phone:+16502530000")],
)
def test_phone_to_e164_with_default_region(raw: str, expected: str) -> None:
    assert make_identifier("phone", raw, CFG) == expected


def test_phone_region_setting_changes_local_numbers() -> None:
    us = IdentityConfig.build(phone_region="US")
    assert make_identifier("phone", "(650) 253-0000", us) == "phone:+16502530000"


def test_invalid_phone_is_reported() -> None:
    check = check_identifier("phone", "12", CFG)
    assert not check.ok
    assert "phone" in (check.reason or "")


def test_unknown_type_and_non_strings_are_reported() -> None:
    assert check_identifier("shoe_size", "42", CFG).reason == "unknown identifier type 'shoe_size'"
    assert not check_identifier("email", {"a": 1}, CFG).ok
    assert not check_identifier("user_id", True, CFG).ok


def test_handles_drop_at_and_case() -> None:
    assert make_identifier("instagram", " @Ada_L ", CFG) == "instagram:ada_l"


def test_parse_identifier_normalizes_or_raises() -> None:
    assert parse_identifier("email:A@X.com", CFG) == "email:a@x.com"
    with pytest.raises(TaktError, match="type:value"):
        parse_identifier("nocolon", CFG)
    with pytest.raises(TaktError, match="not an email"):
        parse_identifier("email:nope", CFG)


def test_identifiers_from_segment_and_rudder_style_identify() -> None:
    seg = ev(1, kind="identify", user_id="u1", anonymous_id="a1", traits={"email": "A@x.com", "phone": "030 12345678"})
    rud = ev(2, kind="identify", user_id="u1", anonymous_id="a1",
             context={"traits": {"email": "A@x.com", "phone": "030 12345678"}})
    expected = ("user_id:u1", "email:a@x.com", "phone:+493012345678", "anonymous_id:a1")
    assert identifiers_of(seg, CFG) == expected
    assert identifiers_of(rud, CFG) == expected


def test_alias_links_previous_id_as_anonymous_id() -> None:
    e = ev(1, kind="alias", user_id="u1", previous_id="anon-7")
    assert identifiers_of(e, CFG) == ("user_id:u1", "anonymous_id:anon-7")


def test_configured_types_from_traits_context_and_records() -> None:
    e = ev(1, user_id=None, anonymous_id="a1",
           context={"device": {"id": "dev-9"}, "traits": {"crm_id": "C1", "loyaltyNumber": "L-5"}})
    assert identifiers_of(e, CFG) == ("crm_id:C1", "loyalty_number:L-5", "device_id:dev-9", "anonymous_id:a1")
    rec = ev(2, kind="record", user_id=None, properties={
        "record_type": "customer", "row_key": "C1",
        "identifiers": {"crm_id": "C1", "email": "bad", "phone": "+49 30 1234 5678", "unknown_type": "x"}})
    assert identifiers_of(rec, CFG) == ("crm_id:C1", "phone:+493012345678")


def test_identity_types_setting_is_validated() -> None:
    with pytest.raises(SettingsError, match=r"identity\.types"):
        load(None, env={"TAKT_IDENTITY__TYPES": '{"email": {"unique": true}}'})
    with pytest.raises(SettingsError, match="unknown keys"):
        load(None, env={"TAKT_IDENTITY__TYPES": '{"x": {"uniq": true}}'})
    s = load(None, env={"TAKT_IDENTITY__TYPES": '{"member_no": {"unique": true, "traits": ["member"]}}'})
    cfg = IdentityConfig.from_settings(s)
    assert cfg.is_unique("member_no")
    assert "crm_id" not in cfg.types
    with pytest.raises(SettingsError, match="phone region"):
        load(None, env={"TAKT_IDENTITY__PHONE_REGION": "XX"})


def test_check_identifiers_splits_valid_from_reported() -> None:
    valid, problems = check_identifiers(
        {"crm_id": " C1 ", "email": "not-mail", "phone": "030 1234567", "loyalty_number": "", "x": None}, CFG)
    assert valid == {"crm_id": "crm_id:C1", "phone": "phone:+49301234567"}
    assert [p["field"] for p in problems] == ["email"]
    assert "not an email" in problems[0]["reason"]
