"""``takt campaign launch|pause|resume|stop|status``: running a campaign.

The orchestrator runs inside ``takt serve`` and ``takt worker``. Through a server (the one holding a DuckDB
workspace, or ``--api``) the commands call its API. On a workspace no server holds, ``pause``/``resume``/``stop``
(and ``launch --version N``) append the lifecycle event to the log, which the worker's orchestrator follows;
``status`` folds the log.

The click group ``campaign`` belongs to the campaign document commands (``cli/campaign.py``); :func:`register`
adds these commands to it.
"""

from __future__ import annotations

import json
from typing import Any

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock
from takt.errors import TaktError

ACTIONS = ("launch", "pause", "resume", "stop")


def _offline(workspace: str, name: str, action: str | None, version: int | None) -> dict[str, Any]:
    from takt.campaigns.delivery.base import Deliveries
    from takt.campaigns.orchestrator import Orchestrator
    from takt.policy.config import PolicySettings

    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        orch = Orchestrator(storage, None, Deliveries({}), PolicySettings(), lambda n, v: None, system_clock)
        try:
            if action == "launch":
                if version is None:
                    raise TaktError("without a server, launch needs --version N (the campaign store's version)",
                                    code="usage")
                from takt.campaigns import events as ce

                orch.refresh()
                run = orch.runs.runs.get(name)
                if run is not None and run.status != "stopped":
                    raise TaktError(f"campaign {name!r} is already {run.status}", code="campaign_already_launched",
                                    status=409)
                storage.log.append([ce.lifecycle(name, version, "launched", system_clock(),
                                                 run.serial if run else 0)])
            elif action is not None:
                orch.control(name, action)
            orch.refresh()
            run = orch.runs.runs.get(name)
            if run is None:
                raise TaktError(f"campaign {name!r} was never launched", code="campaign_not_launched", status=404)
            messages = [m for m in orch.runs.messages.values() if m.campaign == name]
            counts: dict[str, int] = {}
            for m in messages:
                s = orch.runs.status_of(m.message_id) or "pending"
                counts[s] = counts.get(s, 0) + 1
            enrolled = [e for e in orch.runs.of_campaign(name)]
            return {"campaign": name, "version": run.version, "status": run.status,
                    "enrolled": sum(1 for e in enrolled if not e.holdout),
                    "holdout": sum(1 for e in enrolled if e.holdout),
                    "waiting": sum(1 for e in enrolled if e.next is not None and not e.holdout),
                    "sent": counts.get("sent", 0), "failed": counts.get("failed", 0),
                    "unknown": counts.get("unknown", 0), "skipped_total": counts.get("skipped", 0)}
        finally:
            orch.stop()


def _show(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(f"{body['campaign']} v{body['version']}: {body['status']}")
    for k in ("enrolled", "holdout", "waiting", "done", "sent", "failed", "unknown", "skipped_total",
              "conversions"):
        if body.get(k) is not None:
            click.echo(f"  {k:<11} {body[k]}")
    for code, n in (body.get("skipped") or {}).items():
        click.echo(f"  skipped    {n}  {code}")


def _command(action: str | None) -> click.Command:
    @click.argument("name")
    @workspace_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @handle_errors
    def run(name: str, workspace: str, api: str | None, key: str | None, as_json: bool,
            version: int | None = None) -> None:
        server = server_api(workspace, api, key)
        if server is not None:
            if action is None:
                body = server.get(server.path("v1", "campaigns", name, "status"))
            else:
                body = server.post(server.path("v1", "campaigns", name, action),
                                   {"version": version} if version is not None else {})
        else:
            body = _offline(workspace, name, action, version)
        _show(body, as_json)

    if action == "launch":
        run = click.option("--version", type=int, default=None, help="The version to launch (default: the "
                                                                     "newest).")(run)
    helps = {"launch": "Launch a campaign: enrol its audience or listen for its trigger, and send.",
             "pause": "Pause a campaign: nobody advances or is sent anything until resume.",
             "resume": "Resume a paused campaign.", "stop": "Stop a campaign for good (this version).",
             None: "What a campaign run did: enrolled, waiting, sent, skipped by reason code, failed, unknown."}
    return click.command(action or "status", help=helps[action])(run)


def commands() -> list[click.Command]:
    return [_command(a) for a in (*ACTIONS, None)]


def register(group: click.Group) -> None:
    """Add launch, pause, resume, stop and status to the ``campaign`` group."""
    for cmd in commands():
        group.add_command(cmd)
