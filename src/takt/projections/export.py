"""Exporting a workspace's profiles and events as Parquet: what a distributed engine (Spark) reads.

One file per table of the segment contract (``profiles``, ``profile_traits``, ``profile_interests``,
``profile_touchpoints``, ``profile_events``) plus the raw ``events`` log, written by DuckDB from the tables the
profile projection materializes.
"""

from __future__ import annotations

from pathlib import Path

from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import WorkspaceTables
from takt.storage.base import Storage

TABLES = ("profiles", "profile_traits", "profile_interests", "profile_touchpoints", "profile_events", "events")


def materialize(storage: Storage, runner: ProfileRunner, config: ProfileConfig) -> None:
    """Bring the profile projection and its tables in the workspace database up to date."""
    runner.load()
    runner.catch_up()
    WorkspaceTables(storage, runner, computed=[]).refresh()


def export_parquet(storage: Storage, runner: ProfileRunner, config: ProfileConfig, out: Path) -> dict[str, int]:
    """Write every table as ``out/<table>.parquet``; returns rows written per table."""
    materialize(storage, runner, config)
    return storage.write_parquet(TABLES, out)
