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

import click
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import (
    _open_log_storage,
    at_or_now,
    handle_errors,
    server_options,
    workspace_option,
)
from takt.cli.remote import Api, server_api
from takt.clock import system_clock
from takt.errors import TaktError
from takt.models import scoring  # noqa: F401  registers score("…") (commands load lazily: say it here)
from takt.models.clv import segment as clv_segment  # noqa: F401  registers clv("…") for segments
from takt.policy import segment_functions  # noqa: F401  registers contactable(channel, purpose)
from takt.privacy.audit import cli_actor
from takt.privacy.audit import record as record_audit
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import (
    WorkspaceTables,
    count_query,
    materialize_duckdb,
    page_query,
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


def _bar(label: str) -> Any:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True)


def _runner(ws: ws_mod.Workspace, storage: Storage) -> ProfileRunner:
    """The profile projection and its segment tables, brought up to the log's head and written (with a progress
    bar when there is much to fold, or the tables are built whole once for a workspace of an earlier version)."""
    runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
    stored = storage.profiles.position()
    if (stored or 0) > 50_000 and storage.profiles.tables_position() != stored and sys.stderr.isatty():
        with _bar("segment tables") as bar:
            task = bar.add_task("events", total=stored)
            runner.load(progress=lambda k: bar.advance(task, k))
    else:
        runner.load()
    behind = storage.log.head() - runner.position
    if behind > 50_000 and sys.stderr.isatty():
        with _bar("profiles") as bar:
            task = bar.add_task("events", total=behind)
            runner.catch_up(progress=lambda k: bar.advance(task, k))
    else:
        runner.catch_up()
    if behind:
        runner.save()  # the profile store and the segment tables at the head: the next command starts there
    return runner


def _is_name(arg: str) -> bool:
    return NAME_RE.fullmatch(arg) is not None


def _target(storage: Storage, runner: ProfileRunner | None, arg: str, computed: Sequence[Any] = (),
            settings: Any = None) -> tuple[a.Condition, dict[str, a.Condition], str, SegmentVersion | None]:
    """(tree, lookup of stored segments, label, stored version) for a NAME or a DEFINITION (checked against the
    workspace's names, computed traits included)."""
    store = segment_store(storage)
    lookup = store.lookup()
    if _is_name(arg):
        v = store.get(arg)
        return v.tree, lookup, f"{v.name} v{v.version}", v
    vocab = workspace_vocabulary(storage, runner, settings) if runner is not None else None
    fields = {f: getattr(vocab, f) for f in Vocabulary.__dataclass_fields__} if vocab is not None else {}
    if vocab is not None and computed:
        fields["traits"] = frozenset(fields["traits"]) | {c.name for c in computed}
    if runner is not None:
        fields.setdefault("identifying", runner.config.identifying)
    tree = parse(arg, vocabulary=Vocabulary(**{**fields, "segments": frozenset(lookup)}))
    return tree, lookup, "definition", None


def _api_name(target: str) -> str:
    if not _is_name(target):
        raise TaktError("through the server, members takes a stored segment's NAME: store the definition first "
                        "(takt segment create NAME 'DEFINITION'), or count it (takt segment count 'DEFINITION')",
                        code="usage")
    return target


def _print_version(v: SegmentVersion | dict[str, Any], verb: str) -> None:
    d = v.to_json() if isinstance(v, SegmentVersion) else v
    click.echo(f"{verb} segment {d['name']!r} version {d['version']}: {d['definition']}")


def _seg(api: Api, name: str, *more: str) -> str:
    return api.path("v1", "segments", name, *more)


# ---- the store
@command.command("create")
@workspace_option
@server_options
@click.argument("name")
@click.argument("definition")
@click.option("--allow-unknown-names", is_flag=True,
              help="Do not check trait, event, interest and touchpoint names against those the workspace has seen.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def create_cmd(workspace: str, api: str | None, key: str | None, name: str, definition: str,
               allow_unknown_names: bool, as_json: bool) -> None:
    """Store DEFINITION as segment NAME (version 1)."""
    server = server_api(workspace, api, key)
    if server is not None:
        body = server.post("/v1/segments", {"name": name, "definition": definition,
                                            "allow_unknown_names": allow_unknown_names})
        if as_json:
            click.echo(orjson.dumps({k: v for k, v in body.items() if k != "links"}).decode())
            return
        _print_version(body, "created")
        click.echo(f"  {explain(parse(body['definition']))}")
        return
    with _workspace(workspace) as (ws, storage):
        vocab = None if allow_unknown_names else workspace_vocabulary(storage, _runner(ws, storage), ws.settings)
        v = segment_store(storage).create(name, text=definition, now=system_clock(), by=CLI_ACTOR, vocabulary=vocab)
    if as_json:
        click.echo(orjson.dumps(v.to_json()).decode())
        return
    _print_version(v, "created")
    click.echo(f"  {explain(v.tree)}")


