"""The API shape of a profile (what ``GET /profiles/{id}`` returns), computed at a given ``now``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from takt.identity.resolver import Cluster, iso
from takt.profiles.config import ProfileConfig
from takt.profiles.fold import is_claim, trust_of
from takt.profiles.interests import decayed
from takt.profiles.state import JSON, ProfileState


def _event_ref(entry: JSON) -> JSON:
    return {"position": entry["position"], "message_id": entry["message_id"]}


def interests_at(state: ProfileState, now: datetime, config: ProfileConfig) -> list[JSON]:
    """Interests decayed to ``now``, highest first (reading before a key's last event does not decay it)."""
    return [{"key": k, "score": round(s, 6)} for k, s in decayed(state.interests, now, config)]


def profile_json(state: ProfileState, cluster: Cluster | None, now: datetime, config: ProfileConfig) -> JSON:
    st = state.stats
    orders = st["orders"]
    cases = st["cases"]
    open_cases = sorted(cid for cid, c in cases.items() if c["status"] == "open")
    in_repair = sorted({c["product_in_repair"] for c in cases.values()
                        if c["status"] == "open" and c["product_in_repair"]})
    traits: dict[str, Any] = {
        name: {"value": t["value"], "provenance": t["provenance"], "source": t["source"], "at": t["at"],
               "trust": trust_of(t), "claim": is_claim(t), "event": _event_ref(t)}
        for name, t in sorted(state.traits.items())
    }
    contacts = [
        {"type": c["type"], "value": c["value"], "provenance": c["provenance"], "source": c["source"],
         "first_seen": c["first_seen"], "last_seen": c["last_seen"], "verified": c["verified"],
         "verified_at": c["verified_at"], "customer_given": c["customer_given"], "trust": trust_of(c),
         "claim": is_claim(c) and not c["verified"], "event": _event_ref(c)}
        for _, c in sorted(state.contacts.items())
    ]
    return {
        "id": state.id,
        "identifiers": list(cluster.identifiers) if cluster else [],
        "merges": [m.to_dict() for m in cluster.merges] if cluster else [],
        "conflicts": [c.to_dict() for c in cluster.conflicts.values()] if cluster else [],
        "splits": [s.to_dict() for s in cluster.splits] if cluster else [],
        "traits": traits,
        "contact_points": contacts,
        "stats": {
            "first_seen": st["first_seen"],
            "last_seen": st["last_seen"],
            "events": st["events"],
            "event_counts": dict(sorted(st["event_counts"].items())),
            "sessions": st["sessions"]["count"],
            "orders": {
                "count": orders["count"],
                "revenue": round(orders["revenue"], 2),
                "average_value": round(orders["revenue"] / orders["count"], 2) if orders["count"] else None,
                "last_order_at": orders["last_order_at"],
                "last_order_id": orders["last_order_id"],
                "categories": dict(sorted(orders["categories"].items())),
            },
            "returns": {"count": st["returns"]["count"], "amount": round(st["returns"]["amount"], 2),
                        "last_at": st["returns"]["last_at"]},
            "cases": {"open": open_cases, "open_count": len(open_cases),
                      "closed_count": sum(1 for c in cases.values() if c["status"] == "closed")},
            "products_in_repair": in_repair,
        },
        "touchpoints": {ch: {"count": tp["count"], "last_at": tp["last_at"], "hours": list(tp["hours"])}
                        for ch, tp in sorted(state.touchpoints.items())},
        "interests": interests_at(state, now, config),
        "top_interest": state.top_interest,
        "interest_shifts": list(state.shifts),
        "as_of": iso(now),
    }
