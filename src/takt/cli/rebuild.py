"""``takt rebuild``: recompute every projection from the event log."""

from __future__ import annotations

import time

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner


@click.command("rebuild")
@workspace_option
@handle_errors
def command(workspace: str) -> None:
    """Recompute identity and profiles from the whole event log (derived events are never duplicated)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        total = storage.log.count()
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        started = time.perf_counter()
        with Progress(TextColumn("[bold]rebuild"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=False) as bar:
            task = bar.add_task("events", total=total)
            n = runner.rebuild(progress=lambda k: bar.advance(task, k))
        elapsed = time.perf_counter() - started
        profiles = len(runner.profile_ids())
    rate = n / elapsed if elapsed > 0 else 0.0
    click.echo(f"rebuilt {profiles:,} profiles from {n:,} events in {elapsed:.1f} s ({rate:,.0f} events/s)")
