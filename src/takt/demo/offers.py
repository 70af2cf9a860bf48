"""The demo's offer catalog: a trip offer per destination and a few gear offers, so ``POST /v1/next-best-offer``
works on the demo out of the box. Written to ``DIR/offers.yaml`` and loaded as ``takt offers load`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from takt.demo.catalog import DESTINATIONS

OFFERS_FILE = "offers.yaml"

_TRIP_VALUE = {"krabi": 900, "bali": 950, "new-york": 700, "lapland": 1100, "patagonia": 1400, "iceland": 1000,
               "lisbon": 450, "alps": 600, "tokyo": 1200, "scotland": 500}


def offer_catalog() -> list[dict[str, Any]]:
    trips: list[dict[str, Any]] = [{
        "id": "nyc-weekend" if d.slug == "new-york" else f"{d.slug}-trip",
        "title": "A long weekend in New York" if d.slug == "new-york" else f"A trip to {d.name}",
        "interests": [f"destination:{d.slug}"], "value": _TRIP_VALUE.get(d.slug, 700),
        "channels": ["email", "push", "in_app"], "cap": {"max": 2, "days": 30}} for d in DESTINATIONS]
    gear: list[dict[str, Any]] = [
        {"id": "down-jackets", "title": "Warm through the winter: down jackets", "categories": ["down-jackets"],
         "interests": ["climate:cold", "climate:arctic"], "value": 120, "channels": ["email", "push", "in_app"]},
        {"id": "snorkel-set", "title": "Snorkel sets for the reef", "categories": ["snorkel-gear"],
         "interests": ["activity:diving"], "value": 40, "channels": ["email", "in_app"]},
        {"id": "daypack", "title": "The city daypack", "categories": ["city-bags"], "placements": ["cart"],
         "value": 60, "eligibility": 'count(track "Order Completed") >= 1'},
        {"id": "de-newsletter-welcome", "title": "10 % off your next order", "value": 25,
         "eligibility": 'trait.country = "DE"', "channels": ["email"]},
    ]
    return trips + gear


def write_catalog(directory: Path) -> Path:
    path = directory / OFFERS_FILE
    text = "# The demo's offer catalog (`takt offers load offers.yaml` loads it again).\n"
    path.write_text(text + yaml.safe_dump({"offers": offer_catalog()}, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
