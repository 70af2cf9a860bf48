"""``takt demo``: a realistic travel-and-outdoor retailer's data, fed through the real ingestion path, served."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, run_server
from takt.clock import system_clock
from takt.demo.feed import KEYS_FILE, DemoResult, build_demo, save_keys, stored_end
from takt.demo.generator import STORY_CRM_ID, STORY_EMAIL, DemoConfig
from takt.errors import TaktError
from takt.settings import Settings

if TYPE_CHECKING:
    from takt.campaigns.delivery.outbox import OutboxSink


def _parse_end(value: str | None, path: Path) -> datetime:
    if not value:
        return stored_end(path) or system_clock()
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise TaktError(f"--end {value!r} is not an ISO date or time (e.g. 2026-11-24)", code="usage") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.command("demo")
@click.option("--customers", default=2000, show_default=True, type=click.IntRange(min=1),
              help="How many customers to simulate.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=7),
              help="How many days of history, ending now (or at --end).")
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--end", default=None, metavar="DATE",
              help="The simulation's last moment (default: now, or the end of the demo already in --workspace).")
@click.option("--workspace", "-w", default="demo-workspace", show_default=True,
              type=click.Path(file_okay=False), help="Where to build the demo workspace.")
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve the API when done.")
@click.option("--host", default=None, help="Address to serve on (setting server.host).")
@click.option("--port", default=None, type=int, help="Port to serve on (setting server.port).")
@click.option("--rebuild", is_flag=True,
              help="Send and import everything again even if the workspace holds this demo (idempotent).")
@click.option("--transport", type=click.Choice(["http", "testclient"]), default="http", hidden=True,
              help="How events reach the API: a loopback uvicorn server, or starlette's TestClient.")
@handle_errors
def command(customers: int, days: int, seed: int, end: str | None, workspace: str, serve: bool,
            host: str | None, port: int | None, rebuild: bool, transport: str) -> None:
    """Build a demo workspace: a travel-and-outdoor retailer's customers across eight touchpoints, sent
    through the collection API and imported from CRM files, then serve it."""
    path = ws_mod.resolve_path(workspace)
    cfg = DemoConfig(end=_parse_end(end, path), customers=customers, days=days, seed=seed)
    console = Console(stderr=True)
    console.print(f"[bold]takt demo[/]: {customers} customers, {days} days to {cfg.end:%Y-%m-%d %H:%M} UTC, "
                  f"seed {seed}\n  workspace: {path}")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        result = build_demo(path, cfg, clock=system_clock, progress=progress, transport=transport,
                            rebuild=rebuild)
    _report(result)
    if not serve:
        click.echo(f"\nserve it with: takt serve -w {result.workspace}")
        return
    ws = ws_mod.open_workspace(result.workspace)
    from takt.api.outbox import OUTBOX
    from takt.campaigns.delivery.outbox import OUTBOX_DIR, Outbox, OutboxSink

    outbox = Outbox(result.workspace / OUTBOX_DIR)
    sink = OutboxSink(outbox)  # email the demo sends lands here, on loopback, never leaving the machine
    sink.start()
    try:
        ws = dataclasses.replace(ws, settings=ws.settings.with_values(**demo_smtp(ws.settings, sink)))
        run_server(ws, host, port, banner=lambda url: _banner(result, url, sink.port), extras={OUTBOX: outbox})
    finally:
        sink.stop()


DEMO_SENDER = "Travel Co <news@travel.example>"


def demo_smtp(settings: Settings, sink: OutboxSink) -> dict[str, Any]:
    """The demo server's email settings: into its outbox, from the demo retailer unless ``smtp.from`` is set."""
    overrides = sink.settings_overrides()
    if not settings["smtp.from"]:
        overrides["smtp__from"] = DEMO_SENDER
    return overrides


def _report(r: DemoResult) -> None:
    if r.skipped:
        click.echo(f"\n{r.workspace} already holds this demo ({r.events_in_log} events); nothing to do "
                   "(--rebuild sends everything again)")
        click.echo(f"keys: {r.workspace / KEYS_FILE}")
        return
    click.echo(f"\nevents: {r.events_sent} sent in {r.requests} batches ({r.transport}), "
               f"{r.timings.get('events', 0):.1f}s")
    for name, s in r.imports:
        rejected = s.rejected + s.duplicates
        click.echo(f"import {name}: {s.read} rows, {s.imported} new, {s.already_present} already present, "
                   f"{rejected} rejected" + (f" (see {s.rejects_path})" if rejected else ""))
    click.echo(f"the log holds {r.events_in_log} events ({r.events_in_log - r.derived_in_log} sent and imported, "
               f"{r.derived_in_log} derived by takt); built in {r.timings.get('total', 0):.1f}s")
    click.echo(f"keys: {r.workspace / KEYS_FILE}")


def _banner(r: DemoResult, url: str, outbox_port: int) -> None:
    save_keys(r.workspace / KEYS_FILE, r.keys, url)
    k = r.keys
    click.echo(f"\nserving the demo on {url}  (Ctrl-C to stop)")
    click.echo(f"  health:   {url}/health      OpenAPI: {url}/openapi.json")
    click.echo(f"  read key: {k.read}\n  admin key: {k.admin}")
    click.echo(f"  write key (website, customer_provided): {k.write['website']}")
    click.echo("try:")
    click.echo(f"  curl -H 'Authorization: Bearer {k.admin}' {url}/v1/events/count")
    click.echo(f"  curl -H 'Authorization: Bearer {k.read}' '{url}/v1/events?after=0&limit=5'")
    click.echo(f"  curl -H 'Authorization: Bearer {k.read}' '{url}/v1/profiles?identifier=email:{STORY_EMAIL}'")
    click.echo(f"  curl -u '{k.write['website']}:' -H 'Content-Type: application/json' \\\n"
               f"       -d '{{\"userId\":\"{STORY_CRM_ID}\",\"event\":\"Products Searched\","
               f"\"properties\":{{\"query\":\"lapland\"}}}}' {url}/v1/track")
    click.echo(f"  the story customer: {STORY_EMAIL} (userId {STORY_CRM_ID})")
    click.echo(f"  outbox (email takt sends, kept on this machine; SMTP sink on 127.0.0.1:{outbox_port}):\n"
               f"  curl -H 'Authorization: Bearer {k.admin}' {url}/v1/outbox")
    w = _shell_path(r.workspace)
    click.echo("the command line works while this server runs (it goes through the API with the admin key in "
               f"{KEYS_FILE}); in another terminal:")
    click.echo(f"  takt profiles show -w {w} email:{STORY_EMAIL}")
    click.echo(f"  takt profiles search -w {w} ann")
    click.echo(f"  takt segment count -w {w} 'trait.country = \"DE\"'")
    click.echo(f"  takt events count -w {w} --by-kind        (or: export TAKT_WORKSPACE={w})")


def _shell_path(path: Path) -> str:
    """The workspace as a user can type it: relative to the current folder when inside it."""
    import os
    import shlex

    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = str(path)
    return shlex.quote(rel if not rel.startswith("..") else str(path))
