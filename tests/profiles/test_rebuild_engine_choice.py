"""``takt rebuild --engine auto`` (the default): the set-based rebuild holds the decoded log in memory, so it runs
only when that fits in half the available memory; a larger log is folded (bounded by the fold's cache)."""

from __future__ import annotations

from takt.cli.rebuild import SETBASED_BYTES_PER_EVENT, auto_engine


def test_a_log_that_fits_is_rebuilt_set_based() -> None:
    engine, why = auto_engine(100_000, available=4 * 2**30)
    assert engine == "duckdb" and "100,000 events" in why


def test_a_log_too_large_for_memory_is_folded() -> None:
    available = 4 * 2**30
    events = available // SETBASED_BYTES_PER_EVENT  # would need all of it, more than half
    engine, why = auto_engine(events, available=available)
    assert engine == "fold" and "--engine duckdb forces it" in why
    assert auto_engine(events // 2, available=available)[0] == "duckdb"
