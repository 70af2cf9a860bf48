"""``takt rebuild``: recompute every projection from the event log.

``--verify-identity`` then stitches the whole log a second, independent way (:mod:`takt.identity.bulk`: a
union-find over interned identifiers) and checks that it gives the identity graph the fold built: the same
profiles, members, links, merges with their causes, conflicts and splits. A difference is a bug in takt; the
command names what differs and exits 1.
"""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.identity.bulk import LinkLog, graph_equal, stitch
from takt.identity.extract import identifiers_of
from takt.identity.resolver import IdentityGraph
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.storage.base import Storage


def _bar(label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=False, console=Console(stderr=True))  # stdout stays for the result


def check_identity(storage: Storage, config: ProfileConfig, graph: IdentityGraph, head: int) -> list[str]:
    """Stitch the log up to ``head`` in bulk and compare with ``graph``; the names of the parts that differ."""
    log = LinkLog()
    idc = config.identity
    with _bar("verify identity") as bar:
        task = bar.add_task("events", total=head)
        for stored in storage.log.iter(after=0, batch=20_000):
            if stored.position > head:
                break
            log.add_event(stored, identifiers_of(stored.event, idc))
            bar.update(task, completed=stored.position)
        bar.update(task, completed=head)
    bulk, _ = stitch(log, idc)
    return sorted(graph_equal(bulk, graph))


@click.command("rebuild")
@workspace_option
@click.option("--verify-identity", is_flag=True,
              help="Afterwards stitch the whole log again in bulk and check the identity graph is the same "
                   "(exit 1 when not).")
@handle_errors
def command(workspace: str, verify_identity: bool) -> None:
    """Recompute identity and profiles from the whole event log (derived events are never duplicated)."""
    ws = ws_mod.open_workspace(workspace)
    config = ProfileConfig.from_settings(ws.settings)
    with ws.open_storage() as storage:
        total = storage.log.count()
        runner = ProfileRunner(storage, config, system_clock)
        started = time.perf_counter()
        with _bar("rebuild") as bar:
            task = bar.add_task("events", total=total)
            n = runner.rebuild(progress=lambda k: bar.advance(task, k))
        elapsed = time.perf_counter() - started
        profiles = len(runner.profile_ids())
        rate = n / elapsed if elapsed > 0 else 0.0
        click.echo(f"rebuilt {profiles:,} profiles from {n:,} events in {elapsed:.1f} s ({rate:,.0f} events/s)")
        if verify_identity:
            with runner.lock:
                differs = check_identity(storage, config, runner.projector.identity, runner.position)
            if differs:
                click.secho(f"identity differs from a bulk stitching of the log in: {', '.join(differs)}",
                            fg="red", err=True)
                sys.exit(1)
            click.echo(f"identity verified: a bulk stitching of the log gives the same {profiles:,} profiles")