@command.command("update")
@workspace_option
@server_options
@click.argument("name")
@click.argument("definition")
@click.option("--allow-unknown-names", is_flag=True, help="As for create.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def update_cmd(workspace: str, api: str | None, key: str | None, name: str, definition: str,
               allow_unknown_names: bool, as_json: bool) -> None:
    """Give segment NAME a new definition (a new version; the old ones stay in its history)."""
    server = server_api(workspace, api, key)
    if server is not None:
        old = server.get(_seg(server, name))
        body = server.put(_seg(server, name), {"definition": definition, "allow_unknown_names": allow_unknown_names})
        if as_json:
            click.echo(orjson.dumps({k: v for k, v in body.items() if k != "links"}).decode())
            return
        _print_version(body, "unchanged" if body["version"] == old["version"] else "updated")
        return
    with _workspace(workspace) as (ws, storage):
        store = segment_store(storage)
        old = store.get(name)
        vocab = None if allow_unknown_names else workspace_vocabulary(storage, _runner(ws, storage), ws.settings)
        v = store.update(name, text=definition, now=system_clock(), by=CLI_ACTOR, vocabulary=vocab)
    if as_json:
        click.echo(orjson.dumps(v.to_json()).decode())
        return
    _print_version(v, "unchanged" if v.version == old.version else "updated")


@command.command("delete")
@workspace_option
@server_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def delete_cmd(workspace: str, api: str | None, key: str | None, name: str, as_json: bool) -> None:
    """Delete segment NAME (refused while another segment uses it; its history stays)."""
    server = server_api(workspace, api, key)
    if server is not None:
        d = server.delete(_seg(server, name))
    else:
        with _workspace(workspace) as (_, storage):
            d = segment_store(storage).delete(name, now=system_clock(), by=CLI_ACTOR).to_json()
    if as_json:
        click.echo(orjson.dumps(d).decode())
        return
    click.echo(f"deleted segment {d['name']!r} (version {d['version']} records the deletion)")


