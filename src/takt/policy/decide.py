"""The one decision every path to a customer goes through: may this message go out, on which channel, to
which contact point, and why (not)?

:func:`decide` is pure: the same person, intent, candidates, time and settings give the same
:class:`Decision`. It evaluates every candidate channel, chooses **one** (one message, one channel) and
explains every channel it did not choose. See ``docs/policy.md`` for the rules in prose.

Marketing needs, on the chosen channel and contact point: consent granted for marketing (confirmed by double
opt-in for email when ``policy.email_marketing_requires_double_opt_in``), no withdrawal or objection since
(unless the customer granted again), a contact point the customer gave this company, not suppressed, no
complaint within the cooling-off period, room in the budget (per pressure window and per 24 hours) and a time
outside quiet hours; and, when the customer stated a preferred channel, that channel.

Transactional and service messages need no consent and are outside the budget, quiet hours (except phone
calls) and the complaint cooling-off, and they fall back to another channel when the preferred one is not
usable. They still never go to a third-party or observed contact point or to one suppressed for every purpose (a hard
bounce, an erasure, an operator's entry; an unsubscribe or complaint suppresses marketing only), and they
respect a withdrawal or objection the customer recorded for that very purpose and channel.

No message of any purpose goes to a *claimed* contact point (``ContactPoint.claim``: asserted only through a
public client, never vouched for by the backend, a verified session or a double opt-in confirmation through a
server key): ``claimed_contact_point``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from takt.errors import TaktError
from takt.events.model import PROVENANCE_RANK
from takt.policy.config import PolicySettings, zone
from takt.policy.messages import complaint_times
from takt.policy.person import ContactPoint, PolicyPerson
from takt.policy.pressure import in_quiet_hours, last_complaint_within, marketing_sent_since
from takt.policy.reasons import Reason, sort_reasons
from takt.policy.suppression import contact_point_hash
from takt.policy.vocab import CHANNEL_KIND, CHANNEL_ORDER, CHANNELS, MESSAGE_PURPOSES


@dataclass(frozen=True, slots=True)
class Intent:
    """What the message is for: ``purpose`` is ``marketing``, ``transactional`` or ``service``."""

    purpose: str
    campaign: str | None = None

    def __post_init__(self) -> None:
        if self.purpose not in MESSAGE_PURPOSES:
            raise TaktError(f"unknown message purpose {self.purpose!r} (expected one of "
                            f"{', '.join(MESSAGE_PURPOSES)})", code="invalid_policy_input")

    @property
    def marketing(self) -> bool:
        return self.purpose == "marketing"


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed`` with the one ``channel`` and ``contact_point`` (``None`` for in_app) to use; ``reasons``
    explain the outcome (``allowed``, or why no channel could be used); ``rejected`` maps every other candidate
    channel to why it was not used."""

    allowed: bool
    channel: str | None
    contact_point: str | None
    reasons: tuple[Reason, ...]
    rejected: Mapping[str, tuple[Reason, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "channel": self.channel,
            "contact_point": self.contact_point,
            "reasons": [r.to_json() for r in self.reasons],
            "rejected": {ch: [r.to_json() for r in rs] for ch, rs in self.rejected.items()},
        }

    def explain(self) -> list[str]:
        """One line per reason, for people."""
        lines = [f"{r.sentence} ({r.detail})" if r.detail else r.sentence for r in self.reasons]
        for channel, reasons in self.rejected.items():
            lines.extend(f"{channel}: {r.sentence} ({r.detail})" if r.detail else f"{channel}: {r.sentence}"
                         for r in reasons)
        return lines


def _bad(message: str) -> TaktError:
    return TaktError(message, code="invalid_policy_input")


def _candidates(candidate_channels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(candidate_channels, str):
        raise _bad("candidate_channels must be a sequence of channels, not one string")
    out: dict[str, None] = {}
    for ch in candidate_channels:
        if ch not in CHANNELS:
            raise _bad(f"unknown channel {ch!r} (expected one of {', '.join(CHANNELS)})")
        out.setdefault(ch, None)
    if not out:
        raise _bad("no candidate channels: give at least one channel the message could use")
    return tuple(out)


def channel_order(candidates: Sequence[str], preferred: str | None, touchpoints: Mapping[str, int]) -> list[str]:
    """Candidates in the order they are tried: the stated preference, then the channel the person engages with
    most, then :data:`~takt.policy.vocab.CHANNEL_ORDER`."""
    return sorted(candidates, key=lambda ch: (ch != preferred, -touchpoints.get(ch, 0), CHANNEL_ORDER.index(ch)))


def _consent_reasons(person: PolicyPerson, intent: Intent, channel: str, cp: str | None,
                     settings: PolicySettings) -> list[Reason]:
    state = person.consent.state(intent.purpose, channel, cp)
    where = f"{channel} {cp}" if cp else channel
    if state.status in ("withdrawn", "objected"):
        when = state.since.isoformat() if state.since else "?"
        return [Reason(state.status, f"{where}: {intent.purpose} {state.status} at {when} by {state.actor}")]
    if not intent.marketing:
        return []
    if state.status == "none":
        return [Reason("no_consent", f"{where}: no marketing consent on record")]
    if state.status == "claimed":
        return [Reason("no_consent", f"{where}: only a claim from a public client (browser or app key), not "
                                     f"yet confirmed")]
    if channel == "email" and settings.email_marketing_requires_double_opt_in and not state.confirmed:
        return [Reason("not_double_opted_in", f"{where}: granted but not confirmed by double opt-in")]
    return []


def _contact_point_reasons(person: PolicyPerson, intent: Intent, channel: str, cp: ContactPoint,
                           settings: PolicySettings) -> list[Reason]:
    reasons: list[Reason] = []
    where = f"{channel} {cp.value}"
    if cp.claim:
        reasons.append(Reason("claimed_contact_point", f"{where}: only claimed through a public client"))
    elif cp.provenance == "third_party":
        reasons.append(Reason("third_party_contact_point", f"{where}: provenance third_party"))
    elif cp.provenance == "observed":
        reasons.append(Reason("observed_contact_point", f"{where}: provenance observed"))
    elif intent.marketing and not cp.given_by_customer:
        reasons.append(Reason("not_customer_given", f"{where}: imported without the customer-given mark"))
    reasons.extend(_suppression_reasons(person, intent, cp, settings, where))
    reasons.extend(_consent_reasons(person, intent, channel, cp.value, settings))
    return reasons


def _suppression_reasons(person: PolicyPerson, intent: Intent, cp: ContactPoint, settings: PolicySettings,
                         where: str) -> list[Reason]:
    """An entry for every purpose blocks any message; an unsubscribe or complaint entry blocks marketing."""
    if not person.suppressed and not (intent.marketing and person.suppressed_marketing):
        return []
    h = contact_point_hash(settings.suppression_key, cp.kind, cp.value)
    if h in person.suppressed:
        return [Reason("suppressed", f"{where}: on the suppression list")]
    if intent.marketing and h in person.suppressed_marketing:
        return [Reason("suppressed", f"{where}: on the suppression list for marketing (unsubscribed or "
                                     f"complained)")]
    return []


def _contact_point_order(cp: ContactPoint) -> tuple[bool, int, bool, bool, str]:
    """Trusted before claimed whatever the provenance, then by provenance, customer-given, verified."""
    return (cp.claim, PROVENANCE_RANK[cp.provenance], not cp.given_by_customer, not cp.verified, cp.value)


def _channel(person: PolicyPerson, intent: Intent, channel: str,
             settings: PolicySettings) -> tuple[str | None, list[Reason]]:
    """The contact point to use on ``channel`` (``None`` for in_app) and the reasons it cannot be used."""
    kind = CHANNEL_KIND[channel]
    if kind is None:
        return None, _consent_reasons(person, intent, channel, None, settings)
    points = sorted((cp for cp in person.contact_points if cp.kind == kind), key=_contact_point_order)
    if not points:
        return None, [Reason("no_contact_point", f"{channel}: no {kind} contact point")]
    blocked: list[Reason] = []
    for cp in points:
        reasons = _contact_point_reasons(person, intent, channel, cp, settings)
        if not reasons:
            return cp.value, []
        blocked.extend(reasons)
    return None, blocked


def _person_reasons(person: PolicyPerson, intent: Intent, now: datetime, settings: PolicySettings) -> list[Reason]:
    """Reasons that hold for every channel."""
    if not intent.marketing:
        return []
    reasons: list[Reason] = []
    complaint = last_complaint_within((*person.complaints, *complaint_times(person.messages)), now,
                                      settings.complaint_cooloff_days)
    if complaint is not None:
        reasons.append(Reason("complaint_cooloff", f"complaint at {complaint.isoformat()}, cooling off for "
                                                   f"{settings.complaint_cooloff_days} days"))
    window = marketing_sent_since(person.messages, now - timedelta(days=settings.pressure_window_days))
    if window >= settings.max_marketing_per_window:
        reasons.append(Reason("budget_exhausted", f"{window} marketing messages in the last "
                                                  f"{settings.pressure_window_days} days (limit "
                                                  f"{settings.max_marketing_per_window})"))
    day = marketing_sent_since(person.messages, now - timedelta(days=1))
    if day >= settings.max_marketing_per_day:
        reasons.append(Reason("daily_limit", f"{day} marketing messages in the last 24 hours (limit "
                                             f"{settings.max_marketing_per_day})"))
    return reasons


def decide(person: PolicyPerson, intent: Intent, candidate_channels: Sequence[str], now: datetime,
           settings: PolicySettings) -> Decision:
    """May a message with ``intent`` reach ``person`` now, and on which one of ``candidate_channels``?"""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise _bad("now must be a timezone-aware datetime")
    if not isinstance(person, PolicyPerson) or not isinstance(intent, Intent) \
            or not isinstance(settings, PolicySettings):
        raise _bad("decide takes a PolicyPerson, an Intent and PolicySettings")
    candidates = _candidates(candidate_channels)
    common = _person_reasons(person, intent, now, settings)
    tz = person.time_zone or settings.default_time_zone
    quiet = in_quiet_hours(now, tz, settings.quiet_hours_start, settings.quiet_hours_end)
    local = now.astimezone(zone(tz)).strftime("%H:%M")

    evaluated: dict[str, tuple[str | None, list[Reason]]] = {}
    for ch in candidates:
        reasons = list(common)
        if quiet and (intent.marketing or ch == "phone"):
            reasons.append(Reason("quiet_hours", f"{local} in {tz}, quiet from {settings.quiet_hours_start} to "
                                                 f"{settings.quiet_hours_end}"))
        cp, cp_reasons = _channel(person, intent, ch, settings)
        evaluated[ch] = (cp, reasons + cp_reasons)

    preferred = person.preferred_channel
    exclusive = intent.marketing and preferred is not None
    order = channel_order(candidates, preferred, person.touchpoints)
    chosen: str | None = None
    for ch in order:
        if exclusive and ch != preferred:
            continue
        if not evaluated[ch][1]:
            chosen = ch
            break

    rejected: dict[str, tuple[Reason, ...]] = {}
    for ch in order:
        if ch == chosen:
            continue
        reasons = list(evaluated[ch][1])
        if exclusive and ch != preferred:
            reasons.append(Reason("not_preferred_channel", f"{ch}: the customer prefers {preferred}"))
        if not reasons:
            reasons.append(Reason("one_channel_per_message", f"{ch}: {chosen} was chosen"))
        rejected[ch] = sort_reasons(reasons)

    if chosen is None:
        summary: dict[str, Reason] = {}
        for ch in order:
            for r in rejected[ch]:
                summary.setdefault(r.code, r)
        return Decision(False, None, None, sort_reasons(list(summary.values())), MappingProxyType(rejected))
    cp = evaluated[chosen][0]
    if chosen == preferred:
        why = "the customer's preferred channel"
    elif person.touchpoints.get(chosen, 0) > 0:
        why = f"the usable channel the customer engages with most ({person.touchpoints[chosen]} touchpoints)"
    else:
        why = "the first usable channel in the fixed order " + ", ".join(CHANNEL_ORDER)
    target = f"{chosen} {cp}" if cp else chosen
    return Decision(True, chosen, cp, (Reason("allowed", f"{target}: {why}"),), MappingProxyType(rejected))
