"""``takt offers``: load, list, show and retire the offers next-best-offer ranks (see docs/offers.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock
from takt.models.offers.catalog import read_catalog
from takt.models.offers.store import OfferStore


@click.group("offers")
def command() -> None:
    """The offer catalog: offers with interests, eligibility, value, validity, channels and caps."""


@command.command("load")
@workspace_option
@server_options
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Retire every current offer the file does not list.")
@click.option("--check", is_flag=True, help="Only validate the file; store nothing.")
@handle_errors
def load_cmd(workspace: str, api: str | None, key: str | None, file: str, replace: bool, check: bool) -> None:
    """Validate FILE (.yaml, .yml, .json or .csv) and store its offers; a changed offer gets a new version.

    Nothing is stored when any offer is invalid: every problem is listed with the offer and field."""
    offers = read_catalog(file)
    if check:
        click.echo(f"{file}: {len(offers)} valid offer{'s' if len(offers) != 1 else ''}")
        return
    server = server_api(workspace, api, key)
    if server is not None:
        before = {o["id"] for o in server.get("/v1/offers")["offers"]}
        body = server.post("/v1/offers", {"offers": [o.definition() for o in offers], "replace": replace})
        written_json = body["offers"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            store = OfferStore(storage)
            before = {o.id for o in store.current()}
            written_json = [w.to_json() for w in store.put(offers, system_clock(), replace=replace)]
    retired = sorted(before - {o.id for o in offers}) if replace else []
    written = written_json
    new = sum(1 for w in written if w["changed"] and w["version"] == 1)
    changed = sum(1 for w in written if w["changed"]) - new
    same = len(written) - new - changed
    click.echo(f"{len(written)} offers from {file}: {new} new, {changed} changed (new version), {same} unchanged"
               + (f"; retired {len(retired)}: {', '.join(retired)}" if retired else ""))


@command.command("list")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_cmd(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """The current offers."""
    server = server_api(workspace, api, key)
    if server is not None:
        rows = server.get("/v1/offers")["offers"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            rows = [o.to_json() for o in OfferStore(storage).current()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no offers (load some with `takt offers load FILE`)")
        return
    from takt.cli.render import print_table

    def valid(o: dict[str, Any]) -> str:
        if not (o.get("valid_from") or o.get("valid_until")):
            return "-"
        return f"{str(o.get('valid_from') or '…')[:10]} – {str(o.get('valid_until') or '…')[:10]}"

    print_table(("offer", "version", "value", "title", "interests", "valid", "eligibility"),
                [(o["id"], o.get("version"), o.get("value"), o.get("title"), ", ".join(o.get("interests") or []) or "-",
                  valid(o), o.get("eligibility")) for o in rows], ids=("offer",))


@command.command("show")
@workspace_option
@server_options
@click.argument("offer_id")
@handle_errors
def show_cmd(workspace: str, api: str | None, key: str | None, offer_id: str) -> None:
    """One offer with every version of it, as JSON."""
    server = server_api(workspace, api, key)
    if server is not None:
        versions = server.get(server.path("v1", "offers", offer_id))["versions"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            versions = OfferStore(storage).history(offer_id)
    click.echo(json.dumps({"id": offer_id, "versions": versions}, indent=2, default=str))


@command.command("delete")
@workspace_option
@server_options
@click.argument("offer_id")
@handle_errors
def delete_cmd(workspace: str, api: str | None, key: str | None, offer_id: str) -> None:
    """Retire an offer (its versions are kept)."""
    server = server_api(workspace, api, key)
    if server is not None:
        version = server.delete(server.path("v1", "offers", offer_id))["version"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            version = OfferStore(storage).delete(offer_id, system_clock()).version
    click.echo(f"retired {offer_id} (version {version})")
