"""The stable reason codes of contact policy, each with the one sentence that explains it.

A code never changes meaning; ``docs/policy.md`` lists every code with its sentence (a test keeps the two in
step). A :class:`Reason` pairs a code with a free-form ``detail`` naming the channel, contact point or numbers
involved; the code and sentence are stable, the detail is for people.
"""

from __future__ import annotations

from dataclasses import dataclass

from takt.errors import TaktError

REASONS: dict[str, str] = {
    "allowed": "The message may be sent on the chosen channel to the chosen contact point.",
    "third_party_contact_point": "The contact point came from a third party (e.g. a data broker "
    "or enrichment tool); it is never used for outreach.",
    "observed_contact_point": "The contact point was observed, not given by the customer; it is "
    "never used for outreach.",
    "claimed_contact_point": "The contact point was only claimed through a public client (a browser or app "
    "key anyone can read); it becomes usable once the company's backend, a verified session or a double "
    "opt-in confirmation reported through a server key vouches for it.",
    "not_customer_given": "The contact point was imported without a mark that the customer gave "
    "it to this company; marketing may only use contact points the customer gave.",
    "no_contact_point": "The customer has no usable contact point for this channel.",
    "suppressed": "The contact point is on the suppression list; it is never used.",
    "objected": "The customer objected to this processing (GDPR Art. 21); an objection to "
    "direct marketing blocks marketing on every channel until the customer grants consent again.",
    "withdrawn": "The customer withdrew consent for this purpose on this channel; only a new "
    "grant from the customer themselves lifts it.",
    "no_consent": "The customer has not given consent for this purpose on this channel.",
    "not_double_opted_in": "Email marketing consent counts only once the customer confirmed it "
    "by double opt-in.",
    "complaint_cooloff": "The customer complained recently; no marketing until the cooling-off "
    "period ends.",
    "budget_exhausted": "The customer already received the most marketing messages allowed in "
    "the pressure window, across all campaigns and channels.",
    "daily_limit": "The customer already received the most marketing messages allowed in the "
    "last 24 hours.",
    "quiet_hours": "It is within quiet hours in the customer's time zone.",
    "not_preferred_channel": "The customer stated a preferred channel for marketing, and this "
    "is not it.",
    "one_channel_per_message": "Another channel was chosen for this message; one message uses "
    "one channel.",
}
"""Every reason code with its sentence, in the order decisions list them."""

ORDER = {code: i for i, code in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.code not in REASONS:
            raise TaktError(f"unknown policy reason code {self.code!r}", code="invalid_reason", status=500)

    @property
    def sentence(self) -> str:
        return REASONS[self.code]

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "sentence": self.sentence, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


def sort_reasons(reasons: list[Reason]) -> tuple[Reason, ...]:
    """Reasons in the documented order of their codes, each (code, detail) once."""
    seen: dict[tuple[str, str], Reason] = {}
    for r in reasons:
        seen.setdefault((r.code, r.detail), r)
    return tuple(sorted(seen.values(), key=lambda r: ORDER[r.code]))
