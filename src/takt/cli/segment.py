"""``takt segment``: count, explain and compile a segment definition on a workspace."""

from __future__ import annotations

import time
from pathlib import Path

import click

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.events.model import parse_time
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.projections.runner import ProfileRunner
from takt.projections.tables import materialize_duckdb, profile_tables
from takt.segments import Vocabulary, explain, parse, to_sql
from takt.storage.duckdb import DuckDBStorage

DIALECTS = ("duckdb", "postgres", "spark")


@click.group("segment")
def command() -> None:
    """Who is in a segment: count, explain, SQL."""


def _now(at: str | None):  # type: ignore[no-untyped-def]
    return parse_time(at) if at else system_clock()


@command.command("explain")
@click.argument("definition")
@click.option("--dialect", type=click.Choice(DIALECTS), default=None, help="Also print the SQL for a dialect.")
@click.option("--at", default=None, help="Evaluate windows as of this ISO time (default: now).")
@handle_errors
def explain_cmd(definition: str, dialect: str | None, at: str | None) -> None:
    """Say DEFINITION in plain English (and its SQL)."""
    node = parse(definition)
    click.echo(explain(node))
    for d in ([dialect] if dialect else DIALECTS):
        click.echo(f"\n-- {d}")
        click.echo(to_sql(node, now=_now(at), dialect_name=d))


def workspace_vocabulary(storage: DuckDBStorage, states: list[ProfileState]) -> Vocabulary:
    """The names actually seen in the workspace, for "did you mean" in definitions."""
    events = storage.con.cursor().execute(
        "SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT 10000").fetchall()
    return Vocabulary(
        traits=frozenset(n for s in states for n in s.traits),
        events=frozenset(str(e[0]) for e in events),
        interests=frozenset(k for s in states for k in s.interests),
        touchpoints=frozenset(c for s in states for c in s.touchpoints),
    )


@command.command("count")
@workspace_option
@click.argument("definition")
@click.option("--at", default=None, help="Evaluate windows as of this ISO time (default: now).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the compiled SQL runs. spark: the workspace is exported as Parquet and counted by "
                   "Spark SQL (local mode, or --spark-master).")
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL for --engine spark.")
@handle_errors
def count_cmd(workspace: str, definition: str, at: str | None, engine: str, spark_master: str) -> None:
    """How many profiles match DEFINITION (compiled to SQL and run on the workspace's DuckDB, or on Spark)."""
    ws = ws_mod.open_workspace(workspace)
    config = ProfileConfig.from_settings(ws.settings)
    with ws.open_storage() as storage:
        if not isinstance(storage, DuckDBStorage):
            raise click.UsageError("segment count runs on DuckDB workspaces for now")
        runner = ProfileRunner(storage, config, system_clock)
        runner.load()
        runner.catch_up()
        with runner.lock:
            states = [runner.projector.profile(pid) for pid in runner.profile_ids()]
        node = parse(definition, vocabulary=workspace_vocabulary(storage, [s for s in states if s]))
        materialize_duckdb(storage.con, profile_tables([s for s in states if s is not None], config))
        now = _now(at)
        if engine == "spark":
            import tempfile

            from takt.projections.export import export_parquet
            from takt.segments.spark import register_parquet, spark_members, spark_session

            with tempfile.TemporaryDirectory(prefix="takt-spark-") as tmp:
                export_parquet(storage, runner, config, Path(tmp))
                session = spark_session(spark_master)
                register_parquet(session, Path(tmp))
                started = time.perf_counter()
                n = len(spark_members(session, to_sql(node, now=now, dialect_name="spark", pretty=False)))
                elapsed = time.perf_counter() - started
        else:
            sql = to_sql(node, now=now, dialect_name="duckdb", pretty=False)
            started = time.perf_counter()
            row = storage.con.execute(f"SELECT count(*) FROM ({sql})").fetchone()  # compiled by sqlglot
            elapsed = time.perf_counter() - started
            n = int(row[0]) if row else 0
    click.echo(f"{n} profiles match ({engine}, {elapsed * 1000:.1f} ms): {explain(node)}")