@command.command("list")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per segment.")
@handle_errors
def list_cmd(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """The stored segments and their current definitions."""
    server = server_api(workspace, api, key)
    if server is not None:
        rows = [{k: v for k, v in r.items() if k != "links"} for r in server.get("/v1/segments")["segments"]]
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
    from takt.cli.render import print_table

    print_table(("name", "version", "definition"), [(r["name"], f"v{r['version']}", r["definition"]) for r in rows],
                ids=("name",), header=False)


@command.command("history")
@workspace_option
@server_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
@handle_errors
def history_cmd(workspace: str, api: str | None, key: str | None, name: str, as_json: bool) -> None:
    """Every version of segment NAME, oldest first (deletions included)."""
    server = server_api(workspace, api, key)
    if server is not None:
        rows = server.get(_seg(server, name, "versions"))["versions"]
    else:
        with _workspace(workspace) as (_, storage):
            rows = [v.to_json() for v in segment_store(storage).versions(name)]
    if as_json:
        for d in rows:
            click.echo(orjson.dumps(d).decode())
        return
    from takt.cli.render import print_table

    print_table(("version", "created", "by", "definition"),
                [(f"v{d['version']}", str(d["created_at"]).replace("+00:00", "Z"), d.get("created_by"),
                  "(deleted)" if d["deleted"] else d["definition"]) for d in rows], header=False)


# ---- who is in
@command.command("explain")
@click.argument("target", metavar="NAME|DEFINITION")
@click.option("--workspace", "-w", envvar="TAKT_WORKSPACE", default=".", show_default=True,
              type=click.Path(file_okay=False), help="The workspace (for a stored segment's NAME).")
@server_options
@click.option("--dialect", type=click.Choice(DIALECTS), default=None, help="Print the SQL for this dialect only.")
@at_option
@handle_errors
def explain_cmd(target: str, workspace: str, api: str | None, key: str | None, dialect: str | None,
                at: str | None) -> None:
    """Say a stored segment (NAME) or a DEFINITION in plain English, with its SQL for each dialect."""
    server = server_api(workspace, api, key) if _is_name(target) else None
    if server is not None:
        body = server.get(_seg(server, target, "explain"), at=at_or_now(at).isoformat())
        click.echo(f"{body['name']} v{body['version']}: {body['explanation']}")
        for d in ([dialect] if dialect else DIALECTS):
            click.echo(f"\n-- {d}")
            click.echo(body["sql"][d])
        return
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
    """The engine a count runs on: the workspace's own database by default; DuckDB (in memory) or Spark over
    exported tables on request; another server engine only when it is the workspace's."""
    engine = engine or storage.dialect
    if engine not in (storage.dialect, "duckdb", "spark"):
        names = {"postgres": "PostgreSQL", "duckdb": "DuckDB"}
        raise TaktError(f"--engine {engine} runs on a {names.get(engine, engine)} workspace (database_url); this "
                        f"one is {names.get(storage.dialect, storage.dialect)}: use --engine duckdb",
                        code="unsupported")
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
    if engine == storage.dialect:
        tables = WorkspaceTables(storage, runner, computed=computed)
        tables.refresh(now)
        if budget is not None:
            return storage.budgeted_query(budget).run(tables.sql(query))
        return tables.rows(query)
    from takt.storage import engines

    with engines.scratch() as con:  # counts for a PostgreSQL workspace; the tables Spark reads as Parquet
        materialize_duckdb(con, runner)
        if computed:
            from takt.segments.computed import materialize_computed

            materialize_computed(con, computed, now=now, workspace_layout=True)
        if engine == "duckdb":
            return list(con.execute(query.sql(dialect="duckdb")).fetchall())
        from takt.segments.spark import SPARK_TABLES

        data = {name: con.table(name).to_arrow_table() for name in SPARK_TABLES}
    import pyarrow.parquet as pq

    from takt.segments.spark import register_parquet, spark_session

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
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def count_cmd(workspace: str, target: str, at: str | None, engine: str | None, spark_master: str, api: str | None,
              key: str | None, as_json: bool) -> None:
    """How many profiles are in a stored segment (NAME) or match a DEFINITION."""
    server = server_api(workspace, api, key)
    if server is not None:
        started = time.perf_counter()
        if _is_name(target):
            body = server.get(_seg(server, target, "count"), at=at_or_now(at).isoformat())
            label = f"  [{target} v{body['version']}]"
        else:
            body = server.post("/v1/segments/count", {"definition": target}, at=at_or_now(at).isoformat())
            label = f": {body['explanation']}"
        elapsed = time.perf_counter() - started
        if as_json:
            click.echo(orjson.dumps(body).decode())
            return
        click.echo(f"{body['count']} profiles match (server, {body.get('engine')}, {elapsed * 1000:.1f} ms){label}")
        return
    now = at_or_now(at)
    with _workspace(workspace) as (ws, storage):
        engine = _engine(storage, engine)
        runner = _runner(ws, storage)
        computed = _computed(ws)
        node, lookup, label, _v = _target(storage, runner, target, computed, ws.settings)
        dialect = "postgres" if engine == "postgres" else engine
        query = count_query(compile_segment(node, now=now, dialect_name=dialect, segments=lookup))
        started = time.perf_counter()
        rows = _members_on(engine, storage, runner, query, spark_master, node, lookup, now, computed,
                           QueryBudget.from_settings(ws.settings))
        elapsed = time.perf_counter() - started
    n = int(rows[0][0]) if rows else 0
    if as_json:
        out: dict[str, Any] = {"count": n, "explanation": explain(node), "at": now.isoformat().replace("+00:00", "Z"),
                               "engine": engine}
        if _v is not None:
            out.update({"name": _v.name, "version": _v.version})
        else:
            out["definition"] = target
        click.echo(orjson.dumps(out).decode())
        return
    click.echo(f"{n} profiles match ({engine}, {elapsed * 1000:.1f} ms): {explain(node)}"
               + (f"  [{label}]" if label != "definition" else ""))


@command.command("members")
@workspace_option
@click.argument("target", metavar="NAME|DEFINITION")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "jsonl", "parquet"]), default="text",
              show_default=True, help="text: one profile id a line.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (default: standard output; parquet needs a file).")
@click.option("--fields", default="", metavar="A,B,…",
              help="Also export these fields per member: traits by name (email, firstName, …), email and phone "
                   "(the trait, else the contact point), first_seen, last_seen, top_interest. Audited.")
