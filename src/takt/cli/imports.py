"""``takt import customers|orders|cases|products FILE``: CRM and commerce files into the event log."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import Clock, system_clock
from takt.events.model import PROVENANCES
from takt.ingest.records import (
    ImportOptions,
    ImportSummary,
    import_file,
    load_mapping_file,
    parse_map_flags,
)
from takt.ingest.window import TimeWindow
from takt.log.base import EventLog


def run_import(
    log: EventLog,
    record_type: str,
    path: str | Path,
    options: ImportOptions,
    *,
    now: datetime,
    rejects: str | Path | None = None,
    fmt: str | None = None,
    show_progress: bool = True,
    label: str | None = None,
) -> ImportSummary:
    """Import one file with a progress bar (used by ``takt import`` and ``takt demo``)."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not show_progress, transient=False, console=Console(stderr=True),  # stdout stays for the result
    ) as bar:
        task = bar.add_task(label or f"importing {record_type}", total=None)

        def on_start(total: int | None) -> None:
            bar.update(task, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        summary = import_file(log, path, record_type, options, now=now, rejects_path=rejects, fmt=fmt,
                              progress=advance, on_start=on_start)
        bar.update(task, total=summary.read, completed=summary.read)
    return summary





@click.group("import")
def command() -> None:
    """Import CRM and commerce files (CSV, Parquet, JSON lines) as records in the event log.

    Each good row becomes one `record` event; rows with problems go to a rejects file with their row
    number and reasons. Importing the same file again stores nothing new.
    """


def _record_command(plural: str, help_text: str, clock: Clock = system_clock) -> Callable[..., Any]:
    @command.command(plural, help=help_text)
    @click.argument("file", type=click.Path(dir_okay=False))
    @workspace_option
    @click.option("--source", default="crm", show_default=True, help="The source name the records are stored under.")
    @click.option("--provenance", type=click.Choice(list(PROVENANCES)), default="crm_import", show_default=True,
                  help="What the data is (third_party for bought enrichment data).")
    @click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
                  help="Read FIELD from COLUMN (repeatable); overrides --mapping.")
    @click.option("--mapping", type=click.Path(dir_okay=False, exists=True), default=None,
                  help="A TOML or JSON file of field = column pairs (or one table per record type).")
    @click.option("--rejects", type=click.Path(dir_okay=False), default=None,
                  help="Where rejected rows go (default: FILE.rejects.csv/.jsonl next to FILE).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default=None,
                  help="The file's format (default: from its suffix).")
    @click.option("--default-region", default=None, metavar="CC",
                  help="Country for phone numbers without a +country code, e.g. DE.")
    @click.option("--customer-given/--not-customer-given", default=True, show_default=True,
                  help="Customers: whether the customer gave these contact points themselves.")
    @click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
    @handle_errors
    def cmd(file: str, workspace: str, source: str, provenance: str, maps: tuple[str, ...], mapping: str | None,
            rejects: str | None, fmt: str | None, default_region: str | None, customer_given: bool,
            progress: bool) -> None:
        cols: dict[str, str] = {}
        if mapping:
            cols.update(load_mapping_file(mapping, plural))
        cols.update(parse_map_flags(maps))
        options = ImportOptions(source=source, provenance=provenance, mapping=cols,
                                customer_given=customer_given, default_region=default_region)
        options.check()
        ws = ws_mod.open_workspace(workspace)
        options = dataclasses.replace(options, window=TimeWindow.from_settings(ws.settings))
        with ws.open_storage() as storage:
            summary = run_import(storage.log, plural, file, options, now=clock(), rejects=rejects, fmt=fmt,
                                 show_progress=progress)
        for line in summary.lines():
            click.echo(line)

    return cmd


_record_command("customers", "Import customers (row key: crm_id) from FILE.")
_record_command("orders", "Import orders (row key: order_id) from FILE.")
_record_command("cases", "Import service cases (row key: case_id) from FILE.")
_record_command("products", "Import the product catalog (row key: product_id) from FILE.")
