"""``takt deliveries``: the dead-letter list (messages a channel could not deliver) and replaying them."""

from __future__ import annotations

import json

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock


@click.group("deliveries")
def command() -> None:
    """Delivery: the dead-letter list of messages a channel could not deliver, and replaying them."""


@command.command("dead-letters")
@workspace_option
@server_options
@click.option("--replay", "replay_id", default=None, metavar="ID", help="Re-render and send this dead letter again.")
@click.option("--channel", default=None, help="Only this channel.")
@click.option("--pending", is_flag=True, help="Only those not yet replayed successfully.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", default=None, help="The last id of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def dead_letters_cmd(workspace: str, api: str | None, key: str | None, replay_id: str | None, channel: str | None,
                     pending: bool, limit: int, after: str | None, as_json: bool) -> None:
    """List dead letters (ids, never addresses), or replay one with --replay ID."""
    from takt.campaigns.dead_letter_store import dead_letters
    from takt.campaigns.dead_letters import replay, resend_for

    server = server_api(workspace, api, key)
    if replay_id is not None:
        if server is not None:
            letter = server.post(f"/v1/deliveries/dead-letters/{replay_id}/replay", {})["dead_letter"]
        else:
            ws = ws_mod.open_workspace(workspace)
            with ws.open_storage() as storage:
                letter = replay(dead_letters(storage), replay_id, resend_for(storage, ws.settings), system_clock())\
                    .to_json()
        click.echo(json.dumps(letter) if as_json else f"{letter['id']}: {letter['replay_status']}")
        return
    if server is not None:
        rows = server.get("/v1/deliveries/dead-letters", limit=limit, after=after, channel=channel,
                          pending="true" if pending else "false")["dead_letters"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            rows = [d.to_json() for d in dead_letters(storage).page(limit, after, channel, pending)]
    if as_json:
        for j in rows:
            click.echo(json.dumps(j))
        return
    from takt.cli.render import print_table

    print_table(("id", "campaign", "channel", "attempts", "failed at", "error", "replayed"),
                [(j["id"], j["campaign"], j["channel"], j["attempts"], j["failed_at"], j["error"],
                  j["replay_status"] or "") for j in rows], ids=("id",), empty="no dead letters")
