"""The consent ledger: validation, the fold's rules, merges and Consent Updated calls."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from takt.errors import TaktError
from takt.events.model import Event
from takt.policy.consent import (
    ConsentLedger,
    consent_events_from_track,
    effective_actor,
    fold_consent,
    merge_ledgers,
    record_from_event,
    validate_consent,
)
from tests.factories import ev
from tests.policy.builders import T0, consent

A = "ada@example.com"


def _fields(exc: pytest.ExceptionInfo[TaktError]) -> set[str]:
    return {e["field"] for e in exc.value.errors}


def later(days: float) -> datetime:
    return T0 + timedelta(days=days)


# ---- validation ----
def test_a_valid_payload_is_normalized() -> None:
    out = validate_consent({"purpose": "marketing", "channel": "email", "contact_point": "  Ada@Example.COM ",
                            "status": "granted", "actor": "customer",
                            "evidence": {"method": "double_opt_in", "ip": "203.0.113.9",
                                         "at": "2026-11-01T09:00:00+01:00", "notice_version": "v3"}})
    assert out == {"purpose": "marketing", "channel": "email", "contact_point": "ada@example.com",
                   "status": "granted", "actor": "customer",
                   "evidence": {"method": "double_opt_in", "ip": "203.0.113.9", "notice_version": "v3",
                                "at": "2026-11-01T08:00:00Z"}}


def test_every_problem_is_named() -> None:
    with pytest.raises(TaktError) as exc:
        validate_consent({"purpose": "newsletter", "channel": "fax", "status": "maybe", "actor": "robot",
                          "colour": "red", "evidence": {"method": "telepathy", "mood": "good"}})
    assert exc.value.code == "invalid_consent" and exc.value.status == 400
    assert _fields(exc) == {"purpose", "channel", "status", "actor", "colour", "evidence.method",
                            "evidence.mood"}
    text = str(exc.value)
    assert "unknown purpose 'newsletter'" in text and "unknown consent field 'colour'" in text
    assert "unknown evidence field 'mood'" in text


@pytest.mark.parametrize(("payload", "field", "words"), [
    ({"purpose": "marketing", "channel": "email", "status": "granted", "actor": "customer"}, "evidence",
     "needs evidence"),
    ({"purpose": "marketing", "channel": "email", "status": "granted", "actor": "customer", "evidence": {}},
     "evidence.method", "required"),
    ({"purpose": "marketing", "status": "granted", "actor": "customer", "evidence": {"method": "web_form"}},
     "channel", "required"),
    ({"purpose": "marketing", "status": "withdrawn", "actor": "customer", "contact_point": A},
     "contact_point", "needs its channel"),
    ({"purpose": "marketing", "channel": "in_app", "contact_point": "x", "status": "withdrawn",
      "actor": "customer"}, "contact_point", "in_app has no contact points"),
    ({"purpose": "marketing", "channel": "email", "contact_point": "", "status": "withdrawn",
      "actor": "customer"}, "contact_point", "non-empty"),
    ({"purpose": "marketing", "channel": "email", "status": "withdrawn", "actor": "customer",
      "evidence": {"at": "yesterday"}}, "evidence.at", "ISO 8601"),
    ({"channel": "email", "status": "withdrawn", "actor": "customer"}, "purpose", "required"),
])
def test_invalid_payloads(payload: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(TaktError) as exc:
        validate_consent(payload)
    assert _fields(exc) == {field}
    assert words in str(exc.value)


def test_a_payload_must_be_an_object() -> None:
    with pytest.raises(TaktError, match="must be an object"):
        validate_consent(["marketing"])


def test_withdrawals_and_objections_need_no_channel_or_evidence() -> None:
    assert validate_consent({"purpose": "marketing", "status": "withdrawn", "actor": "customer"}) == {
        "purpose": "marketing", "status": "withdrawn", "actor": "customer"}
    assert validate_consent({"purpose": "marketing", "status": "objected", "actor": "admin"})["status"] == "objected"


def test_only_consent_events_are_records() -> None:
    with pytest.raises(TaktError, match="expected a 'consent' event"):
        record_from_event(ev(1))


# ---- the fold ----
def test_a_grant_is_confirmed_by_double_opt_in() -> None:
    ledger = fold_consent([consent("granted", "email", A, method="web_form")])
    s = ledger.state("marketing", "email", A)
    assert (s.status, s.confirmed) == ("granted", False)
    ledger = fold_consent([consent("granted", "email", A, method="double_opt_in", at=later(1))], ledger)
    s = ledger.state("marketing", "email", A)
    assert (s.status, s.confirmed, s.since) == ("granted", True, later(1))
    # renewing a confirmed grant keeps it confirmed
    ledger = fold_consent([consent("granted", "email", A, method="preference_center", at=later(2))], ledger)
    assert ledger.state("marketing", "email", A).confirmed
    assert [c.status for c in ledger.state("marketing", "email", A).history] == ["granted"] * 3


def test_nothing_on_record_is_none_and_other_purposes_do_not_count() -> None:
    ledger = fold_consent([consent("granted", "email", A, purpose="service"), ev(2)])
    assert ledger.state("marketing", "email", A).status == "none"
    assert ledger.state("service", "email", A).status == "granted"


def test_only_the_customer_lifts_a_withdrawal() -> None:
    events = [consent("granted", "email", A), consent("withdrawn", "email", A, method=None, at=later(1))]
    for actor in ("import", "admin", "third_party"):
        ledger = fold_consent([*events, consent("granted", "email", A, actor=actor, at=later(2))])
        s = ledger.state("marketing", "email", A)
        assert s.status == "withdrawn", actor
        assert not s.history[-1].applied and "ignored" in s.history[-1].note
    ledger = fold_consent([*events, consent("granted", "email", A, actor="customer", at=later(2))])
    assert ledger.state("marketing", "email", A).status == "granted"


def test_a_third_party_never_grants() -> None:
    ledger = fold_consent([consent("granted", "email", A, actor="third_party")])
    s = ledger.state("marketing", "email", A)
    assert s.status == "none"
    assert "third party cannot grant" in s.history[0].note


def test_imports_and_admins_may_grant_where_nothing_was_withdrawn() -> None:
    ledger = fold_consent([consent("granted", "sms", "+4930123", actor="import", method="import")])
    assert ledger.state("marketing", "sms", "+4930123").status == "granted"


def test_anyone_may_restrict() -> None:
    ledger = fold_consent([consent("granted", "email", A),
                           consent("withdrawn", "email", A, actor="third_party", method=None, at=later(1))])
    assert ledger.state("marketing", "email", A).status == "withdrawn"


def test_an_objection_covers_every_channel_until_the_customer_grants_one_again() -> None:
    ledger = fold_consent([
        consent("granted", "email", A),
        consent("granted", "sms", "+4930123", method="web_form"),
        consent("objected", "email", A, method=None, at=later(1)),  # names email, covers everything
    ])
    assert ledger.state("marketing", "email", A).status == "objected"
    assert ledger.state("marketing", "sms", "+4930123").status == "objected"
    assert ledger.state("marketing", "post", "somewhere").status == "objected"
    assert ledger.state("service", "email", A).status == "none"  # only its purpose
    ledger = fold_consent([consent("granted", "sms", "+4930123", actor="admin", at=later(2)),
                           consent("granted", "email", A, at=later(3))], ledger)
    assert ledger.state("marketing", "email", A).status == "granted"
    assert ledger.state("marketing", "sms", "+4930123").status == "objected"


def test_scopes_channel_wide_and_all_channels() -> None:
    ledger = fold_consent([
        consent("granted", "email", A),
        consent("granted", "email", "bo@example.com"),
        consent("withdrawn", "email", None, method=None, at=later(1)),  # every email address
    ])
    assert ledger.state("marketing", "email", A).status == "withdrawn"
    assert ledger.state("marketing", "email", "bo@example.com").status == "withdrawn"
    # a customer grant for one address lifts it for that address only
    ledger = fold_consent([consent("granted", "email", A, at=later(2))], ledger)
    assert ledger.state("marketing", "email", A).status == "granted"
    assert ledger.state("marketing", "email", "bo@example.com").status == "withdrawn"
    # a withdrawal naming no channel covers them all
    ledger = fold_consent([consent("withdrawn", None, None, method=None, at=later(3))], ledger)
    assert ledger.state("marketing", "email", A).status == "withdrawn"
    assert ledger.state("marketing", "push", "tok").status == "withdrawn"


def test_a_grant_for_one_address_does_not_cover_another() -> None:
    ledger = fold_consent([consent("granted", "email", A)])
    assert ledger.state("marketing", "email", "other@example.com").status == "none"
    assert ledger.state("marketing", "sms", A).status == "none"


def test_actors_are_trusted_only_as_far_as_their_source() -> None:
    assert effective_actor("customer", "customer_provided") == "customer"
    assert effective_actor("customer", "crm_import") == "import"
    assert effective_actor("customer", "observed") == "import"
    assert effective_actor("admin", "third_party") == "third_party"
    assert effective_actor("import", "crm_import") == "import"
    events = [consent("granted", "email", A), consent("withdrawn", "email", A, method=None, at=later(1)),
              consent("granted", "email", A, actor="customer", provenance="crm_import", at=later(2))]
    s = fold_consent(events).state("marketing", "email", A)
    assert s.status == "withdrawn"
    assert s.history[-1].record is not None and s.history[-1].record.stated_actor == "customer"
    assert s.history[-1].record.actor == "import"


def test_states_lists_every_named_scope_with_history() -> None:
    ledger = fold_consent([consent("granted", "email", A), consent("objected", "sms", None, method=None),
                           consent("granted", "push", None, method="web_form")])
    states = ledger.states()
    assert list(states) == [("marketing", "email", A), ("marketing", None, None), ("marketing", "push", None)]
    assert states[("marketing", None, None)].status == "objected"
    assert states[("marketing", "email", A)].status == "objected"
    assert len(states[("marketing", "email", A)].history) == 2


# ---- merges ----
def test_on_merge_the_most_restrictive_state_wins_until_the_customer_acts() -> None:
    granted = fold_consent([consent("granted", "email", A)])
    unconfirmed = fold_consent([consent("granted", "email", A, method="web_form")])
    withdrawn = fold_consent([consent("granted", "email", A), consent("withdrawn", "email", A, method=None)])
    objected = fold_consent([consent("objected", None, None, method=None)])
    empty = ConsentLedger()

    def merged(a: ConsentLedger, b: ConsentLedger) -> tuple[str, bool]:
        s = merge_ledgers(a, b, later(1)).state("marketing", "email", A)
        return s.status, s.confirmed

    assert merged(granted, withdrawn) == merged(withdrawn, granted) == ("withdrawn", False)
    assert merged(withdrawn, objected) == merged(objected, withdrawn) == ("objected", False)
    assert merged(granted, unconfirmed) == merged(unconfirmed, granted) == ("granted", False)
    assert merged(granted, empty) == merged(empty, granted) == ("granted", True)
    assert merged(empty, empty) == ("none", False)

    m = merge_ledgers(granted, withdrawn, later(1))
    m = fold_consent([consent("granted", "email", A, actor="import", at=later(2)),
                      consent("granted", "email", A, actor="admin", at=later(2))], m)
    assert m.state("marketing", "email", A).status == "withdrawn"
    m = fold_consent([consent("granted", "email", A, at=later(3))], m)
    s = m.state("marketing", "email", A)
    assert s.status == "granted"
    merge_entries = [c for c in s.history if c.record is None]
    assert len(merge_entries) == 1 and "most restrictive" in merge_entries[0].note
    assert merge_entries[0].at == later(1)
    assert set(m.scopes()) == {("marketing", "email", A)}


# ---- Consent Updated ----
def _track(properties: dict[str, object], provenance: str = "customer_provided") -> Event:
    return ev(7, event="Consent Updated", properties=properties, provenance=provenance,
              context={"ip": "203.0.113.9", "userAgent": "Firefox"})


def test_a_consent_updated_call_is_the_customers_own_change() -> None:
    (event,) = consent_events_from_track(_track({"purpose": "marketing", "channel": "email", "contact_point": A,
                                                 "status": "withdrawn"}))
    assert event.kind == "consent" and event.message_id == "m-7:consent:0"
    assert event.properties == {"purpose": "marketing", "channel": "email", "contact_point": A,
                                "status": "withdrawn", "actor": "customer",
                                "evidence": {"method": "web_form", "source": "web", "ip": "203.0.113.9",
                                             "user_agent": "Firefox", "at": "2026-11-01T09:00:07Z"}}
    r = record_from_event(event)
    assert (r.actor, r.status, r.evidence.ip) == ("customer", "withdrawn", "203.0.113.9")


def test_a_consent_updated_call_may_carry_several_changes() -> None:
    events = consent_events_from_track(_track({"consents": [
        {"purpose": "marketing", "channel": "email", "contact_point": A, "status": "granted",
         "evidence": {"method": "double_opt_in", "notice_version": "v2"}},
        {"purpose": "marketing", "channel": "sms", "status": "withdrawn"},
    ]}))
    ledger = fold_consent(events)
    assert ledger.state("marketing", "email", A).confirmed
    assert ledger.state("marketing", "sms", "+49").status == "withdrawn"
    assert events[0].properties["evidence"]["notice_version"] == "v2"


def test_a_consent_updated_call_from_a_third_party_source_is_not_the_customer() -> None:
    (event,) = consent_events_from_track(_track({"purpose": "marketing", "channel": "email", "status": "granted"},
                                                provenance="third_party"))
    assert record_from_event(event).actor == "third_party"


@pytest.mark.parametrize(("properties", "words"), [
    ({"purpose": "marketing", "channel": "email", "status": "granted", "actor": "admin"}, "unknown properties"),
    ({"purpose": "marketing", "channel": "email", "status": "granted", "colour": 1}, "unknown properties"),
    ({"consents": []}, "non-empty list"),
    ({"consents": [{"purpose": "marketing"}], "status": "granted"}, "either consents or one change"),
    ({"consents": [{"purpose": "marketing", "channel": "email", "status": "granted", "actor": "admin"}]},
     "actor"),
    ({"consents": [{"purpose": "marketing", "channel": "email", "status": "sometimes"}]}, "unknown status"),
    ({"purpose": "marketing", "channel": "email", "status": "granted", "evidence": {"ip": "1.2.3.4"}},
     "come from the call itself"),
])
def test_bad_consent_updated_calls(properties: dict[str, object], words: str) -> None:
    with pytest.raises(TaktError) as exc:
        consent_events_from_track(_track(properties))
    assert words in str(exc.value)
    assert exc.value.code == "invalid_consent"


def test_only_consent_updated_calls_convert() -> None:
    with pytest.raises(TaktError, match="Consent Updated"):
        consent_events_from_track(ev(1, event="Order Completed"))


def test_a_timeline_with_merges_keeps_the_most_restrictive_state_until_the_customer_acts() -> None:
    from takt.policy.consent import MergeStep, fold_consent_timeline

    timeline = [
        ("web", consent("granted", "email", A, at=T0)),
        ("crm", consent("granted", "email", A, actor="import", method="import", at=T0)),
        ("crm", consent("withdrawn", "email", A, method=None, at=later(1))),
        ("app", consent("granted", "push", None, method="web_form", at=later(1))),
        ("web", ev(5)),
        MergeStep("web", "crm", later(2)),
        ("crm", consent("granted", "email", A, actor="import", method="double_opt_in", at=later(3))),  # now "web"
        MergeStep("app", "crm", later(4)),  # "crm" is "web" by now
        MergeStep("web", "app", later(4)),  # already one person
    ]
    ledgers = fold_consent_timeline(timeline)
    assert list(ledgers) == ["app"]
    ledger = ledgers["app"]
    assert ledger.state("marketing", "email", A).status == "withdrawn"
    assert ledger.state("marketing", "push", "tok").status == "granted"
    # the same without the merges: each person keeps their own
    separate = fold_consent_timeline(step for step in timeline if not isinstance(step, MergeStep))
    assert separate["web"].state("marketing", "email", A).status == "granted"
    assert separate["crm"].state("marketing", "email", A).status == "withdrawn"
    assert set(separate) == {"web", "crm", "app"}
    # and it continues from given ledgers
    more = fold_consent_timeline([("app", consent("granted", "email", A, at=later(5)))], ledgers)
    assert more["app"].state("marketing", "email", A).status == "granted"