@click.option("--decide", "decide_intent", default=None, metavar="INTENT",
              help="Also the contact policy's decision per member for this intent (marketing, transactional, "
                   "service): allowed, channel, contact_point, reasons. Needs --channels. Audited.")
@click.option("--channels", default="", metavar="A,B,…", help="Candidate channels for --decide, e.g. email,sms.")
@click.option("--offer", is_flag=True, help="Also the next-best offer per member for --decide's intent and channels.")
@at_option
@engine_option
@spark_option
@server_options
@handle_errors
def members_cmd(workspace: str, target: str, fmt: str, output: str | None, fields: str, decide_intent: str | None,
                channels: str, offer: bool, at: str | None, engine: str | None, spark_master: str, api: str | None,
                key: str | None) -> None:
    """The profile ids in a stored segment (NAME) or matching a DEFINITION, in profile id order; with --fields,
    --decide or --offer an audience export with what activation needs."""
    from takt.campaigns.audience import audience_request, export, workspace_context

    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet needs --output FILE")
    now = at_or_now(at)
    field_list, channel_list = _split(fields), _split(channels)
    request = audience_request(field_list, decide_intent, channel_list, offer)  # checked before any work
    records: list[dict[str, Any]] | None = None
    server = server_api(workspace, api, key)
    if server is not None:
        name = _api_name(target)
        ids = []
        records = [] if request.personal else None
        extra = {k: v for k, v in (("fields", fields), ("decide", decide_intent or ""), ("channels", channels),
                                   ("offer", "true" if offer else "")) if v}
        after: str | None = None
        while True:  # page through the server's members, in profile id order
            params = {"at": now.isoformat(), "limit": 10000, **extra, **({"after": after} if after else {})}
            page = server.get(_seg(server, name, "members"), **params)
            ids.extend(page["members"])
            if records is not None:
                records.extend(page.get("rows", []))
            after = page.get("next_after")
            if not after:
                break
    else:
        with _workspace(workspace) as (ws, storage):
            engine = _engine(storage, engine)
            runner = _runner(ws, storage)
            computed = _computed(ws)
            node, lookup, _label, _v = _target(storage, runner, target, computed, ws.settings)
            query = page_query(compile_segment(node, now=now, dialect_name=engine, segments=lookup))
            ids = [str(r[0]) for r in _members_on(engine, storage, runner, query, spark_master, node, lookup, now,
                                                   computed, QueryBudget.from_settings(ws.settings))]
            ids.sort()  # Spark returns the ordered rows, but sort here too: the order is promised
            if request.personal:
                vocab = workspace_vocabulary(storage, runner)
                request = audience_request(field_list, decide_intent, channel_list, offer,
                                           known_traits=_traits(vocab, computed))
                ctx = workspace_context(storage, runner, ws.settings, request)
                records = export(ctx, ids, request, now, _cli_actor())
            else:
                record_audit(storage, system_clock(), cli_actor(), "segment.members", None)  # (the API audits its own)
    ids.sort()
    if records is not None:
        _write_records(records, request.columns(), fmt, output)
        return
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


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _traits(vocab: Any, computed: Sequence[Any]) -> frozenset[str] | None:
    if vocab is None or vocab.traits is None:
        return None
    return frozenset(vocab.traits) | {c.name for c in computed}


def _cli_actor() -> str:
    from takt.cli.privacy import _actor

    return _actor()


def _write_records(records: list[dict[str, Any]], columns: list[str], fmt: str, output: str | None) -> None:
    """An audience export: text (tab-separated with a header), csv, jsonl or parquet."""
    from takt.campaigns.audience import flat

    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        flats = [flat(r) for r in records]
        table = pa.table({c: pa.array([r.get(c) for r in flats]) for c in columns}) if flats else pa.table(
            {c: pa.array([], pa.string()) for c in columns})
        pq.write_table(table, str(output))
        click.echo(f"{len(records)} members → {output}", err=True)
        return
    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "jsonl":
            out.writelines(orjson.dumps({c: r.get(c) for c in columns}).decode() + "\n" for r in records)
        else:
            w = csv.writer(out, lineterminator="\n", delimiter="," if fmt == "csv" else "\t")
            w.writerow(columns)
            for r in records:
                f = flat(r)
                w.writerow(["" if f.get(c) is None else f.get(c) for c in columns])
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"{len(records)} members → {output}", err=True)
