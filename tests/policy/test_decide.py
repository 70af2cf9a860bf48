"""decide(): each rule on its own, channel choice, transactional and service messages, and bad input."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from takt.errors import TaktError
from takt.policy import (
    ContactPoint,
    Intent,
    PolicyPerson,
    PolicySettings,
    Reason,
    contact_point_hash,
    decide,
    fold_consent,
    fold_messages,
)
from takt.settings import Settings
from tests.policy.builders import KEY, SETTINGS, T0, consent, email, message, phone

A = "ada@example.com"
MARKETING = Intent("marketing", campaign="c1")
SUBSCRIBED = fold_consent([consent("granted", "email", A, method="double_opt_in")])


def person(**kw: object) -> PolicyPerson:
    base: dict[str, object] = {"person_id": "p", "contact_points": (email(A),), "consent": SUBSCRIBED}
    base.update(kw)
    return PolicyPerson(**base)  # type: ignore[arg-type]


def codes(d: object, channel: str | None = None) -> list[str]:
    if channel is None:
        return list(d.codes())  # type: ignore[attr-defined]
    return [r.code for r in d.rejected[channel]]  # type: ignore[attr-defined]


def test_a_subscriber_may_get_marketing_email() -> None:
    d = decide(person(), MARKETING, ["email"], T0, SETTINGS)
    assert (d.allowed, d.channel, d.contact_point, codes(d)) == (True, "email", A, ["allowed"])
    assert d.rejected == {}
    assert d == decide(person(), MARKETING, ["email"], T0, SETTINGS)  # the same inputs, the same answer
    assert d.explain()[0].startswith("The message may be sent")


def test_no_consent_and_unconfirmed_email() -> None:
    d = decide(person(consent=fold_consent([])), MARKETING, ["email"], T0, SETTINGS)
    assert not d.allowed and codes(d) == ["no_consent"] == codes(d, "email")
    single = fold_consent([consent("granted", "email", A, method="web_form")])
    assert codes(decide(person(consent=single), MARKETING, ["email"], T0, SETTINGS)) == ["not_double_opted_in"]
    lax = replace(SETTINGS, email_marketing_requires_double_opt_in=False)
    assert decide(person(consent=single), MARKETING, ["email"], T0, lax).allowed
    # double opt-in is an email rule
    sms = fold_consent([consent("granted", "sms", None, method="web_form")])
    assert decide(person(contact_points=(phone(),), consent=sms), MARKETING, ["sms"], T0, SETTINGS).allowed


def test_withdrawn_and_objected() -> None:
    withdrawn = fold_consent([consent("withdrawn", "email", A, method=None, at=T0 + timedelta(hours=1))],
                             SUBSCRIBED)
    d = decide(person(consent=withdrawn), MARKETING, ["email"], T0 + timedelta(hours=2), SETTINGS)
    assert codes(d) == ["withdrawn"] and "by customer" in d.reasons[0].detail
    objected = fold_consent([consent("objected", None, None, method=None)], SUBSCRIBED)
    assert codes(decide(person(consent=objected), MARKETING, ["email"], T0, SETTINGS)) == ["objected"]


@pytest.mark.parametrize(("point", "code"), [
    (email(A, "third_party"), "third_party_contact_point"),
    (email(A, "observed"), "observed_contact_point"),
    (email(A, "crm_import"), "not_customer_given"),
    (email(A, "third_party", customer_given=True), "third_party_contact_point"),
    (email(A, "observed", customer_given=True), "observed_contact_point"),
])
def test_marketing_uses_only_contact_points_the_customer_gave(point: ContactPoint, code: str) -> None:
    d = decide(person(contact_points=(point,)), MARKETING, ["email"], T0, SETTINGS)
    assert not d.allowed and codes(d) == [code]


def test_an_import_marked_customer_given_may_be_used() -> None:
    d = decide(person(contact_points=(email(A, "crm_import", customer_given=True),)), MARKETING, ["email"], T0,
               SETTINGS)
    assert d.allowed


def test_the_best_contact_point_on_a_channel_is_used() -> None:
    points = (email("zed@example.com", "third_party"), email("bo@example.com", "crm_import", customer_given=True),
              email(A))
    ledger = fold_consent([consent("granted", "email", None)])
    d = decide(person(contact_points=points, consent=ledger), MARKETING, ["email"], T0, SETTINGS)
    assert d.contact_point == A  # customer_provided before crm_import; never the third party's


def test_no_contact_point() -> None:
    d = decide(person(contact_points=()), MARKETING, ["email", "sms"], T0, SETTINGS)
    assert codes(d, "email") == ["no_contact_point"] and codes(d, "sms") == ["no_contact_point"]


def test_in_app_needs_consent_but_no_contact_point() -> None:
    d = decide(person(contact_points=()), MARKETING, ["in_app"], T0, SETTINGS)
    assert codes(d) == ["no_consent"]
    ledger = fold_consent([consent("granted", "in_app", None, method="web_form")])
    d = decide(person(contact_points=(), consent=ledger), MARKETING, ["in_app"], T0, SETTINGS)
    assert (d.allowed, d.channel, d.contact_point) == (True, "in_app", None)


def test_suppressed_contact_points_are_never_used() -> None:
    suppressed = frozenset({contact_point_hash(KEY, "email", "  ADA@example.com")})
    for purpose in ("marketing", "transactional", "service"):
        d = decide(person(suppressed=suppressed), Intent(purpose), ["email"], T0, SETTINGS)
        assert codes(d) == ["suppressed"], purpose
    # a hash under another key is not this workspace's suppression
    other = frozenset({contact_point_hash(b"other", "email", A)})
    assert decide(person(suppressed=other), MARKETING, ["email"], T0, SETTINGS).allowed
    with pytest.raises(TaktError, match="secret key"):
        decide(person(suppressed=suppressed), MARKETING, ["email"], T0, replace(SETTINGS, suppression_key=b""))


def test_contact_point_hash_is_keyed_hmac_sha256_of_the_normal_form() -> None:
    expected = hmac.new(KEY, b"email:ada@example.com", hashlib.sha256).hexdigest()
    assert contact_point_hash(KEY, "email", " Ada@Example.com ") == expected
    assert contact_point_hash(KEY, "phone", "+49 30 123-4") == hmac.new(KEY, b"phone:+49301234",
                                                                         hashlib.sha256).hexdigest()
    with pytest.raises(TaktError, match="unknown contact point kind"):
        contact_point_hash(KEY, "pager", "1")


def test_budget_per_window_and_per_day() -> None:
    sent = [message("sent", at=T0 - timedelta(days=d)) for d in (6, 4, 2)]
    d = decide(person(messages=fold_messages(sent)), MARKETING, ["email"], T0, SETTINGS)
    assert codes(d) == ["budget_exhausted"] and "3 marketing messages" in d.reasons[0].detail
    # a day later the oldest has left the 7-day window
    assert decide(person(messages=fold_messages(sent)), MARKETING, ["email"], T0 + timedelta(days=1, minutes=1),
                  SETTINGS).allowed
    # transactional messages do not count
    receipts = [message("sent", at=T0 - timedelta(hours=h), intent="transactional") for h in (1, 2, 3, 4)]
    assert decide(person(messages=fold_messages(receipts)), MARKETING, ["email"], T0, SETTINGS).allowed
    recent = fold_messages([message("sent", at=T0 - timedelta(hours=23))])
    assert codes(decide(person(messages=recent), MARKETING, ["email"], T0, SETTINGS)) == ["daily_limit"]
    assert decide(person(messages=recent), MARKETING, ["email"], T0 + timedelta(hours=1, seconds=1),
                  SETTINGS).allowed
    # the budget is per person, across channels
    other = fold_messages([message("sent", "push", at=T0 - timedelta(hours=3), contact_point="tok")])
    assert codes(decide(person(messages=other), MARKETING, ["email"], T0, SETTINGS)) == ["daily_limit"]


def test_budget_settings() -> None:
    recent = fold_messages([message("sent", at=T0 - timedelta(hours=3))])
    assert decide(person(messages=recent), MARKETING, ["email"], T0, replace(SETTINGS, max_marketing_per_day=2)
                  ).allowed
    assert codes(decide(person(), MARKETING, ["email"], T0, replace(SETTINGS, max_marketing_per_window=0))) == [
        "budget_exhausted"]


def test_quiet_hours_are_in_the_persons_time_zone() -> None:
    evening = datetime(2026, 11, 2, 20, 30, tzinfo=UTC)  # 21:30 in Berlin, 15:30 in New York
    assert codes(decide(person(time_zone="Europe/Berlin"), MARKETING, ["email"], evening, SETTINGS)) == [
        "quiet_hours"]
    assert decide(person(time_zone="America/New_York"), MARKETING, ["email"], evening, SETTINGS).allowed
    assert decide(person(), MARKETING, ["email"], evening, SETTINGS).allowed  # default UTC: 20:30
    assert codes(decide(person(), MARKETING, ["email"], evening,
                        replace(SETTINGS, default_time_zone="Europe/Berlin"))) == ["quiet_hours"]
    morning = datetime(2026, 11, 2, 7, 59, tzinfo=UTC)
    assert codes(decide(person(), MARKETING, ["email"], morning, SETTINGS)) == ["quiet_hours"]
    assert decide(person(), MARKETING, ["email"], morning + timedelta(minutes=1), SETTINGS).allowed
    # equal start and end: no quiet hours; a daytime window also works
    assert decide(person(), MARKETING, ["email"], morning,
                  replace(SETTINGS, quiet_hours_start="00:00", quiet_hours_end="00:00")).allowed
    lunch = replace(SETTINGS, quiet_hours_start="12:00", quiet_hours_end="13:00")
    assert codes(decide(person(), MARKETING, ["email"], T0.replace(hour=12, minute=30), lunch)) == ["quiet_hours"]


def test_complaint_cooloff() -> None:
    complained = fold_messages([message("sent", message_id="x", at=T0 - timedelta(days=40)),
                                message("complained", message_id="x", at=T0 - timedelta(days=29))])
    d = decide(person(messages=complained), MARKETING, ["email"], T0, SETTINGS)
    assert codes(d) == ["complaint_cooloff"]
    assert decide(person(messages=complained), MARKETING, ["email"], T0 + timedelta(days=2), SETTINGS).allowed
    d = decide(person(complaints=(T0 - timedelta(days=3),)), MARKETING, ["email"], T0, SETTINGS)
    assert codes(d) == ["complaint_cooloff"]
    assert decide(person(complaints=(T0 - timedelta(days=3),)), Intent("transactional"), ["email"], T0,
                  SETTINGS).allowed


FIVE = (email(A), phone(), ContactPoint("push_token", "tok", "customer_provided"),
        ContactPoint("postal_address", "Main St 1", "customer_provided"),
        ContactPoint("social", "instagram:ada", "customer_provided"))
ALL = fold_consent([consent("granted", ch, None) for ch in ("email", "sms", "phone", "push", "post",
                                                             "social_dm", "in_app")])


def test_channel_choice_preference_then_engagement_then_fixed_order() -> None:
    channels = ["phone", "sms", "post", "push", "email"]
    d = decide(person(contact_points=FIVE, consent=ALL), MARKETING, channels, T0, SETTINGS)
    assert d.channel == "email" and "fixed order" in d.reasons[0].detail
    assert {ch: codes(d, ch) for ch in d.rejected} == {ch: ["one_channel_per_message"] for ch in channels[:4]}
    d = decide(person(contact_points=FIVE, consent=ALL, touchpoints={"post": 2, "sms": 5}), MARKETING, channels,
               T0, SETTINGS)
    assert d.channel == "sms" and "5 touchpoints" in d.reasons[0].detail
    d = decide(person(contact_points=FIVE, consent=ALL, touchpoints={"sms": 5}, preferred_channel="post"),
               MARKETING, channels, T0, SETTINGS)
    assert d.channel == "post" and "preferred" in d.reasons[0].detail


def test_a_blocked_channel_falls_through_to_the_next() -> None:
    no_email = fold_consent([consent("withdrawn", "email", None, method=None)], ALL)
    d = decide(person(contact_points=FIVE, consent=no_email), MARKETING, ["email", "push"], T0, SETTINGS)
    assert d.channel == "push" and codes(d, "email") == ["withdrawn"]


def test_a_stated_preference_binds_marketing_but_not_receipts() -> None:
    p = person(contact_points=FIVE, consent=ALL, preferred_channel="sms")
    d = decide(p, MARKETING, ["email", "push"], T0, SETTINGS)
    assert not d.allowed and codes(d) == ["not_preferred_channel"]
    d = decide(replace(p, suppressed=frozenset({contact_point_hash(KEY, "phone", "+4930123456")})), MARKETING,
               ["email", "sms"], T0, SETTINGS)
    assert not d.allowed and codes(d, "sms") == ["suppressed"] and codes(d, "email") == ["not_preferred_channel"]
    d = decide(p, Intent("transactional"), ["email", "push"], T0, SETTINGS)
    assert d.allowed and d.channel == "email"
    d = decide(p, Intent("transactional"), ["email", "sms"], T0, SETTINGS)
    assert d.channel == "sms"


def test_transactional_and_service_messages() -> None:
    p = person(consent=fold_consent([]), contact_points=(email(A, "crm_import"), phone("+4930999", "observed")),
               messages=fold_messages([message("sent", at=T0 - timedelta(hours=1))]), time_zone="Asia/Tokyo")
    night = T0.replace(hour=14)  # 23:00 in Tokyo
    for purpose in ("transactional", "service"):
        d = decide(p, Intent(purpose), ["email", "phone"], night, SETTINGS)
        assert d.allowed and (d.channel, d.contact_point) == ("email", A), purpose
        assert codes(d, "phone") == ["observed_contact_point", "quiet_hours"]
    # a withdrawal for that purpose is respected, one for marketing is not theirs
    ledger = fold_consent([consent("withdrawn", "email", None, purpose="service", method=None),
                           consent("objected", None, None, method=None)])
    assert codes(decide(replace(p, consent=ledger), Intent("service"), ["email"], night, SETTINGS)) == ["withdrawn"]
    assert decide(replace(p, consent=ledger), Intent("transactional"), ["email"], night, SETTINGS).allowed


def test_reasons_collect_every_rule_that_stands_against_a_channel() -> None:
    p = person(contact_points=(email(A, "third_party"),), consent=fold_consent([]),
               messages=fold_messages([message("sent", at=T0 - timedelta(hours=1))]),
               complaints=(T0 - timedelta(days=1),))
    d = decide(p, MARKETING, ["email", "sms"], T0.replace(hour=22), SETTINGS)
    assert codes(d, "email") == ["third_party_contact_point", "no_consent", "complaint_cooloff", "daily_limit",
                                 "quiet_hours"]
    assert codes(d) == ["third_party_contact_point", "no_contact_point", "no_consent", "complaint_cooloff",
                        "daily_limit", "quiet_hours"]
    assert all(r.sentence for r in d.reasons)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: decide(person(), MARKETING, ["email"], datetime(2026, 11, 2, 10), SETTINGS), "timezone-aware"),
    (lambda: decide(person(), MARKETING, [], T0, SETTINGS), "no candidate channels"),
    (lambda: decide(person(), MARKETING, ["fax"], T0, SETTINGS), "unknown channel 'fax'"),
    (lambda: decide(person(), MARKETING, "email", T0, SETTINGS), "not one string"),
    (lambda: Intent("newsletter"), "unknown message purpose"),
    (lambda: person(time_zone="Mars/Olympus"), "unknown time zone"),
    (lambda: person(preferred_channel="fax"), "unknown preferred channel"),
    (lambda: person(touchpoints={"email": -1}), "whole number"),
    (lambda: person(touchpoints={"fax": 1}), "unknown channel"),
    (lambda: person(complaints=(datetime(2026, 1, 1),)), "timezone-aware"),
    (lambda: ContactPoint("pager", "1", "customer_provided"), "unknown contact point kind"),
    (lambda: ContactPoint("email", A, "gossip"), "unknown provenance"),
    (lambda: ContactPoint("email", " ", "customer_provided"), "non-empty value"),
    (lambda: PolicySettings(max_marketing_per_day=-1), "max_marketing_per_day"),
    (lambda: PolicySettings(pressure_window_days=0), "pressure_window_days"),
    (lambda: PolicySettings(quiet_hours_start="25:00"), "HH:MM"),
    (lambda: PolicySettings(quiet_hours_end="8"), "HH:MM"),
    (lambda: PolicySettings(default_time_zone="Nowhere"), "unknown time zone"),
    (lambda: Reason("maybe"), "unknown policy reason code"),
])
def test_bad_input_is_a_clear_error(call: object, words: str) -> None:
    with pytest.raises(TaktError) as exc:
        call()  # type: ignore[operator]
    assert words in str(exc.value)


def test_policy_settings_come_from_the_settings_registry() -> None:
    s = Settings().with_values(policy__max_marketing_per_day=2, policy__quiet_hours_start="22:30",
                               policy__email_marketing_requires_double_opt_in="false")
    ps = PolicySettings.from_settings(s, suppression_key=b"k")
    assert (ps.max_marketing_per_day, ps.quiet_hours_start, ps.email_marketing_requires_double_opt_in) == (
        2, "22:30", False)
    assert ps.max_marketing_per_window == 3 and ps.suppression_key == b"k"
    assert "suppression_key" not in repr(ps)
    with pytest.raises(TaktError, match=r"policy\.quiet_hours_end"):
        Settings().with_values(policy__quiet_hours_end="late")
    with pytest.raises(TaktError, match=r"policy\.default_time_zone"):
        Settings().with_values(policy__default_time_zone="Mars/Olympus")


def test_decisions_and_consent_states_have_a_json_view() -> None:
    d = decide(person(contact_points=(email(A), phone("+4930123456", "third_party"))), MARKETING,
               ["email", "sms"], T0, SETTINGS)
    assert d.to_json() == {
        "allowed": True, "channel": "email", "contact_point": A,
        "reasons": [{"code": "allowed", "sentence": "The message may be sent on the chosen channel to the chosen "
                                                    "contact point.",
                     "detail": d.reasons[0].detail}],
        "rejected": {"sms": [{"code": "third_party_contact_point",
                              "sentence": "The contact point came from a third party (e.g. a data broker or "
                                          "enrichment tool); it is never used for outreach.",
                              "detail": "sms +4930123456: provenance third_party"},
                             {"code": "no_consent",
                              "sentence": "The customer has not given consent for this purpose on this channel.",
                              "detail": "sms +4930123456: no marketing consent on record"}]},
    }
    view = SUBSCRIBED.state("marketing", "email", A).to_json()
    assert view["status"] == "granted" and view["confirmed"] is True and view["since"] == "2026-11-02T10:00:00Z"
    assert view["history"][0]["change"]["method"] == "double_opt_in"
    assert view["history"][0]["applied"] is True
