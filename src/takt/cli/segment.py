"""``takt segment``: stored segments (create, update, delete, list, history) and who is in a segment (count,
members, explain) on a DuckDB or PostgreSQL workspace.

``count``, ``members`` and ``explain`` take a stored segment's NAME or a DEFINITION: an argument that is a valid
segment name (letters, digits, ``_ - .``) is looked up in the store, anything else is parsed as a definition.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import (
    _api_get,
    _open_log_storage,
    api_option,
    at_or_now,
    handle_errors,
    key_option,
    workspace_option,
)
from takt.clock import system_clock
from takt.errors import TaktError
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import (
    WorkspaceTables,
    count_query,
    materialize_duckdb,
    page_query,
    profile_tables,
    with_events,
    workspace_vocabulary,
)
from takt.segments import Vocabulary, compile_segment, explain, parse, to_sql
from takt.segments import ast as a
from takt.segments.budget import QueryBudget
from takt.segments.cost import estimate as estimate_cost
from takt.segments.store import NAME_RE, SegmentVersion, segment_store
from takt.storage.base import Storage

DIALECTS = ("duckdb", "postgres", "spark")
ENGINES = ("duckdb", "postgres", "spark")
CLI_ACTOR = "cli"


@click.group("segment")
def command() -> None:
    """Stored segments, and who is in a segment: create, list, count, members, explain."""


at_option = click.option("--at", default=None, help="Evaluate windows as of this ISO time (default: now).")


@contextmanager
def _workspace(workspace: str) -> Iterator[tuple[ws_mod.Workspace, Storage]]:
    ws = ws_mod.open_workspace(workspace)
    with _open_log_storage(workspace) as storage:  # a workspace held by `takt serve` says to use --api
        yield ws, storage


def _runner(ws: ws_mod.Workspace, storage: Storage) -> ProfileRunner:
    """The profile projection, brought up to the log's head (with a progress bar when there is much to fold)."""
    runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
    runner.load()
    behind = storage.log.head() - runner.position
    if behind > 50_000 and sys.stderr.isatty():
        with Progress(TextColumn("[bold]profiles"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True) as bar:
            task = bar.add_task("events", total=behind)
            runner.catch_up(progress=lambda k: bar.advance(task, k))
    else:
        runner.catch_up()
    return runner


def _is_name(arg: str) -> bool:
    return NAME_RE.fullmatch(arg) is not None


def _target(storage: Storage, runner: ProfileRunner | None, arg: str, computed: Sequence[Any] = ()
            ) -> tuple[a.Condition, dict[str, a.Condition], str, SegmentVersion | None]:
    """(tree, lookup of stored segments, label, stored version) for a NAME or a DEFINITION (checked against the
    workspace's names, computed traits included)."""
    store = segment_store(storage)
    lookup = store.lookup()
    if _is_name(arg):
        v = store.get(arg)
        return v.tree, lookup, f"{v.name} v{v.version}", v
    vocab = workspace_vocabulary(storage, runner) if runner is not None else None
    fields = {f: getattr(vocab, f) for f in Vocabulary.__dataclass_fields__} if vocab is not None else {}
    if vocab is not None and computed:
        fields["traits"] = frozenset(fields["traits"]) | {c.name for c in computed}
    tree = parse(arg, vocabulary=Vocabulary(**{**fields, "segments": frozenset(lookup)}))
    return tree, lookup, "definition", None


def _api_name(target: str) -> str:
    if not _is_name(target):
        raise TaktError("with --api give a stored segment's NAME (definitions are counted on the workspace itself)",
                        code="usage")
    return target


def _query(at: str | None) -> str:
    return f"?{urlencode({'at': at_or_now(at).isoformat()})}"


def _print_version(v: SegmentVersion, verb: str) -> None:
    click.echo(f"{verb} segment {v.name!r} version {v.version}: {v.definition}")


# ---- the store
@command.command("create")
@workspace_option
@click.argument("name")
@click.argument("definition")
@click.option("--allow-unknown-names", is_flag=True,
              help="Do not check trait, event, interest and touchpoint names against those the workspace has seen.")
@handle_errors
def create_cmd(workspace: str, name: str, definition: str, allow_unknown_names: bool) -> None:
    """Store DEFINITION as segment NAME (version 1)."""
    with _workspace(workspace) as (ws, storage):
        vocab = None if allow_unknown_names else workspace_vocabulary(storage, _runner(ws, storage))
        v = segment_store(storage).create(name, text=definition, now=system_clock(), by=CLI_ACTOR, vocabulary=vocab)
    _print_version(v, "created")
    click.echo(f"  {explain(v.tree)}")


@command.command("update")
@workspace_option
@click.argument("name")
@click.argument("definition")
@click.option("--allow-unknown-names", is_flag=True, help="As for create.")
@handle_errors
def update_cmd(workspace: str, name: str, definition: str, allow_unknown_names: bool) -> None:
    """Give segment NAME a new definition (a new version; the old ones stay in its history)."""
    with _workspace(workspace) as (ws, storage):
        store = segment_store(storage)
        old = store.get(name)
        vocab = None if allow_unknown_names else workspace_vocabulary(storage, _runner(ws, storage))
        v = store.update(name, text=definition, now=system_clock(), by=CLI_ACTOR, vocabulary=vocab)
    _print_version(v, "unchanged" if v.version == old.version else "updated")


@command.command("delete")
@workspace_option
@click.argument("name")
@handle_errors
def delete_cmd(workspace: str, name: str) -> None:
    """Delete segment NAME (refused while another segment uses it; its history stays)."""
    with _workspace(workspace) as (_, storage):
        v = segment_store(storage).delete(name, now=system_clock(), by=CLI_ACTOR)
    click.echo(f"deleted segment {v.name!r} (version {v.version} records the deletion)")


@command.command("list")
@workspace_option
@api_option
@key_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per segment.")
@handle_errors
def list_cmd(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """The stored segments and their current definitions."""
    if api:
        rows = [{k: v for k, v in r.items() if k != "links"} for r in _api_get(api, key, "/v1/segments")["segments"]]
    else:
        with _workspace(workspace) as (_, storage):
            rows = [v.to_json() for v in segment_store(storage).list()]
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return
    if not rows:
        click.echo("no segments yet: takt segment create NAME 'DEFINITION'")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  v{r['version']:<3} {r['definition']}")


@command.command("history")
@workspace_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
@handle_errors
def history_cmd(workspace: str, name: str, as_json: bool) -> None:
    """Every version of segment NAME, oldest first (deletions included)."""
    with _workspace(workspace) as (_, storage):
        rows = segment_store(storage).versions(name)
    for v in rows:
        if as_json:
            click.echo(orjson.dumps(v.to_json()).decode())
            continue
        when = v.created_at.isoformat().replace("+00:00", "Z")
        what = "(deleted)" if v.deleted else v.definition
        click.echo(f"v{v.version:<3} {when}  {v.created_by or '-':<12} {what}")


# ---- who is in
@command.command("explain")
@click.argument("target", metavar="NAME|DEFINITION")
@click.option("--workspace", "-w", envvar="TAKT_WORKSPACE", default=".", show_default=True,
              type=click.Path(file_okay=False), help="The workspace (for a stored segment's NAME).")
@click.option("--dialect", type=click.Choice(DIALECTS), default=None, help="Print the SQL for this dialect only.")
@at_option
@handle_errors
def explain_cmd(target: str, workspace: str, dialect: str | None, at: str | None) -> None:
    """Say a stored segment (NAME) or a DEFINITION in plain English, with its SQL for each dialect."""
    if _is_name(target):
        with _workspace(workspace) as (_, storage):
            node, lookup, label, _v = _target(storage, None, target)
        click.echo(f"{label}: {explain(node)}")
    else:
        node, lookup = parse(target), {}
        click.echo(explain(node))
    click.echo(estimate_cost(node, lookup).text())
    for d in ([dialect] if dialect else DIALECTS):
        click.echo(f"\n-- {d}")
        click.echo(to_sql(node, now=at_or_now(at), dialect_name=d, segments=lookup))


def _engine(storage: Storage, engine: str | None) -> str:
    backend = "postgres" if storage.backend == "postgres" else "duckdb"
    engine = engine or backend
    if engine == "postgres" and backend != "postgres":
        raise TaktError("--engine postgres runs on a PostgreSQL workspace (database_url); this one is DuckDB: "
                        "use --engine duckdb", code="unsupported")
    return engine


def _computed(ws: ws_mod.Workspace) -> list[Any]:
    """The workspace's computed traits (setting ``segments.computed_traits``)."""
    from takt.segments.computed import SETTING, from_settings

    return from_settings(ws.settings[SETTING.name])


def _members_on(engine: str, storage: Storage, runner: ProfileRunner, query: Any, spark_master: str,
                tree: a.Condition, lookup: dict[str, a.Condition], now: datetime,
                computed: Sequence[Any] = (), budget: QueryBudget | None = None) -> list[tuple[Any, ...]]:
    """Run ``query`` (sqlglot) on the chosen engine over the workspace's profile tables (with the computed
    traits' rows at ``now``); on the workspace's own database under ``budget``."""
    if engine == (storage.backend if storage.backend == "postgres" else "duckdb"):
        tables = WorkspaceTables(storage, runner, computed=computed)
        tables.refresh(now)
        if budget is not None:
            return storage.budgeted_query(budget).run(tables.sql(query))
        return tables.rows(query)
    with runner.lock:
        data = profile_tables(runner.projector.states(), runner.config)  # streamed from the store
    data = with_events(storage.log, data)
    if engine == "duckdb" or computed:
        import duckdb

        con = duckdb.connect(":memory:")  # counts for a PostgreSQL workspace; computes computed traits for Spark
        try:
            con.execute("SET TimeZone = 'UTC'")
            materialize_duckdb(con, data)
            if computed:
                from takt.segments.computed import materialize_computed

                materialize_computed(con, computed, now=now)
                data = {**data, "profile_traits": con.table("profile_traits").to_arrow_table()}
            if engine == "duckdb":
                return list(con.execute(query.sql(dialect="duckdb")).fetchall())
        finally:
            con.close()
    import pyarrow.parquet as pq

    from takt.segments.spark import SPARK_TABLES, register_parquet, spark_session

    with tempfile.TemporaryDirectory(prefix="takt-spark-") as tmp:
        for name in SPARK_TABLES:
            pq.write_table(data[name], str(Path(tmp) / f"{name}.parquet"))
        session = spark_session(spark_master)
        register_parquet(session, Path(tmp))
        return [tuple(r) for r in session.sql(query.sql(dialect="spark")).collect()]


engine_option = click.option(
    "--engine", type=click.Choice(ENGINES), default=None,
    help="Where the compiled SQL runs (default: the workspace's database). postgres: a PostgreSQL workspace's own "
         "database; duckdb; spark: the tables as Parquet, read by Spark SQL (local mode, or --spark-master).")
spark_option = click.option("--spark-master", default="local[2]", show_default=True,
                            help="Spark master URL for --engine spark.")


@command.command("count")
@workspace_option
@click.argument("target", metavar="NAME|DEFINITION")
@at_option
@engine_option
@spark_option
@api_option
@key_option
@handle_errors
def count_cmd(workspace: str, target: str, at: str | None, engine: str | None, spark_master: str, api: str | None,
              key: str | None) -> None:
    """How many profiles are in a stored segment (NAME) or match a DEFINITION."""
    if api:
        name = _api_name(target)
        started = time.perf_counter()
        body = _api_get(api, key, f"/v1/segments/{quote(name)}/count{_query(at)}")
        elapsed = time.perf_counter() - started
        click.echo(f"{body['count']} profiles match (server, {body.get('engine')}, {elapsed * 1000:.1f} ms)  "
                   f"[{name} v{body['version']}]")
        return
    now = at_or_now(at)
    with _workspace(workspace) as (ws, storage):
        engine = _engine(storage, engine)
        runner = _runner(ws, storage)
        computed = _computed(ws)
        node, lookup, label, _v = _target(storage, runner, target, computed)
        dialect = "postgres" if engine == "postgres" else engine
        query = count_query(compile_segment(node, now=now, dialect_name=dialect, segments=lookup))
        started = time.perf_counter()
        rows = _members_on(engine, storage, runner, query, spark_master, node, lookup, now, computed,
                           QueryBudget.from_settings(ws.settings))
        elapsed = time.perf_counter() - started
    n = int(rows[0][0]) if rows else 0
    click.echo(f"{n} profiles match ({engine}, {elapsed * 1000:.1f} ms): {explain(node)}"
               + (f"  [{label}]" if label != "definition" else ""))


@command.command("members")
@workspace_option
@click.argument("target", metavar="NAME|DEFINITION")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "jsonl", "parquet"]), default="text",
              show_default=True, help="text: one profile id a line.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (default: standard output; parquet needs a file).")
