"""A profile's state: plain JSON-able parts, so a snapshot is ``to_dict`` and a restore ``from_dict``.

* ``events``: ``[position, source, messageId]`` of every event folded, in position order: what a re-fold
  reads back from the log, and what makes applying an event twice a no-op.
* ``traits``: name → ``{value, provenance, source, at, position, message_id}`` (the winning value).
* ``contacts``: ``type:value`` → ``{type, value, provenance, source, first_seen, last_seen, verified,
  verified_at, customer_given, position, message_id}``.
* ``stats``: see :func:`new_stats`.
* ``touchpoints``: channel → ``{count, last_at, hours: [168 counts]}``.
* ``interests``: key → ``[score, as_of epoch seconds]``; ``top_interest`` the last declared top key and
  ``shifts`` the detected shifts (each with its cause).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = dict[str, Any]


def new_stats() -> JSON:
    return {
        "first_seen": None,
        "last_seen": None,
        "events": 0,
        "event_counts": {},
        "sessions": {"count": 0, "last_activity": None, "last_session_id": None},
        "orders": {"count": 0, "revenue": 0.0, "last_order_at": None, "last_order_id": None,
                   "categories": {}, "ids": []},
        "returns": {"count": 0, "amount": 0.0, "last_at": None},
        "cases": {},
    }


@dataclass(slots=True)
class ProfileState:
    id: str
    events: list[list[Any]] = field(default_factory=list)
    traits: dict[str, JSON] = field(default_factory=dict)
    contacts: dict[str, JSON] = field(default_factory=dict)
    stats: JSON = field(default_factory=new_stats)
    touchpoints: dict[str, JSON] = field(default_factory=dict)
    interests: dict[str, list[float]] = field(default_factory=dict)
    top_interest: str | None = None
    shifts: list[JSON] = field(default_factory=list)
    _keys: set[tuple[str, str]] = field(default_factory=set)

    def has(self, source: str, message_id: str) -> bool:
        return (source, message_id) in self._keys

    def note(self, position: int, source: str, message_id: str) -> None:
        self.events.append([position, source, message_id])
        self._keys.add((source, message_id))

    @property
    def positions(self) -> list[int]:
        return [int(e[0]) for e in self.events]

    def to_dict(self) -> JSON:
        return _copy({
            "id": self.id, "events": self.events, "traits": self.traits, "contacts": self.contacts,
            "stats": self.stats, "touchpoints": self.touchpoints, "interests": self.interests,
            "top_interest": self.top_interest, "shifts": self.shifts,
        })

    @staticmethod
    def from_dict(d: JSON) -> ProfileState:
        d = _copy(d)
        s = ProfileState(
            id=d["id"], events=d["events"], traits=d["traits"], contacts=d["contacts"], stats=d["stats"],
            touchpoints=d["touchpoints"], interests={k: [float(v[0]), float(v[1])] for k, v in d["interests"].items()},
            top_interest=d["top_interest"], shifts=d["shifts"],
        )
        s._keys = {(str(e[1]), str(e[2])) for e in s.events}
        return s


def _copy(d: JSON) -> JSON:
    """A deep copy of JSON-able data (orjson round trip: much faster than ``copy.deepcopy``)."""
    out: JSON = orjson.loads(orjson.dumps(d))
    return out
