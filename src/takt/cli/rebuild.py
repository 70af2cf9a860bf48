"""``takt rebuild``: recompute every projection from the event log.

``--verify-identity`` then stitches the whole log a second, independent way (:mod:`takt.identity.bulk`: a
union-find over interned identifiers) and checks that it gives the identity graph the fold built: the same
profiles, members, links, merges with their causes, conflicts and splits. A difference is a bug in takt; the
command names what differs and exits 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

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
from takt.profiles.fold import IGNORED_KINDS
from takt.projections.runner import ProfileRunner, _gc_paused
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


ENGINES = ("auto", "duckdb", "spark", "fold")
SETBASED_BYTES_PER_EVENT = 2_500
"""Memory the set-based rebuild holds per event of the log (decoded events and their rows; measured ~1.8 KB more
than the fold on the 3,000-customer demo), for ``--engine auto``."""


def incremental_identity(storage: Storage, config: ProfileConfig, head: int) -> IdentityGraph:
    """The identity graph of the log up to ``head`` resolved event by event, as the live projector does."""
    graph = IdentityGraph(config.identity)
    with _bar("identity, event by event") as bar:
        task = bar.add_task("events", total=head)
        for stored in storage.log.iter(after=0, batch=20_000):
            if stored.position > head:
                break
            ids = None if stored.event.kind in IGNORED_KINDS else identifiers_of(stored.event, config.identity)
            graph.resolve(stored, ids)
            bar.update(task, completed=stored.position)
    return graph


def _fold(storage: Storage, config: ProfileConfig, runner: ProfileRunner, total: int) -> int:
    with _bar("rebuild") as bar:
        task = bar.add_task("events", total=total)
        return runner.rebuild(progress=lambda k: bar.advance(task, k))


def _engine(engine: str, threads: int | None, master: str) -> Callable[[Any, Any], Any]:
    """The runner of the aggregates: DuckDB in memory, or Spark (local mode, or the cluster ``master`` names)."""
    from takt.storage.engines import setbased_runner

    return setbased_runner(engine, threads, master)


def _setbased(storage: Storage, config: ProfileConfig, runner: ProfileRunner, total: int,
              run: Callable[[Any, Any], Any], workers: int, timings: dict[str, float]) -> tuple[int, IdentityGraph, int]:
    """The set-based rebuild (:mod:`takt.profiles.rebuild`): read the log, compute, write; then the runner loads
    what was written and folds whatever the log holds beyond it (the derived events just appended)."""
    from takt.profiles import rebuild as setbased

    t0 = time.perf_counter()
    with _bar("read the log") as bar:
        task = bar.add_task("events", total=total)
        events = setbased.read_log(storage, progress=lambda k: bar.advance(task, k))
    t1 = time.perf_counter()
    with _gc_paused():
        rebuilt = setbased.rebuild_events(events, config, run, workers=workers)
    t2 = time.perf_counter()
    setbased.write(storage, config, events, rebuilt)
    t3 = time.perf_counter()
    runner.load()
    runner.catch_up()
    runner.save()
    timings.update(read=t1 - t0, **rebuilt.timings, compute=t2 - t1, write=t3 - t2,
                   catch_up=time.perf_counter() - t3)
    return len(events), rebuilt.graph, rebuilt.position


def auto_engine(events: int, available: int | None = None) -> tuple[str, str]:
    """``--engine auto``: the set-based rebuild holds the whole decoded log in memory; it runs when that fits in
    half the available memory, else the fold (bounded by its cache) does."""
    if available is None:
        import psutil

        available = int(psutil.virtual_memory().available)
    need = events * SETBASED_BYTES_PER_EVENT
    if need <= available // 2:
        return "duckdb", f"set-based ({need / 2**20:,.0f} MB for {events:,} events fits in memory)"
    return "fold", (f"the set-based rebuild would need ~{need / 2**20:,.0f} MB for {events:,} events, more than "
                    f"half the {available / 2**20:,.0f} MB available; folding instead (--engine duckdb forces it)")


@click.command("rebuild")
@workspace_option
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="auto: duckdb when the log fits in half the available memory, else fold; duckdb: the set-based rebuild (identity in bulk, aggregates in SQL, the fold for the "
                   "order-dependent rest); spark: the same, its SQL run on Spark (the spark extra); fold: the live "
                   "projector's fold from position 0 (the reference).")
@click.option("--master", default="local[2]", show_default=True, help="spark engine: the Spark master.")
@click.option("--threads", type=int, default=None, help="Threads for the SQL engine (default: its own).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="duckdb engine: fold the profiles in this many processes (profiles are independent).")
@click.option("--timings", is_flag=True, help="Print where the time went (seconds per phase) on stderr.")
@click.option("--verify-identity", is_flag=True,
              help="Afterwards stitch the whole log again in bulk and check the identity graph is the same "
                   "(exit 1 when not).")
@handle_errors
def command(workspace: str, engine: str, master: str, threads: int | None, workers: int, timings: bool,
            verify_identity: bool) -> None:
    """Recompute identity and profiles from the whole event log (derived events are never duplicated)."""
    ws = ws_mod.open_workspace(workspace)
    config = ProfileConfig.from_settings(ws.settings)
    with ws.open_storage() as storage:
        total = storage.log.count()
        runner = ProfileRunner(storage, config, system_clock)
        started = time.perf_counter()
        phases: dict[str, float] = {}
        graph: IdentityGraph | None = None
        if engine == "auto":
            engine, why = auto_engine(total)
            click.echo(f"engine {engine}: {why}", err=True)
        if engine == "fold":
            n = _fold(storage, config, runner, total)
        else:
            run = _engine(engine, threads, master)
            n, graph, head = _setbased(storage, config, runner, total, run, workers, phases)
        elapsed = time.perf_counter() - started
        profiles = len(runner.profile_ids())
        rate = n / elapsed if elapsed > 0 else 0.0
        click.echo(f"rebuilt {profiles:,} profiles from {n:,} events in {elapsed:.1f} s ({rate:,.0f} events/s) "
                   f"with engine {engine}")
        if timings and phases:
            click.echo("  ".join(f"{k} {v:.2f} s" for k, v in phases.items()), err=True)
        if verify_identity:
            if graph is None:
                with runner.lock:
                    differs = check_identity(storage, config, runner.projector.identity, runner.position)
            else:
                # the set-based graph is a bulk stitching already: check it against a second one (of the log read
                # again) and against the live projector's way, event by event (the store keeps identifiers in
                # the cluster index pseudonymized, so the graph as written is compared, not the one read back)
                differs = check_identity(storage, config, graph, head)
                differs += [d for d in graph_equal(incremental_identity(storage, config, head), graph)
                            if d not in differs]
            if differs:
                click.secho(f"identity differs from a bulk stitching of the log in: {', '.join(differs)}",
                            fg="red", err=True)
                sys.exit(1)
            click.echo(f"identity verified: a bulk stitching of the log gives the same {profiles:,} profiles")