@at_option
@engine_option
@spark_option
@api_option
@key_option
@handle_errors
def members_cmd(workspace: str, target: str, fmt: str, output: str | None, at: str | None, engine: str | None,
                spark_master: str, api: str | None, key: str | None) -> None:
    """The profile ids in a stored segment (NAME) or matching a DEFINITION, in profile id order."""
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet needs --output FILE")
    now = at_or_now(at)
    if api:
        name = _api_name(target)
        ids = []
        after: str | None = None
        while True:  # page through the server's members, in profile id order
            params = {"at": now.isoformat(), "limit": "10000", **({"after": after} if after else {})}
            page = _api_get(api, key, f"/v1/segments/{quote(name)}/members?{urlencode(params)}")
            ids.extend(page["members"])
            after = page.get("next_after")
            if not after:
                break
    else:
        with _workspace(workspace) as (ws, storage):
            engine = _engine(storage, engine)
            runner = _runner(ws, storage)
            computed = _computed(ws)
            node, lookup, _label, _v = _target(storage, runner, target, computed)
            query = page_query(compile_segment(node, now=now, dialect_name=engine, segments=lookup))
            ids = [str(r[0]) for r in _members_on(engine, storage, runner, query, spark_master, node, lookup, now,
                                                   computed, QueryBudget.from_settings(ws.settings))]
    ids.sort()  # Spark returns the ordered rows, but sort here too: the order is promised
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"profile_id": pa.array(ids, pa.string())}), str(output))
        click.echo(f"{len(ids)} members → {output}", err=True)
        return
    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "csv":
            w = csv.writer(out, lineterminator="\n")
            w.writerow(["profile_id"])
            w.writerows([i] for i in ids)
        elif fmt == "jsonl":
            out.writelines(orjson.dumps({"profile_id": i}).decode() + "\n" for i in ids)
        else:
            out.writelines(i + "\n" for i in ids)
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"{len(ids)} members → {output}", err=True)
