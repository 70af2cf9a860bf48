"""``takt profiles show IDENTIFIER``: one profile as JSON, from the last projection snapshot plus catch-up."""

from __future__ import annotations

import click
import orjson

from takt import workspace as ws_mod
from takt.cli.main import at_or_now, handle_errors, workspace_option
from takt.clock import system_clock
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner


@click.group("profiles")
def command() -> None:
    """Look at profiles."""


@command.command("show")
@workspace_option
@click.argument("identifier")
@click.option("--at", default=None, help="Decay interests to this ISO time (default: now).")
@handle_errors
def show(workspace: str, identifier: str, at: str | None) -> None:
    """Print the profile holding IDENTIFIER (TYPE:VALUE, e.g. email:ann@example.com, or a profile id)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        runner.load()
        runner.catch_up()
        pid = identifier if identifier.startswith("p_") and ":" not in identifier else runner.find(identifier)
        body = runner.profile_json(pid, at_or_now(at) if at else None)
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
