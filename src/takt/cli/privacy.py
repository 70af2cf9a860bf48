"""``takt privacy export|erase IDENTIFIER`` and ``takt privacy audit``: the data subject's rights from the shell.

The CLI opens the workspace itself (on DuckDB the server must be stopped: one process owns the file; on
PostgreSQL it may run alongside servers). Every export and erasure is written to the audit log with the key id
``cli:<user>``. On DuckDB an erasure ends by rewriting the database file (``compact``), so nothing erased
lingers in its free blocks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.remote import server_api
from takt.clock import system_clock
from takt.errors import TaktError
from takt.privacy.audit import ACTIONS, audit_log, cli_actor, record
from takt.privacy.rights import erase_person, export_person
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.storage.engines import compact_file


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _actor() -> str:
    return cli_actor()


@click.group("privacy")
def command() -> None:
    """Data subject rights: export everything about a person, erase a person, read the audit log."""


@command.command("export")
@workspace_option
@server_options
@click.argument("identifier")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", help="File (default: stdout).")
@handle_errors
def export_cmd(workspace: str, api: str | None, key: str | None, identifier: str, output: str) -> None:
    """Everything held about IDENTIFIER (TYPE:VALUE or a profile id) as one JSON document (GDPR Art. 15/20)."""
    server = server_api(workspace, api, key)
    if server is not None:  # the server audits it under its key
        with Console(stderr=True).status("exporting…"):
            doc = server.post("/v1/privacy/export", {"identifier": identifier})
        _write_export(doc, output)
        return
    ws = ws_mod.open_workspace(workspace)
    now = system_clock()
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        runner.load()
        try:
            doc = export_person(storage, runner, identifier, now)
        except TaktError as e:
            record(storage, now, _actor(), "privacy.export", None, e.code)
            raise
        audit_log(storage).record_many(now, _actor(), "privacy.export", [p["id"] for p in doc["profiles"]])
    _write_export(doc, output)


def _write_export(doc: dict[str, Any], output: str) -> None:
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(data)
        ids = ", ".join(p["id"] for p in doc.get("profiles", [doc["profile"]]))
        click.echo(f"exported {len(doc.get('profiles', [1]))} profile(s) ({ids}): {len(doc['events'])} events → {output}",
                   err=True)


@command.command("erase")
@workspace_option
@server_options
@click.argument("identifier")
@click.option("--yes", is_flag=True, help="Confirm: the person's personal data cannot be recovered afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def erase_cmd(workspace: str, api: str | None, key: str | None, identifier: str, yes: bool, as_json: bool) -> None:
    """Erase IDENTIFIER's personal data everywhere (GDPR Art. 17) by destroying their keys. Needs --yes."""
    if not yes:
        raise TaktError(f"erasing {identifier} cannot be undone; run again with --yes to confirm",
                        code="confirmation_required")
    console = Console(stderr=True)
    server = server_api(workspace, api, key)
    if server is not None:  # the server erases, rebuilds its projections and audits under its key
        with console.status("erasing through the server…"):
            result = server.post("/v1/privacy/erase", {"identifier": identifier})
        _erase_report(result, identifier, False, as_json)
        if result.get("erased"):
            click.echo("the server holds the DuckDB file: stop it and run `takt privacy compact` so nothing erased "
                       "lingers in the file's free blocks", err=True)
        return
    ws = ws_mod.open_workspace(workspace)
    now = system_clock()
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        with console.status("loading profiles…") as status:
            runner.load()

            def step(text: str) -> None:
                status.update(text + "…")

            # audited inside: "requested" before it starts, then "erased", "not_found" or "failed: …"; a failed
            # erasure is finished by running the command again
            result = erase_person(storage, runner, identifier, now, _actor(), progress=step)
        path = storage.database_file
        compact = path is not None
    if path is not None:
        with console.status("rewriting the database file…"):
            compact_file(path)
    _erase_report({**result, "compacted": compact}, identifier, compact, as_json)


def _erase_report(result: dict[str, Any], identifier: str, compact: bool, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(result, default=str).decode())
        return
    if result["erased"] and result["profile_id"]:
        click.echo(f"erased profile {result['profile_id']}: {_n(result['events'], 'event')} redacted, "
                   f"{_n(result['keys'], 'key')} destroyed, {_n(result['suppressed'], 'contact point')} kept as "
                   "suppression hashes" + ("; database file rewritten" if compact else ""))
        others = [p for p in result.get("profiles", []) if p != result["profile_id"]]
        if others:
            click.echo(f"also erased {_n(len(others), 'other profile')} carrying {identifier!r} (kept apart by "
                       f"identity): {', '.join(others)}")
    elif result["keys"]:
        click.echo(f"no profile holds {identifier!r}; {_n(result['keys'], 'key')} destroyed, "
                   f"{_n(result['events'], 'event')} redacted")
    else:
        click.echo(f"no profile has the identifier {identifier!r}: nothing to erase")


@command.command("audit")
@workspace_option
@server_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--action", type=click.Choice(ACTIONS), default=None)
@click.option("--subject", default=None, help="Only entries about this profile id.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@handle_errors
def audit_cmd(workspace: str, api: str | None, key: str | None, limit: int, action: str | None,
              subject: str | None, as_json: bool) -> None:
    """The audit log, newest first: who read, exported or erased personal data."""
    server = server_api(workspace, api, key)
    if server is not None:
        rows: list[dict[str, Any]] = []
        before = None
        while len(rows) < limit:  # the API pages by at most 1000
            page = server.get("/v1/audit", limit=min(1000, limit - len(rows)), action=action, subject=subject,
                              before=before)
            rows.extend(page["entries"])
            before = page.get("next_before")
            if not before:
                break
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            rows = [e.to_json() for e in audit_log(storage).entries(limit, None, action, subject)]
    if as_json:
        for j in rows:
            click.echo(orjson.dumps(j).decode())
        return
    from takt.cli.render import print_table

    print_table(("id", "at", "key", "action", "subject", "outcome"),
                [(j["id"], j["at"], j["key_id"], j["action"], j["subject"], j["outcome"]) for j in rows],
                ids=("key", "subject"), empty="the audit log is empty")


@command.command("compact")
@workspace_option
@handle_errors
def compact_cmd(workspace: str) -> None:
    """Rewrite a DuckDB workspace's database file so nothing deleted lingers in its free blocks (run it, with the
    server stopped, after erasures made over HTTP; `takt privacy erase` does it itself)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:  # fails clearly when another process holds the file
        path = storage.database_file
    if path is None:
        raise TaktError("compact rewrites a DuckDB file; on PostgreSQL run VACUUM (see docs/privacy.md)",
                        code="unsupported")
    with Console(stderr=True).status("rewriting the database file…"):
        compact_file(path)
    click.echo(f"rewrote {path}")
