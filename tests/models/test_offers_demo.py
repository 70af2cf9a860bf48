"""Next-best-offer on the demo's story customer: Ann searches Krabi in February and New York lately."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from takt.clock import FixedClock
from takt.demo.catalog import DESTINATIONS
from takt.demo.generator import EVENT_SOURCES, SOURCES, STORY_EMAIL, DemoConfig, customer
from takt.ingest.segment import Limits, Source, normalize
from takt.models.offers.catalog import validate_catalog
from takt.models.offers.rank import PersonOffers, RankConfig, Request, rank
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import profile_view
from takt.storage.duckdb import DuckDBStorage

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_ann_gets_new_york_and_her_february_krabi_interest_has_decayed(tmp_path: Path) -> None:
    ann = customer(DemoConfig(end=END, customers=1, days=365, seed=7), 0)
    events = [normalize(p, None, Source(s, SOURCES[s]), END, Limits())
              for s in EVENT_SOURCES for p in ann.payloads[s]]
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        storage.log.append(sorted(events, key=lambda e: e.timestamp))
        config = ProfileConfig()
        runner = ProfileRunner(storage, config, FixedClock(END))
        runner.catch_up()
        state = runner.projector.profile_for(f"email:{STORY_EMAIL}")
        assert state is not None
        # one trip per destination, all worth the same: only the person's interest tells them apart
        offers = validate_catalog([{"id": d.slug, "title": d.name, "interests": [f"destination:{d.slug}"],
                                    "value": 500} for d in DESTINATIONS])
        person = PersonOffers(state.id, state.interests, config.half_life_seconds, profile_view(state, (), config))
        now = rank(offers, person, Request(END, placement="home"))
        assert now.offers[0].offer.id == "new-york"
        krabi_now = next(r for r in rank(offers, person, Request(END, placement="home", limit=20)).offers
                         if r.offer.id == "krabi")
        assert krabi_now.interest_normalized < 0.05  # February's interest has decayed away
        # undecayed, February's searches still weigh: decay is what keeps them from driving offers
        stale = next(r for r in rank(offers, person, Request(END, placement="home", limit=20),
                                     config=RankConfig(decay=False)).offers if r.offer.id == "krabi")
        assert stale.interest_normalized > 0.2
    finally:
        storage.close()
