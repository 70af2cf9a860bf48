"""Builders shared by the profile tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from takt.events.model import Event, StoredEvent
from takt.profiles.config import ProfileConfig
from takt.profiles.projector import Projector
from tests.factories import ev

TAXONOMY = {"krabi": "destination:krabi", "new york": "destination:new-york", "hiking": "category:outdoor"}
CONFIG = ProfileConfig(taxonomy=TAXONOMY)


def stored(events: list[Event], start: int = 1) -> list[StoredEvent]:
    return [StoredEvent(i, e) for i, e in enumerate(events, start)]


def project(events: list[Event], config: ProfileConfig = CONFIG) -> tuple[Projector, list[Event]]:
    p = Projector(config)
    derived = p.apply(stored(events))
    return p, derived


def search(i: int, query: str, at: datetime, **kw: Any) -> Event:
    return ev(i, event="Products Searched", properties={"query": query}, at=at, **kw)
