"""``takt worker``: run the projections without serving HTTP (beside one or more `takt serve` on PostgreSQL).

One worker at a time holds the ``worker`` lease and, once the ``projections`` lease is free (a server that
folded while no worker ran hands it over within about a second), loads the profile store and folds the log,
writing each chunk's changed profiles with the position they reflect in one transaction: serving processes
read those (``server.fold``, :mod:`takt.projections.stored`). Other workers stand by and take over when it
stops or dies (PostgreSQL releases a dead process's leases).
"""

from __future__ import annotations

import signal
import time

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.projections.runner import LEASE_NAME, WORKER_LEASE
from takt.segments.live import attach_live
from takt.services import services_of

STANDBY_POLL_S = 0.5
"""How often a standby worker tries the leases."""
TICK_EVERY_S = 1.0
WAKE_AT_LEAST_S = 1.0
"""With appends that wake the worker: the longest wait between reads of the log."""


@click.command("worker")
@workspace_option
@click.option("--interval", default=0.02, show_default=True,
              help="Seconds between polls of the log where appends cannot wake the worker (on PostgreSQL every "
                   "append does: LISTEN/NOTIFY, and the log is read at least once a second).")
@click.option("--once", is_flag=True, help="Catch up once and exit (waits for the leases).")
@handle_errors
def command(workspace: str, interval: float, once: bool) -> None:
    """Follow the log and keep the projections current. On PostgreSQL, the worker that holds the leases folds
    and publishes; others wait and take over when it stops."""
    ws = ws_mod.open_workspace(workspace)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with ws.open_storage() as storage:
        runner = services_of(storage).runner_for(system_clock)
        runner.persist_each_chunk = True  # serving processes read each chunk's changes from the store
        live = None
        announced = False
        while not stop and not (storage.try_lease(WORKER_LEASE) and storage.try_lease(LEASE_NAME)):
            if not announced:
                click.echo(f"worker on {ws.path}: standby")
                announced = True
            time.sleep(STANDBY_POLL_S)
        if stop:
            storage.release_lease(WORKER_LEASE)
            return
        runner.load()  # as the leader: what the previous one stored, then the log after it
        live = attach_live(storage, runner, ws.settings)  # segment membership: entered/exited events
        click.echo(f"worker on {ws.path}: leader at position {runner.position}")
        orchestrator = None
        deliveries = None
        if ws.settings["campaigns.run"] and not once:
            from takt.campaigns.delivery.factory import deliveries_from_settings
            from takt.campaigns.running import attach_workspace

            deliveries = deliveries_from_settings(ws.settings, storage, system_clock)
            orchestrator = attach_workspace(storage, runner, ws.settings, deliveries, system_clock)
        last_tick = 0.0
        while not stop:
            n = runner.catch_up()
            if n:
                click.echo(f"applied {n} events (position {runner.position})")
            if time.monotonic() - last_tick >= TICK_EVERY_S or once:
                last_tick = time.monotonic()
                if runner.tick():  # membership changes with time alone (and new segment definitions)
                    runner.catch_up()
            if once:
                break
            if not storage.wait_for_appends(WAKE_AT_LEAST_S):
                time.sleep(interval)
        if orchestrator is not None:
            orchestrator.stop()
        if deliveries is not None:
            deliveries.close()
        runner.save()
        live.save(runner)
        storage.release_lease(LEASE_NAME)
        storage.release_lease(WORKER_LEASE)
