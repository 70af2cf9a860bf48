"""Contactability reads the states of a chunk of profiles from the profile store a slice at a time (one query
per slice copied under the runner's lock), not one query per profile (with 100k+ profiles in the store most
are not in the cache). DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import takt.policy.segment_functions as sf
from takt.clock import FixedClock
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.base import Storage

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _events(n: int) -> list[Event]:
    out = []
    for k in range(n):
        at = T0 + timedelta(minutes=k)
        out.append(Event(kind="identify", message_id=f"i-{k}", source="web", timestamp=at, received_at=at,
                         provenance="customer_provided", user_id=f"u{k}", traits={"email": f"u{k}@example.com"}))
    return out


def test_a_chunk_of_profiles_is_read_from_the_store_in_one_query(storage: Storage,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    storage.log.append(_events(300))
    runner = ProfileRunner(storage, ProfileConfig.from_settings(load(None, env={})), FixedClock(NOW), cache_size=100)
    runner.load()
    runner.catch_up()
    runner.save()
    ids = runner.profile_ids()
    assert len(ids) == 300 and runner.projector.cached() <= 100  # most states are only in the store
    expected = {pid: sf.contactability_of(storage, runner, [pid], PolicySettings(), NOW)[pid] for pid in ids[:150]}

    calls: list[int] = []
    real = storage.profiles.load

    def counting(wanted: object) -> dict[str, bytes]:
        calls.append(len(list(wanted)))  # type: ignore[call-overload]
        return real(wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.profiles, "load", counting)
    runner.projector.prefetch([])  # nothing to read: no query
    assert calls == []
    chunk = ids[150:270]  # 120 profiles, none of them read since the save
    got = sf.contactability_of(storage, runner, chunk, PolicySettings(), NOW)
    # one query per slice copied under the runner's lock, not one per profile
    assert calls == [sf.COPY_SLICE] * (120 // sf.COPY_SLICE) + ([120 % sf.COPY_SLICE] if 120 % sf.COPY_SLICE else [])
    assert set(got) == set(chunk)
    # and the answers are the ones a profile-by-profile read gives
    again = sf.contactability_of(storage, runner, ids[:150], PolicySettings(), NOW)
    assert again == expected
