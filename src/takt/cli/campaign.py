"""``takt campaign``: campaign documents (validate offline; create, update, list, show, delete in the workspace
or through its server).

A document is a JSON or YAML file (``-`` reads standard input), the same as the API takes. ``validate`` checks
it without a workspace and prints every problem at its field, with the source line underlined for expressions
and templates; ``create`` and ``update`` check it again against the workspace's names and stored segments.

Launching and a campaign's status are the orchestrator's commands: :mod:`takt.cli.campaign_run`, when present,
adds them to this group (``register(group)``); this module owns the document commands only.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from takt import workspace as ws_mod
from takt.campaigns.document import Context, format_errors, load, parse_document, workspace_context
from takt.campaigns.model import Branch, Campaign, Send, step_paths
from takt.cli.main import _open_log_storage, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock
from takt.errors import TaktError
from takt.storage.base import Storage

CLI_ACTOR = "cli"


@click.group("campaign")
def command() -> None:
    """Campaigns: validate, create, update, list, show and delete campaign documents."""


def handle_campaign_errors(fn: Any) -> Any:
    """takt's errors as a message and exit code 2; a document's problems one block each, underlined."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaktError as e:
            if e.errors and any("field" in x for x in e.errors):
                click.secho(format_errors(e), fg="red", err=True)
            else:
                msg = str(e)
                click.secho(msg if msg.startswith("error:") else f"error: {msg}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def _read(file: str) -> tuple[str, Any]:
    """The document's text and data (``-``: standard input)."""
    if file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise TaktError(f"cannot read {file}: {e.strerror}", code="usage") from None
    return text, load(text)


@contextmanager
def _workspace(workspace: str) -> Iterator[tuple[ws_mod.Workspace, Storage]]:
    ws = ws_mod.open_workspace(workspace)
    with _open_log_storage(workspace) as storage:
        yield ws, storage


def _context(ws: ws_mod.Workspace, storage: Storage, allow_unknown_names: bool) -> Context:
    if allow_unknown_names:
        return Context()
    from takt.cli.segment import _runner

    return workspace_context(storage, _runner(ws, storage), ws.settings)


def _store(storage: Storage) -> Any:
    from takt.campaigns.store import campaign_store

    return campaign_store(storage)


def _summary(c: Campaign) -> str:
    audience = f"segment {c.audience.segment!r}" if c.audience.segment else c.audience.expression
    trigger = c.trigger.on + (f" {c.trigger.cron} {c.trigger.timezone}" if c.trigger.on == "schedule" else "") + (
        f" {c.trigger.segment}" if c.trigger.segment else "") + (f" {c.trigger.event}" if c.trigger.event else "")
    steps = step_paths(c.steps)
    sends = sum(1 for s in steps.values() if isinstance(s, Send))
    branches = sum(1 for s in steps.values() if isinstance(s, Branch))
    return (f"  {c.intent} · channels {', '.join(c.channels)} · trigger {trigger} · priority {c.priority}"
            f" · holdout {c.holdout:g}\n  audience: {audience}\n  {len(steps)} step{'s' if len(steps) != 1 else ''}"
            f" ({sends} send{'s' if sends != 1 else ''}, {branches} branch{'es' if branches != 1 else ''})")


def _echo_version(d: dict[str, Any], verb: str, as_json: bool) -> None:
    d = {k: v for k, v in d.items() if k != "links"}
    if as_json:
        click.echo(orjson.dumps(d).decode())
        return
    click.echo(f"{verb} campaign {d['name']!r} version {d['version']}")
    if not d.get("archived"):
        click.echo(_summary(parse_document(d["document"], version=d["version"])))


@command.command("validate")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the problems (or the campaign) as JSON.")
@handle_campaign_errors
def validate_cmd(file: str, as_json: bool) -> None:
    """Check campaign document FILE (JSON or YAML; - for stdin) without a workspace: every problem, at its field."""
    _, data = _read(file)
    try:
        c = parse_document(data)
    except TaktError as e:
        if as_json:
            click.echo(orjson.dumps(e.to_json()).decode())
            sys.exit(2)
        raise
    if as_json:
        click.echo(orjson.dumps({"valid": True, "name": c.name, "document": dict(c.document)}).decode())
        return
    click.echo(f"campaign {c.name!r} is valid")
    click.echo(_summary(c))


@command.command("create")
@workspace_option
@server_options
@click.argument("file")
@click.option("--allow-unknown-names", is_flag=True,
              help="Do not check trait, event, interest and segment names against the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored version as JSON.")
@handle_campaign_errors
def create_cmd(workspace: str, api: str | None, key: str | None, file: str, allow_unknown_names: bool,
               as_json: bool) -> None:
    """Store campaign document FILE (JSON or YAML; - for stdin) as a new campaign (version 1)."""
    _, data = _read(file)
    parse_document(data)  # the document's own problems, shown here with their lines, before any server
    server = server_api(workspace, api, key)
    if server is not None:
        body = server.post("/v1/campaigns", data, allow_unknown_names="true" if allow_unknown_names else None)
        _echo_version(body, "created", as_json)
        return
    with _workspace(workspace) as (ws, storage):
        campaign = parse_document(data, _context(ws, storage, allow_unknown_names))
        v = _store(storage).create(campaign, now=system_clock(), by=CLI_ACTOR)
    _echo_version(v.to_json(), "created", as_json)


@command.command("update")
@workspace_option
@server_options
@click.argument("file")
@click.option("--allow-unknown-names", is_flag=True, help="As for create.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored version as JSON.")
@handle_campaign_errors
def update_cmd(workspace: str, api: str | None, key: str | None, file: str, allow_unknown_names: bool,
               as_json: bool) -> None:
    """Store FILE as the next version of the campaign it names (unchanged: no new version)."""
    _, data = _read(file)
    c = parse_document(data)
    server = server_api(workspace, api, key)
    if server is not None:
        path = server.path("v1", "campaigns", c.name) + ("?allow_unknown_names=true" if allow_unknown_names else "")
        old = server.get(server.path("v1", "campaigns", c.name))
        body = server.put(path, data)
        _echo_version(body, "unchanged" if body["version"] == old["version"] else "updated", as_json)
        return
    with _workspace(workspace) as (ws, storage):
        store = _store(storage)
        old_version = store.get(c.name).version
        campaign = parse_document(data, _context(ws, storage, allow_unknown_names))
        v = store.update(campaign, now=system_clock(), by=CLI_ACTOR)
    _echo_version(v.to_json(), "unchanged" if v.version == old_version else "updated", as_json)


@command.command("list")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per campaign.")
@handle_campaign_errors
def list_cmd(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """The live campaigns, each at its newest version."""
    server = server_api(workspace, api, key)
    if server is not None:
        rows = [{k: v for k, v in r.items() if k != "links"} for r in server.get("/v1/campaigns")["campaigns"]]
    else:
        with _workspace(workspace) as (_, storage):
            rows = [v.to_json() for v in _store(storage).list()]
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return
    if not rows:
        click.echo("no campaigns yet: takt campaign create FILE (see docs/campaigns.md)")
        return
    from takt.cli.render import print_table

    print_table(("name", "version", "intent", "channels", "trigger"),
                [(r["name"], f"v{r['version']}", r["document"].get("intent"), ",".join(r["document"]["channels"]),
                  r["document"]["trigger"].get("on")) for r in rows], ids=("name",), header=False)


@command.command("show")
@workspace_option
@server_options
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), default=None, help="An older version.")
@click.option("--versions", "history", is_flag=True, help="Every version, oldest first (archiving included).")
@click.option("--json", "as_json", is_flag=True, help="As JSON (the document as stored).")
@handle_campaign_errors
def show_cmd(workspace: str, api: str | None, key: str | None, name: str, version: int | None, history: bool,
             as_json: bool) -> None:
    """Campaign NAME: its newest (or a given) version's document, or its history."""
    server = server_api(workspace, api, key)
    rows: list[dict[str, Any]]
    if server is not None:
        if history:
            rows = server.get(server.path("v1", "campaigns", name, "versions"))["versions"]
        else:
            rows = [server.get(server.path("v1", "campaigns", name), version=version)]
    else:
        with _workspace(workspace) as (_, storage):
            store = _store(storage)
            found = store.versions(name) if history else [store.get(name, version)]
            rows = [v.to_json() for v in found]
    rows = [{k: v for k, v in r.items() if k != "links"} for r in rows]
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return
    if history:
        from takt.cli.render import print_table

        print_table(("version", "created", "by", "state"),
                    [(f"v{r['version']}", r["created_at"], r.get("created_by"),
                      "archived" if r["archived"] else "") for r in rows], header=False)
        return
    r = rows[0]
    click.echo(f"campaign {r['name']!r} version {r['version']}" + (" (archived)" if r["archived"] else ""))
    click.echo(orjson.dumps(r["document"], option=orjson.OPT_INDENT_2).decode())


@command.command("delete")
@workspace_option
@server_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the archiving version as JSON.")
@handle_campaign_errors
def delete_cmd(workspace: str, api: str | None, key: str | None, name: str, as_json: bool) -> None:
    """Delete campaign NAME: it is archived, its versions stay for the record."""
    server = server_api(workspace, api, key)
    if server is not None:
        d = server.delete(server.path("v1", "campaigns", name))
    else:
        with _workspace(workspace) as (_, storage):
            d = _store(storage).delete(name, now=system_clock(), by=CLI_ACTOR).to_json()
    d = {k: v for k, v in d.items() if k != "links"}
    if as_json:
        click.echo(orjson.dumps(d).decode())
        return
    click.echo(f"deleted campaign {d['name']!r} (version {d['version']} records the archiving; its history stays)")


# The orchestrator's commands (launch, pause, resume, stop, status) join this group from their own module.
if importlib.util.find_spec("takt.cli.campaign_run") is not None:
    importlib.import_module("takt.cli.campaign_run").register(command)
