"""``takt worker``: run the projections without serving HTTP (e.g. beside several `takt serve` on PostgreSQL)."""

from __future__ import annotations

import signal
import time

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.projections.runner import LEASE_NAME
from takt.segments.live import attach_live
from takt.services import services_of


@click.command("worker")
@workspace_option
@click.option("--interval", default=0.2, show_default=True, help="Seconds between polls of the log.")
@click.option("--once", is_flag=True, help="Catch up once and exit.")
@handle_errors
def command(workspace: str, interval: float, once: bool) -> None:
    """Follow the log and keep the projections current. On PostgreSQL, the worker that holds the projection
    lease writes; others wait and take over when it stops."""
    ws = ws_mod.open_workspace(workspace)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with ws.open_storage() as storage:
        runner = services_of(storage).runner_for(system_clock)
        runner.load()
        live = attach_live(storage, runner, ws.settings)  # segment membership: entered/exited events
        leader = storage.try_lease(LEASE_NAME)
        click.echo(f"worker on {ws.path}: {'leader' if leader else 'standby'} at position {runner.position}")
        last_save = time.monotonic()
        while not stop:
            n = runner.catch_up()
            if n:
                click.echo(f"applied {n} events (position {runner.position})")
            if runner.tick():  # membership changes with time alone (and new segment definitions)
                runner.catch_up()
            if once:
                break
            if time.monotonic() - last_save > 30:
                runner.save()
                last_save = time.monotonic()
            time.sleep(interval)
        runner.save()
        live.save(runner)
        storage.release_lease(LEASE_NAME)
