"""Small texts read right: "an identify call", "an admin key", reasons joined as sentences (issue 12.13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from takt.api.openapi import _collect_op
from takt.models.offers.catalog import validate_catalog
from takt.models.offers.rank import Request, rank
from takt.policy.decide import Decision
from takt.policy.reasons import Reason
from takt.text import article, sentences


@pytest.mark.parametrize(("word", "expected"), [
    ("identify", "an identify"), ("admin", "an admin"), ("email", "an email"), ("track", "a track"),
    ("write", "a write"), ("page", "a page"), ("user", "a user"), ("SMS", "an SMS"), ("hour", "an hour"),
    ("unsubscribe", "an unsubscribe"), ("alias", "an alias"), ("one", "a one"), ("", "a "),
])
def test_article(word: str, expected: str) -> None:
    assert article(word) == expected


def test_sentences_are_joined_as_sentences() -> None:
    assert sentences(["No consent for this channel.", "The address bounced."]) == \
        "No consent for this channel. The address bounced."
    assert sentences(["no period", "Next."]) == "no period. Next."
    assert sentences([]) == ""


def test_collect_summaries_use_the_right_article() -> None:
    assert _collect_op("identify", "#/x")["post"]["summary"] == "Record an identify call"
    assert _collect_op("alias", "#/x")["post"]["summary"] == "Record an alias call"
    assert _collect_op("track", "#/x")["post"]["summary"] == "Record a track call"


def test_policy_reasons_of_an_excluded_offer_read_as_sentences() -> None:
    from tests.models.test_offers import KIM, KRABI, NOW, person

    offers = validate_catalog([KRABI])
    no = Decision(False, None, None, (Reason("no_consent", "x"), Reason("no_contact_point", "y")))
    out = rank(offers, person(KIM), Request(NOW, intent="marketing", channels=("email",)), policy=lambda ch: no)
    reason = out.excluded[0].reason
    assert ".;" not in reason and ". " in reason, reason
    assert reason == sentences(r.sentence for r in no.reasons)


def test_a_wrong_key_kind_names_an_admin_key() -> None:
    from takt.api.auth import Authenticator
    from takt.errors import TaktError
    from takt.keys import ApiKey

    key = ApiKey("k1", "write", "website", None, None, datetime(2026, 1, 1, tzinfo=UTC))

    class Keys:
        def lookup(self, raw: str) -> ApiKey:
            return key

    with pytest.raises(TaktError) as e:
        Authenticator(Keys()).require("raw", ("admin",))  # type: ignore[arg-type]
    assert "needs an admin key" in str(e.value) and "a write key" in str(e.value)


def test_explain_uses_the_right_article_for_any_event_kind() -> None:
    from takt.segments import explain, parse

    assert "had an alias event" in explain(parse("count(alias) >= 1"))
    assert "had a group event" in explain(parse("count(group) >= 1"))


def test_an_empty_email_contact_point_reads_right() -> None:
    from takt.errors import TaktError
    from takt.policy.person import ContactPoint

    with pytest.raises(TaktError, match="an email contact point needs a non-empty value"):
        ContactPoint("email", " ", "customer_provided")  # type: ignore[call-arg]
