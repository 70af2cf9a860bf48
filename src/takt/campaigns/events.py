"""The events a running campaign writes to the log: its lifecycle, enrolments and each person's progress.

The log is the truth: :mod:`takt.campaigns.runs` rebuilds the whole state of every campaign run from these
events (and the ``message`` events of :mod:`takt.policy.messages`), so a restart continues where the last
process stopped and a person's timeline shows every step.

* ``campaign`` (no person): ``{campaign, version, action: launched|paused|resumed|stopped, at}``;
* ``campaign_enrolled``: ``{campaign, version, profile_id, holdout, at, cause}`` — at most one per
  (campaign version, person): the id is derived from them;
* ``campaign_step``: ``{campaign, version, profile_id, step, outcome, next, wake, until, at}`` plus, for a
  send step, ``message_id``, ``channel`` and ``reasons`` (the reason codes of the decision): where the person
  is now (``next``: the path of the step to run next, ``None`` when done; ``wake``: not before; ``until``:
  the deadline of a ``wait_until``). Outcomes: ``waiting``, ``waited``, ``then``, ``else``, ``exited``,
  ``continued``, ``sent``, ``failed``, ``skipped``, ``deferred``, ``unknown``, ``done``.

A message itself is a ``message`` event (``takt.policy.messages``): ``attempted`` is appended — durably —
before the channel is called (its log id ``<message_id>:attempted`` is the unique claim: only the process
whose append stored it sends), ``sent`` or ``failed`` after.

Person events carry the person's identifier (``user_id`` …, as the unsubscribe link's events do) so identity
puts them in the person's profile: the ``message`` events count in the contact budget, every event shows in
the timeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from takt.events.model import Event, register_kind
from takt.identity.extract import NO_IDENTITY_KINDS
from takt.policy.messages import MESSAGE

CAMPAIGN = register_kind(
    "campaign",
    "A campaign's lifecycle: properties.campaign, version, action (launched/paused/resumed/stopped), at.",
)
CAMPAIGN_ENROLLED = register_kind(
    "campaign_enrolled",
    "A person enrolled in a campaign: properties.campaign, version, profile_id, holdout (kept out for "
    "measuring uplift), at, cause.",
)
CAMPAIGN_STEP = register_kind(
    "campaign_step",
    "A person's progress through a campaign: properties.campaign, version, profile_id, step, outcome, next, "
    "wake, until, at (and for a send: message_id, channel, reasons).",
)
NO_IDENTITY_KINDS.add(CAMPAIGN)
SOURCE = "takt.campaigns"
ACTIONS = ("launched", "paused", "resumed", "stopped", "audience_enrolled", "scheduled")


def _id(*parts: object) -> str:
    return "takt-campaign-" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def lifecycle(campaign: str, version: int, action: str, at: datetime, serial: int) -> Event:
    """``serial``: how many lifecycle events the campaign had before (a second ``pause`` is a new event)."""
    return Event(kind=CAMPAIGN, message_id=_id(CAMPAIGN, campaign, version, action, serial), source=SOURCE,
                 timestamp=at, received_at=at, provenance="observed",
                 properties={"campaign": campaign, "version": version, "action": action, "at": at.isoformat()})


def enrolled(campaign: str, version: int, profile_id: str, holdout: bool, at: datetime,
             cause: Mapping[str, Any], link: Mapping[str, Any]) -> Event:
    return Event(kind=CAMPAIGN_ENROLLED, message_id=_id(CAMPAIGN_ENROLLED, campaign, version, profile_id),
                 source=SOURCE, timestamp=at, received_at=at, provenance="observed",
                 properties={"campaign": campaign, "version": version, "profile_id": profile_id,
                             "holdout": holdout, "at": at.isoformat(), "cause": dict(cause)}, **link)


def step(campaign: str, version: int, profile_id: str, path: str, outcome: str, at: datetime,
         link: Mapping[str, Any], *, next_path: str | None, wake: datetime | None = None,
         until: datetime | None = None, serial: int = 0, **extra: Any) -> Event:
    """``serial`` tells repeated outcomes of one step apart (a send deferred twice)."""
    props: dict[str, Any] = {"campaign": campaign, "version": version, "profile_id": profile_id, "step": path,
                             "outcome": outcome, "next": next_path, "wake": _iso(wake), "until": _iso(until),
                             "at": at.isoformat()}
    props.update({k: v for k, v in extra.items() if v is not None})
    return Event(kind=CAMPAIGN_STEP, message_id=_id(CAMPAIGN_STEP, campaign, version, profile_id, path, outcome,
                                                    serial),
                 source=SOURCE, timestamp=at, received_at=at, provenance="observed", properties=props, **link)


def message(message_id: str, status: str, channel: str, contact_point: str | None, campaign: str, intent: str,
            at: datetime, link: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> Event:
    """A ``message`` lifecycle event (``attempted``, ``sent``, ``failed``); its log id is
    ``<message_id>:<status>`` — appending ``attempted`` twice stores it once."""
    props: dict[str, Any] = {"message_id": message_id, "status": status, "channel": channel,
                             "campaign": campaign, "intent": intent}
    if contact_point:
        props["contact_point"] = contact_point
    return Event(kind=MESSAGE, message_id=f"{message_id}:{status}", source=SOURCE, timestamp=at, received_at=at,
                 provenance="observed", properties=props, context=dict(context or {}), **link)
