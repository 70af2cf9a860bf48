"""A profile's state: compact in memory, JSON-able through ``to_dict``/``from_dict``, bytes through
``to_blob``/``from_blob`` (the row :mod:`takt.profiles.store` keeps per profile).

* ``folded``: the log position of every event folded, in position order (an ``array('q')``: 8 bytes each;
  :attr:`positions` gives them as a list). A re-fold reads them back from the log. ``keys`` holds, per event,
  8 bytes of a hash of its ``(source, messageId)``: what makes applying an event twice a no-op (:meth:`has`). The log is idempotent on
  ``(source, messageId)`` and positions are unique, so no more is kept per event.
* ``traits``: name → ``{value, provenance, source, at, position, message_id[, trust]}`` (the winning value).
* ``contacts``: ``type:value`` → ``{type, value, provenance, source, first_seen, last_seen, verified,
  verified_at, customer_given, position, message_id[, trust]}``.
* ``trust`` is the trust of the event that gave a trait its value, and the best trust of the events that gave a
  contact point, stored only when it is not
  ``server`` (so states written before trust existed read as ``server``); ``public`` marks a *claim*
  (:func:`takt.profiles.fold.is_claim`): only public clients asserted it.
* ``stats``: see :func:`new_stats`.
* ``touchpoints``: channel → ``{count, last_at, hours: [168 counts]}`` (``hours`` an ``array('I')`` once the
  state went through a blob or dict: 4 bytes an hour instead of a list's 8-byte pointers).
* ``interests``: key → ``[score, as_of epoch seconds]``; ``top_interest`` the last declared top key and
  ``shifts`` the detected shifts (each with its cause).
* ``policy``: the policy facts the fold keeps (consent changes, messages, the person's own time zone and
  language, the consent timeline of merged people; see :mod:`takt.policy.folded`); ``None`` in a state written
  before it existed (readers then re-read the events).
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = dict[str, Any]

BLOB_MAGIC = b"tkp1"
_HEAD = struct.Struct("<4sI")


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


def event_key(source: str, message_id: str) -> bytes:
    """8 bytes standing for ``(source, messageId)`` (BLAKE2b: the same on every machine and run)."""
    return hashlib.blake2b(f"{source}\x1f{message_id}".encode(), digest_size=8).digest()


def _positions() -> array[int]:
    return array("q")


def new_policy() -> JSON:
    """An empty policy section (see :mod:`takt.policy.folded`: its parts appear as events need them)."""
    return {}


@dataclass(slots=True)
class ProfileState:
    id: str
    folded: array[int] = field(default_factory=_positions)
    keys: bytearray = field(default_factory=bytearray)
    traits: dict[str, JSON] = field(default_factory=dict)
    contacts: dict[str, JSON] = field(default_factory=dict)
    stats: JSON = field(default_factory=new_stats)
    touchpoints: dict[str, JSON] = field(default_factory=dict)
    interests: dict[str, list[float]] = field(default_factory=dict)
    top_interest: str | None = None
    shifts: list[JSON] = field(default_factory=list)
    policy: JSON | None = field(default_factory=new_policy)

    def has(self, source: str, message_id: str) -> bool:
        """Whether an event with this ``(source, messageId)`` was folded into this profile."""
        keys, k = self.keys, event_key(source, message_id)
        i = keys.find(k)
        while i >= 0:
            if i % 8 == 0:
                return True
            i = keys.find(k, i + 1)
        return False

    def note(self, position: int, source: str, message_id: str) -> None:
        self.folded.append(position)
        self.keys += event_key(source, message_id)

    @property
    def positions(self) -> list[int]:
        """The positions of the events folded, in order."""
        return self.folded.tolist()

    @property
    def events(self) -> list[int]:
        """The positions folded, as a list (``len(state.events)`` is the number of events folded)."""
        return self.folded.tolist()

    def _body(self) -> JSON:
        return {
            "traits": self.traits, "contacts": self.contacts, "stats": self.stats,
            "touchpoints": {ch: {**tp, "hours": list(tp["hours"])} for ch, tp in self.touchpoints.items()},
            "interests": self.interests, "top_interest": self.top_interest, "shifts": self.shifts,
            "policy": self.policy,
        }

    def to_dict(self) -> JSON:
        d = _copy(self._body())
        d["id"] = self.id
        d["positions"] = self.folded.tolist()
        d["keys"] = self.keys.hex()
        return d

    @staticmethod
    def from_dict(d: JSON) -> ProfileState:
        """From :meth:`to_dict` (also reads the older form whose ``events`` are ``[position, source, id]``)."""
        d = _copy(d)
        s = ProfileState(d["id"])
        if "positions" in d:
            s.folded = array("q", d["positions"])
            s.keys = bytearray.fromhex(d["keys"])
        else:
            for position, source, message_id in d["events"]:
                s.note(int(position), str(source), str(message_id))
        s._fill(d)
        return s

    def to_blob(self) -> bytes:
        """The state as bytes: a header, the positions, the keys, then the rest as JSON (orjson)."""
        n = len(self.folded)
        return b"".join((_HEAD.pack(BLOB_MAGIC, n), self.folded.tobytes(), bytes(self.keys),
                         orjson.dumps(self._body())))

    @staticmethod
    def from_blob(profile_id: str, blob: bytes) -> ProfileState:
        magic, n = _HEAD.unpack_from(blob)
        if magic != BLOB_MAGIC:
            raise ValueError(f"profile {profile_id!r}: not a profile state blob")
        at = _HEAD.size
        s = ProfileState(sys.intern(profile_id))
        s.folded.frombytes(blob[at:at + 8 * n])
        at += 8 * n
        s.keys = bytearray(blob[at:at + 8 * n])
        s._fill(orjson.loads(blob[at + 8 * n:]))
        return s

    def _fill(self, d: JSON) -> None:
        self.traits = d["traits"]
        self.contacts = d["contacts"]
        self.stats = d["stats"]
        self.touchpoints = d["touchpoints"]
        self.interests = {k: [float(v[0]), float(v[1])] for k, v in d["interests"].items()}
        self.top_interest = d["top_interest"]
        self.shifts = d["shifts"]
        self.policy = d.get("policy")
        _compact(self)


def _intern(d: JSON, names: tuple[str, ...]) -> None:
    for name in names:
        v = d.get(name)
        if type(v) is str:
            d[name] = sys.intern(v)


def _compact(s: ProfileState) -> None:
    """Share the strings many profiles repeat (provenances, sources, types) and pack the hour counts."""
    for t in s.traits.values():
        _intern(t, ("provenance", "source"))
    for c in s.contacts.values():
        _intern(c, ("type", "provenance", "source"))
    for tp in s.touchpoints.values():
        tp["hours"] = array("I", tp["hours"])


def _copy(d: JSON) -> JSON:
    """A deep copy of JSON-able data (orjson round trip: much faster than ``copy.deepcopy``)."""
    out: JSON = orjson.loads(orjson.dumps(d))
    return out
