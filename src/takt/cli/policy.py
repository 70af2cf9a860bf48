"""``takt policy``: the suppression list (hashes only) and the contactability table behind ``contactable()``.

Importing this module also registers ``contactable(channel, purpose)`` for the segment commands.
"""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock
from takt.policy import segment_functions
from takt.policy.config import PolicySettings
from takt.policy.suppression_store import SUPPRESSION_REASONS, check, suppress, suppression_list, sync
from takt.policy.vocab import CONTACT_KINDS
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner


@click.group("policy")
def command() -> None:
    """Contact policy: the suppression list and who is contactable."""


@command.group("suppression")
def suppression() -> None:
    """The suppression list: keyed hashes of contact points that are never used."""


def _sync_with_progress(storage: object) -> int:
    from takt.storage.base import Storage

    assert isinstance(storage, Storage)
    head = storage.log.head()
    with Progress(TextColumn("[bold]suppression"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=Console(stderr=True)) as bar:  # stdout stays parseable
        task = bar.add_task("log", total=head)
        return sync(storage, progress=lambda position, total: bar.update(task, completed=position, total=total))


@suppression.command("sync")
@workspace_option
@handle_errors
def sync_cmd(workspace: str) -> None:
    """Add the entries the log's unsubscribes, complaints and bounces stand for."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        new = _sync_with_progress(storage)
        total = suppression_list(storage).count()
    click.echo(f"{new:,} new entries; {total:,} on the list")


@suppression.command("list")
@workspace_option
@server_options
@click.option("--kind", type=click.Choice(CONTACT_KINDS), default=None, help="Only this kind of contact point.")
@click.option("--reason", type=click.Choice(SUPPRESSION_REASONS), default=None, help="Only this reason.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--after", default=None, help="The last hash of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def list_cmd(workspace: str, api: str | None, key: str | None, kind: str | None, reason: str | None, limit: int,
             after: str | None, as_json: bool) -> None:
    """List entries (hashes, never addresses), in hash order."""
    server = server_api(workspace, api, key)
    if server is not None:  # the server syncs the list with the log itself
        rows = server.get("/v1/suppression", limit=min(limit, 1000), after=after, kind=kind,
                          reason=reason)["entries"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            _sync_with_progress(storage)
            rows = [e.to_json() for e in suppression_list(storage).entries(limit, after, kind, reason)]
    if as_json:
        for j in rows:
            click.echo(json.dumps(j))
        return
    from takt.cli.render import print_table

    print_table(("hash", "kind", "reason", "blocks", "at", "source"),
                [(j["hash"], j["kind"], j["reason"], _blocks(j["scope"]), j["at"], j["source"]) for j in rows],
                ids=("hash",), empty="the suppression list is empty")
    click.echo(f"{len(rows)} entries" + (f"; next page: --after {rows[-1]['hash']}" if len(rows) == limit else ""),
               err=True)


@suppression.command("check")
@workspace_option
@server_options
@click.argument("kind", type=click.Choice(CONTACT_KINDS))
@click.argument("value")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def check_cmd(workspace: str, api: str | None, key: str | None, kind: str, value: str, as_json: bool) -> None:
    """Is VALUE (a contact point of KIND) suppressed, and why?"""
    server = server_api(workspace, api, key)
    if server is not None:
        rows = server.post("/v1/suppression/check", {"kind": kind, "value": value})["entries"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            _sync_with_progress(storage)
            rows = [e.to_json() for e in check(storage, kind, value)]
    if as_json:
        click.echo(json.dumps({"suppressed": bool(rows), "entries": rows}))
        return
    if not rows:
        click.echo(f"{kind} {value}: not suppressed")
        return
    scope = "all" if any(j["scope"] == "all" for j in rows) else "marketing"
    click.echo(f"{kind} {value}: suppressed ({_blocks(scope)})")
    for j in rows:
        click.echo(f"  {j['reason']} at {j['at']} ({j['source']}): {_blocks(j['scope'])}")


@suppression.command("add")
@workspace_option
@server_options
@click.argument("kind", type=click.Choice(CONTACT_KINDS))
@click.argument("value")
@click.option("--reason", type=click.Choice(SUPPRESSION_REASONS), default="admin", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@handle_errors
def add_cmd(workspace: str, api: str | None, key: str | None, kind: str, value: str, reason: str,
            as_json: bool) -> None:
    """Suppress VALUE (a contact point of KIND): never used again, for any purpose (reasons admin, erasure,
    hard_bounce) or for marketing (unsubscribe, complaint)."""
    server = server_api(workspace, api, key)
    if server is not None:
        entry = server.post("/v1/suppression", {"kind": kind, "value": value, "reason": reason})["entry"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            entry = suppress(storage, kind, value, reason, system_clock(), source="cli").to_json()
    if as_json:
        click.echo(json.dumps(entry))
        return
    click.echo(f"suppressed {kind} ({reason}, {_blocks(entry['scope'])}): {entry['hash']}")


def _blocks(scope: str) -> str:
    return "every purpose" if scope == "all" else "marketing only"


@command.command("contactability")
@workspace_option
@handle_errors
def contactability_cmd(workspace: str) -> None:
    """Recompute the table behind contactable(channel, purpose) for every profile (takt serve keeps it current
    by itself; run this for a workspace no server follows)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        runner.load()
        runner.catch_up()
        _sync_with_progress(storage)
        total = len(runner.profile_ids())
        started = time.perf_counter()
        with Progress(TextColumn("[bold]contactability"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task("profiles", total=total)
            rows = segment_functions.refresh_all(storage, runner, PolicySettings.from_settings(ws.settings),
                                                 system_clock(), progress=lambda n: bar.advance(task, n))
        elapsed = time.perf_counter() - started
    click.echo(f"{total:,} profiles, {rows:,} contactable (channel, purpose) pairs in {elapsed:.1f} s")
