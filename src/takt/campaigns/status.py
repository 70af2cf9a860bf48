"""What a campaign run did, and the campaign messages of one person, read from the orchestrator's folded state
(:class:`~takt.campaigns.runs.Runs`) and, for conversions, the people's events."""

from __future__ import annotations

from collections import Counter
from typing import Any

from takt.campaigns.journey import step_at
from takt.campaigns.model import Send, message_id, step_paths
from takt.campaigns.orchestrator import Orchestrator
from takt.errors import TaktError


def campaign_status(orch: Orchestrator, name: str) -> dict[str, Any]:
    """``enrolled``, ``holdout``, ``waiting`` (not done), ``done``, messages ``sent``, ``skipped`` by reason code,
    ``failed``, ``unknown`` outcome (attempted, no outcome: never sent again), ``conversions`` (goal events within
    the goal's window after the person's first sent message)."""
    with orch._lock:
        orch.refresh()
        run = orch.runs.runs.get(name)
        if run is None:
            raise TaktError(f"campaign {name!r} was never launched", code="campaign_not_launched", status=404)
        campaign = orch.campaign_of(run)
        enrolments = orch.runs.of_campaign(name)
        sends = [p for p, s in step_paths(campaign.steps).items() if isinstance(s, Send)]
        counts: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        first_sent: dict[str, Any] = {}
        for e in enrolments:
            for path in sends:
                mid = message_id(name, run.version, path, e.profile_id)
                status = orch.runs.status_of(mid)
                if status is None:
                    continue
                counts[status] += 1
                m = orch.runs.messages[mid]
                if status == "skipped":
                    skipped.update(m.reasons or ("unknown_reason",))
                if status == "sent" and m.at is not None:
                    first_sent[e.profile_id] = min(first_sent.get(e.profile_id, m.at), m.at)
    return {"campaign": name, "version": run.version, "status": run.status,
            "launched_at": run.launched_at.isoformat(),
            "enrolled": sum(1 for e in enrolments if not e.holdout),
            "holdout": sum(1 for e in enrolments if e.holdout),
            "waiting": sum(1 for e in enrolments if e.next is not None and not e.holdout),
            "done": sum(1 for e in enrolments if e.next is None and not e.holdout),
            "sent": counts["sent"], "failed": counts["failed"], "unknown": counts["unknown"],
            "skipped": dict(sorted(skipped.items())),
            "conversions": _conversions(orch, campaign.goal, first_sent) if campaign.goal else None}


def _conversions(orch: Orchestrator, goal: Any, first_sent: dict[str, Any]) -> int:
    n = 0
    for pid, at in first_sent.items():
        state = orch.people.state(pid)
        if state is None or not len(state.positions):
            continue
        for s in orch.storage.log.get(sorted(set(state.positions))):
            ev = s.event
            if ev.event == goal.event and at <= ev.timestamp <= at + goal.within:
                n += 1
                break
    return n


def person_messages(orch: Orchestrator, profile_id: str) -> list[dict[str, Any]]:
    """The person's campaign messages, oldest first, each with its status and why it was (not) allowed."""
    with orch._lock:
        orch.refresh()
        out = []
        for (campaign, pid), e in orch.runs.enrolments.items():
            if pid != profile_id:
                continue
            c = orch.campaigns(campaign, e.version)
            if c is None:
                continue
            for path, step in step_paths(c.steps).items():
                if not isinstance(step, Send) or step_at(c.steps, path) is None:
                    continue
                mid = message_id(campaign, e.version, path, pid)
                status = orch.runs.status_of(mid)
                if status is None:
                    continue
                m = orch.runs.messages[mid]
                out.append({"message_id": mid, "campaign": campaign, "version": e.version, "step": path,
                            "status": status, "channel": m.channel,
                            "at": m.at.isoformat() if m.at else None, "reasons": list(m.reasons),
                            "why": list(m.why)})
    return sorted(out, key=lambda m: m["at"] or "")
