"""Consent a browser cannot forge (issue 11, story 1) and consent ordered by when the customer acted (issue 12).

What arrives with ``trust == "public"`` is the visitor's claim: it never confirms consent, never lifts a
withdrawal, objection or suppression; it is recorded and shown as ``claimed``. ``verified`` may grant, but
double-opt-in evidence needs takt's own confirmation or a server key. A restriction from any trust applies.
A person's changes fold by their (skew-corrected) event time, log position breaking ties.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.policy import Intent, PolicyPerson, decide
from takt.policy.consent import ConsentLedger, consent_events_from_track, fold_consent
from takt.policy.from_profile import consent_changes, ledger_of
from takt.policy.suppression import contact_point_hash
from takt.policy.suppression_store import SuppressionEntry, lifted
from tests.policy.builders import KEY, SETTINGS, T0, consent, email, phone

A = "ada@example.com"


def later(days: float) -> datetime:
    return T0 + timedelta(days=days)


def claim(ev: Event) -> Event:
    return replace(ev, trust="public")


def verified(ev: Event) -> Event:
    return replace(ev, trust="verified")


def track(status: str, *, at: datetime = T0, trust: str = "public", method: str | None = "double_opt_in",
          channel: str = "email", contact_point: str | None = A, mid: str = "t1") -> Event:
    props: dict[str, object] = {"purpose": "marketing", "channel": channel, "status": status}
    if contact_point is not None:
        props["contact_point"] = contact_point
    if method is not None:
        props["evidence"] = {"method": method}
    return Event(kind="track", event="Consent Updated", message_id=mid, source="web", timestamp=at,
                 received_at=at, provenance="customer_provided", user_id="u1", properties=props, trust=trust)


def _ledger(*events: Event) -> ConsentLedger:
    return fold_consent(events)


def _email_marketing(ledger: ConsentLedger, suppressed: frozenset[str] = frozenset()) -> bool:
    person = PolicyPerson(contact_points=(email(A),), consent=ledger, suppressed=suppressed)
    return decide(person, Intent("marketing"), ["email"], later(30), SETTINGS).allowed


# ---- claims ----
def test_a_public_double_opt_in_claim_is_recorded_but_does_not_confirm_or_count() -> None:
    ledger = _ledger(claim(consent("granted", "email", A, method="double_opt_in")))
    s = ledger.state("marketing", "email", A)
    assert s.status == "claimed" and not s.confirmed and not s.granted
    change = s.history[-1]
    assert change.record is not None and change.record.trust == "public"
    assert change.record.evidence.method == "double_opt_in"  # the evidence is kept, as a claim
    assert not _email_marketing(ledger)
    person = PolicyPerson(contact_points=(email(A),), consent=ledger)
    d = decide(person, Intent("marketing"), ["email"], later(1), SETTINGS)
    assert d.codes() == ("no_consent",) and "claim" in d.reasons[0].detail


def test_a_claim_is_confirmed_by_a_later_server_grant() -> None:
    ledger = _ledger(claim(consent("granted", "email", A)), consent("granted", "email", A, at=later(1)))
    s = ledger.state("marketing", "email", A)
    assert s.status == "granted" and s.confirmed
    assert _email_marketing(ledger)


def test_a_claim_never_lifts_a_withdrawal_or_objection() -> None:
    for restriction in ("withdrawn", "objected"):
        ledger = _ledger(consent("granted", "email", A), consent(restriction, "email", A, at=later(1)),
                         claim(consent("granted", "email", A, at=later(2))))
        s = ledger.state("marketing", "email", A)
        assert s.status == restriction
        assert s.history[-1].applied is False and "claim" in s.history[-1].note
        assert not _email_marketing(ledger)


def test_a_claim_does_not_downgrade_a_trusted_grant() -> None:
    ledger = _ledger(consent("granted", "email", A), claim(consent("granted", "email", A, at=later(1))))
    s = ledger.state("marketing", "email", A)
    assert s.status == "granted" and s.confirmed


def test_a_restriction_from_any_trust_applies() -> None:
    for trust in ("public", "verified"):
        ledger = _ledger(consent("granted", "email", A),
                         replace(consent("withdrawn", "email", A, at=later(1)), trust=trust))
        assert ledger.state("marketing", "email", A).status == "withdrawn"


def test_verified_grants_count_but_their_double_opt_in_is_not_a_confirmation() -> None:
    ledger = _ledger(verified(consent("granted", "email", A, method="double_opt_in")))
    s = ledger.state("marketing", "email", A)
    assert s.status == "granted" and not s.confirmed
    assert not _email_marketing(ledger)  # email marketing needs a double opt-in takt or a server confirms
    sms = _ledger(verified(consent("granted", "sms", "+4930123456", method="web_form")))
    assert sms.state("marketing", "sms", "+4930123456").granted


def test_consent_updated_calls_keep_their_trust() -> None:
    (out,) = consent_events_from_track(track("granted"))
    assert out.trust == "public" and out.is_claim


def test_a_public_claim_does_not_lift_an_unsubscribe() -> None:
    """Issue 11, story 1, at the ledger: after a one-click unsubscribe, a browser's double-opt-in claim for
    the same person neither confirms consent nor lifts the suppression entry."""
    unsubscribe = consent("withdrawn", "email", A, method="unsubscribe_link", at=later(1))
    entry = SuppressionEntry("email", contact_point_hash(KEY, "email", A), "unsubscribe", later(1), "test")
    changes = [consent("granted", "email", A), unsubscribe]
    changes += consent_events_from_track(track("granted", at=later(2)))
    ledger = _ledger(*changes)
    assert ledger.state("marketing", "email", A).status == "withdrawn"
    assert not lifted(entry, email(A), ledger)
    assert not _email_marketing(ledger, frozenset({entry.hash}))
    # the same call from the company's backend (server trust) is the customer re-subscribing
    trusted = _ledger(consent("granted", "email", A), unsubscribe,
                      *consent_events_from_track(track("granted", at=later(2), trust="server")))
    assert lifted(entry, email(A), trusted)


# ---- order ----
def _stored(pairs: list[tuple[int, Event]]) -> list[StoredEvent]:
    return [StoredEvent(pos, e) for pos, e in pairs]


def test_the_latest_choice_wins_whatever_order_the_log_has() -> None:
    """The demo's case: a withdrawal of SMS dated 2026-07-04 at log position 12 must not lose to a grant dated
    2026-02-14 that reached the log later (position 1606, an app's offline queue)."""
    cp = "+4930123456"
    withdrawal = consent("withdrawn", "sms", cp, method=None, at=datetime(2026, 7, 4, tzinfo=UTC))
    grant = consent("granted", "sms", cp, method="web_form", at=datetime(2026, 2, 14, tzinfo=UTC))
    changes, _ = consent_changes(_stored([(1606, grant), (12, withdrawal)]))
    ledger = ledger_of(changes)
    s = ledger.state("marketing", "sms", cp)
    assert s.status == "withdrawn" and s.since == datetime(2026, 7, 4, tzinfo=UTC)


def test_a_grant_dated_after_a_withdrawal_regrants_only_when_trusted() -> None:
    w = consent("withdrawn", "email", A, method=None, at=later(1))
    by_customer = consent("granted", "email", A, at=later(2))
    # the grant reached the log first; the withdrawal (older) came later: the grant is still the latest act
    assert _ledger(by_customer, w).state("marketing", "email", A).status == "granted"
    assert _ledger(claim(by_customer), w).state("marketing", "email", A).status == "withdrawn"
    by_import = consent("granted", "email", A, actor="import", at=later(2))
    assert _ledger(by_import, w).state("marketing", "email", A).status == "withdrawn"


def test_ties_in_time_keep_log_order() -> None:
    g, w = consent("granted", "email", A), consent("withdrawn", "email", A, method=None)
    assert _ledger(g, w).state("marketing", "email", A).status == "withdrawn"
    changes, _ = consent_changes(_stored([(7, w), (3, g)]))
    assert ledger_of(changes).state("marketing", "email", A).status == "withdrawn"


def test_a_time_after_receipt_does_not_count() -> None:
    """A client cannot date a grant into the future to outrank a later withdrawal: an event cannot have
    happened after takt received it."""
    future = replace(consent("granted", "email", A), timestamp=later(365), received_at=later(1))
    w = consent("withdrawn", "email", A, method=None, at=later(2))
    assert _ledger(future, w).state("marketing", "email", A).status == "withdrawn"
    assert _ledger(w, future).state("marketing", "email", A).status == "withdrawn"


_EVENT = st.tuples(
    st.sampled_from(["granted", "withdrawn", "objected"]),
    st.sampled_from(["customer", "import"]),
    st.sampled_from(["server", "verified", "public"]),
    st.sampled_from(["double_opt_in", "web_form"]),
    st.sampled_from(["email", "sms"]),
    st.integers(0, 5),  # day: ties happen
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENT, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_shuffling_arrival_gives_the_same_decisions(specs: list[tuple[str, str, str, str, str, int]],
                                                    rnd: object) -> None:
    """Consent events arriving in any order (distinct times) give the same states and decisions."""
    events = []
    for i, (status, actor, trust, method, channel, day) in enumerate(specs):
        cp = A if channel == "email" else "+4930123456"
        at = later(day) + timedelta(seconds=i)  # distinct times: the order is the time order
        events.append(replace(consent(status, channel, cp, actor=actor, method=method, at=at), trust=trust))
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    stored = list(enumerate(shuffled, start=1))
    a = ledger_of(consent_changes(_stored(list(enumerate(events, start=1))))[0])
    b = ledger_of(consent_changes(_stored(stored))[0])
    for channel, cp in (("email", A), ("sms", "+4930123456")):
        sa, sb = a.state("marketing", channel, cp), b.state("marketing", channel, cp)
        assert (sa.status, sa.confirmed, sa.actor, sa.since) == (sb.status, sb.confirmed, sb.actor, sb.since)
    person_a = PolicyPerson(contact_points=(email(A),), consent=a)
    person_b = PolicyPerson(contact_points=(email(A),), consent=b)
    for purpose in ("marketing", "transactional"):
        da = decide(person_a, Intent(purpose), ["email"], later(30), SETTINGS)
        db = decide(person_b, Intent(purpose), ["email"], later(30), SETTINGS)
        assert da.codes() == db.codes() and da.allowed == db.allowed


@settings(max_examples=100, deadline=None)
@given(st.lists(_EVENT, min_size=1, max_size=8))
def test_a_claim_never_makes_marketing_allowed(specs: list[tuple[str, str, str, str, str, int]]) -> None:
    """Adding public claims to any history never turns a refusal into permission."""
    trusted, with_claims = [], []
    for i, (status, actor, trust, method, channel, day) in enumerate(specs):
        cp = A if channel == "email" else "+4930123456"
        ev = replace(consent(status, channel, cp, actor=actor, method=method,
                             at=later(day) + timedelta(seconds=i)), trust=trust)
        with_claims.append(ev)
        if trust != "public":
            trusted.append(ev)
    for channel, cp in (("email", A), ("sms", "+4930123456")):
        point = email(A) if channel == "email" else phone(cp)
        base = PolicyPerson(contact_points=(point,), consent=_ledger(*trusted))
        more = PolicyPerson(contact_points=(point,), consent=_ledger(*with_claims))
        if not decide(base, Intent("marketing"), [channel], later(30), SETTINGS).allowed:
            assert not decide(more, Intent("marketing"), [channel], later(30), SETTINGS).allowed
