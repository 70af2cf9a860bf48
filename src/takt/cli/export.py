"""``takt export parquet DIR``: the workspace's profile tables and event log as Parquet files."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.errors import TaktError
from takt.privacy.audit import cli_actor
from takt.privacy.audit import record as record_audit
from takt.profiles.config import ProfileConfig
from takt.projections.export import export_parquet
from takt.projections.runner import ProfileRunner


@click.group("export")
def command() -> None:
    """Export the workspace for other engines."""


@command.command("parquet")
@workspace_option
@click.argument("directory", type=click.Path(file_okay=False))
@handle_errors
def parquet(workspace: str, directory: str) -> None:
    """Write profiles, traits, interests, touchpoints, profile events and the event log as Parquet to DIRECTORY."""
    ws = ws_mod.open_workspace(workspace)
    config = ProfileConfig.from_settings(ws.settings)
    with ws.open_storage() as storage:
        if not storage.parquet_export():
            raise TaktError("export parquet runs on DuckDB workspaces for now", code="unsupported")
        # profiles and the decrypted log of everybody: audited before anything is written
        record_audit(storage, system_clock(), cli_actor(), "workspace.export", None)
        with Console(stderr=True).status(f"exporting to {directory} …"):
            counts = export_parquet(storage, ProfileRunner(storage, config, system_clock), config, Path(directory))
    for table, n in counts.items():
        click.echo(f"{table:<20} {n:>10,} rows  → {Path(directory) / (table + '.parquet')}")
