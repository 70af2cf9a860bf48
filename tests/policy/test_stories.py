"""The four stories of the "Respect" issue that must be impossible, at the level of the pure core."""

from __future__ import annotations

from datetime import timedelta

from takt.policy import ContactPoint, Intent, PolicyPerson, decide, fold_consent, fold_messages
from takt.policy.suppression import contact_point_hash
from tests.policy.builders import KEY, SETTINGS, T0, consent, email, message, phone

MARKETING = Intent("marketing", campaign="winter-sale")


def test_a_enrichment_discovered_linkedin_and_personal_email_are_never_used() -> None:
    linkedin = ContactPoint("social", "linkedin:ada-lovelace", "third_party")
    personal = email("ada.private@example.net", "third_party")
    ledger = fold_consent([
        # Consent on file for the whole channels, even by the customer: it cannot make these points usable.
        consent("granted", "email", method="double_opt_in"),
        consent("granted", "social_dm", method="web_form"),
        # And the enrichment tool's own "consent" is no consent.
        consent("granted", "email", "ada.private@example.net", actor="third_party"),
    ])
    person = PolicyPerson("ada", (linkedin, personal), ledger)

    d = decide(person, MARKETING, ["social_dm", "email"], T0, SETTINGS)

    assert not d.allowed
    assert d.channel is None and d.contact_point is None
    assert [r.code for r in d.rejected["social_dm"]] == ["third_party_contact_point"]
    assert [r.code for r in d.rejected["email"]] == ["third_party_contact_point"]
    assert d.codes() == ("third_party_contact_point",)

    # With the address she gave herself on file, that one is used, never the discovered one.
    own = email("ada@example.com")
    d = decide(PolicyPerson("ada", (linkedin, personal, own), ledger), MARKETING, ["social_dm", "email"], T0,
               SETTINGS)
    assert d.allowed and (d.channel, d.contact_point) == ("email", "ada@example.com")
    assert [r.code for r in d.rejected["social_dm"]] == ["third_party_contact_point"]


def test_b_broker_bought_mobile_number_is_never_called() -> None:
    bought = phone("+49 170 1234567", "third_party")
    ledger = fold_consent([
        consent("granted", "phone", method="import", actor="import"),
        consent("granted", "sms", method="import", actor="import"),
        consent("granted", "phone", "+491701234567", method="verbal", actor="admin"),
    ])
    person = PolicyPerson("bob", (bought,), ledger)  # the phone field he filled in himself: empty

    for intent in (MARKETING, Intent("service"), Intent("transactional")):
        d = decide(person, intent, ["phone", "sms"], T0, SETTINGS)
        assert not d.allowed, intent
        assert "third_party_contact_point" in d.codes()
        assert all("third_party_contact_point" in [r.code for r in rs] for rs in d.rejected.values())


def test_c_unsubscribing_twice_stops_the_newsletter_for_good() -> None:
    address = "cleo@example.com"
    events = [
        consent("granted", "email", address, method="double_opt_in", at=T0),
        consent("withdrawn", "email", address, method="unsubscribe_link", at=T0 + timedelta(days=1)),
        # the nightly CRM sync writes the old opt-in back ...
        consent("granted", "email", address, actor="import", method="import", at=T0 + timedelta(days=2)),
        consent("withdrawn", "email", address, method="unsubscribe_link", at=T0 + timedelta(days=3)),
        # ... and an admin "fixes" it, and the sync runs again
        consent("granted", "email", address, actor="admin", method="api", at=T0 + timedelta(days=4)),
        consent("granted", "email", address, actor="import", method="double_opt_in", at=T0 + timedelta(days=5)),
    ]
    ledger = fold_consent(events)
    # ... and a duplicate profile with the old grant is merged in.
    old_profile = fold_consent([consent("granted", "email", address, method="double_opt_in", at=T0)])
    merged = ledger.merge(old_profile, T0 + timedelta(days=6))
    person = PolicyPerson("cleo", (email(address),), merged)

    now = T0 + timedelta(days=7)
    d = decide(person, Intent("marketing", campaign="newsletter"), ["email"], now, SETTINGS)
    assert not d.allowed
    assert d.codes() == ("withdrawn",)
    state = merged.state("marketing", "email", address)
    assert state.status == "withdrawn"
    assert [c.applied for c in state.history if c.record is not None and c.record.status == "granted"] == [
        True, False, False, False, True]  # her own grant (in each ledger) applied; nobody else's did

    # The unsubscribe link also put the address on the suppression list: used for nothing at all.
    suppressed = PolicyPerson("cleo", (email(address),), merged,
                              suppressed=frozenset({contact_point_hash(KEY, "email", address)}))
    for intent in ("marketing", "transactional", "service"):
        d = decide(suppressed, Intent(intent), ["email"], now, SETTINGS)
        assert not d.allowed and "suppressed" in d.codes(), intent

    # Only she can lift it.
    again = merged.apply(*fold_consent([consent("granted", "email", address, method="double_opt_in",
                                                at=T0 + timedelta(days=8))]).records)
    d = decide(PolicyPerson("cleo", (email(address),), again), Intent("marketing"), ["email"],
               T0 + timedelta(days=9), SETTINGS)
    assert d.allowed and d.contact_point == address


def test_d_five_channels_never_fire_for_the_same_offer() -> None:
    channels = ["email", "sms", "push", "post", "social_dm"]
    points = (
        email("dana@example.com"),
        phone("+4915112345678"),
        ContactPoint("push_token", "tok-1", "customer_provided"),
        ContactPoint("postal_address", "Hauptstr. 1, 10115 Berlin", "customer_provided"),
        ContactPoint("social", "instagram:dana", "customer_provided"),
    )
    ledger = fold_consent([consent("granted", ch, method="double_opt_in") for ch in channels])
    person = PolicyPerson("dana", points, ledger, touchpoints={"push": 4, "sms": 1})
    offer = Intent("marketing", campaign="spring-offer")

    d = decide(person, offer, channels, T0, SETTINGS)
    assert d.allowed and d.channel == "push"  # the channel she engages with most
    assert set(d.rejected) == set(channels) - {"push"}
    assert all([r.code for r in rs] == ["one_channel_per_message"] for rs in d.rejected.values())

    # A campaign that tries every channel on its own, recording what went out, still reaches her once.
    events = []
    sent = []
    for i, ch in enumerate(channels):
        now = T0 + timedelta(minutes=i)
        p = PolicyPerson("dana", points, ledger, fold_messages(events), touchpoints={"push": 4, "sms": 1})
        d = decide(p, offer, [ch], now, SETTINGS)
        if d.allowed:
            sent.append(ch)
            events.append(message("sent", ch, at=now, contact_point=d.contact_point, campaign="spring-offer"))
        else:
            assert "daily_limit" in d.codes()
    assert sent == ["email"]

    # Her stated preference wins, and it is the only channel marketing uses.
    p = PolicyPerson("dana", points, ledger, touchpoints={"push": 4}, preferred_channel="sms")
    d = decide(p, offer, channels, T0, SETTINGS)
    assert d.allowed and d.channel == "sms"
    assert all([r.code for r in rs] == ["not_preferred_channel"] for rs in d.rejected.values())
