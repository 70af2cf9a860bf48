"""``takt offers``: load, list, show and retire the offers next-best-offer ranks (see docs/offers.md)."""

from __future__ import annotations

import json

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.models.offers.catalog import read_catalog
from takt.models.offers.store import OfferStore


@click.group("offers")
def command() -> None:
    """The offer catalog: offers with interests, eligibility, value, validity, channels and caps."""


@command.command("load")
@workspace_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Retire every current offer the file does not list.")
@click.option("--check", is_flag=True, help="Only validate the file; store nothing.")
@handle_errors
def load_cmd(workspace: str, file: str, replace: bool, check: bool) -> None:
    """Validate FILE (.yaml, .yml, .json or .csv) and store its offers; a changed offer gets a new version.

    Nothing is stored when any offer is invalid: every problem is listed with the offer and field."""
    offers = read_catalog(file)
    if check:
        click.echo(f"{file}: {len(offers)} valid offer{'s' if len(offers) != 1 else ''}")
        return
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        store = OfferStore(storage)
        before = {o.id for o in store.current()}
        written = store.put(offers, system_clock(), replace=replace)
        retired = sorted(before - {o.id for o in offers}) if replace else []
    new = sum(1 for w in written if w.changed and w.version == 1)
    changed = sum(1 for w in written if w.changed) - new
    same = len(written) - new - changed
    click.echo(f"{len(written)} offers from {file}: {new} new, {changed} changed (new version), {same} unchanged"
               + (f"; retired {len(retired)}: {', '.join(retired)}" if retired else ""))


@command.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_cmd(workspace: str, as_json: bool) -> None:
    """The current offers."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        offers = OfferStore(storage).current()
    if as_json:
        click.echo(json.dumps([o.to_json() for o in offers], indent=2))
        return
    if not offers:
        click.echo("no offers (load some with `takt offers load FILE`)")
        return
    for o in offers:
        keys = ", ".join(o.interests) or "-"
        valid = ""
        if o.valid_from or o.valid_until:
            valid = f"  valid {o.valid_from.date() if o.valid_from else '…'}–{o.valid_until.date() if o.valid_until else '…'}"
        click.echo(f"{o.id:<24} v{o.version:<3} value {o.value:>10.2f}  {o.title}  [{keys}]{valid}"
                   + (f"  if {o.eligibility}" if o.eligibility else ""))


@command.command("show")
@workspace_option
@click.argument("offer_id")
@handle_errors
def show_cmd(workspace: str, offer_id: str) -> None:
    """One offer with every version of it, as JSON."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        versions = OfferStore(storage).history(offer_id)
    click.echo(json.dumps({"id": offer_id, "versions": versions}, indent=2))


@command.command("delete")
@workspace_option
@click.argument("offer_id")
@handle_errors
def delete_cmd(workspace: str, offer_id: str) -> None:
    """Retire an offer (its versions are kept)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        w = OfferStore(storage).delete(offer_id, system_clock())
    click.echo(f"retired {offer_id} (version {w.version})")
