"""``takt models``: train, list, score and monitor the factory's models on a workspace (see docs/models.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from takt import workspace as ws_mod
from takt.cli.main import at_or_now, handle_errors, server_options, workspace_option
from takt.clock import system_clock
from takt.errors import TaktError
from takt.models import factory as F
from takt.models import scoring
from takt.models.registry import ModelRecord
from takt.models.targets import Target, parse_horizon, select

_STAGES = {"features": "features and labels", "training": "training", "scoring": "scoring",
           "monitoring": "monitoring"}


@click.group("models")
def command() -> None:
    """The model factory: one LightGBM model per target, validated, compared with a baseline, registered."""


@contextmanager
def _progress(quiet: bool) -> Iterator[F.Progress]:
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        yield report


def _connection(ws: ws_mod.Workspace, storage: Any, quiet: bool = False) -> Any:
    """The workspace's DuckDB connection with profiles up to date and the log flattened (with a spinner)."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return F.workspace_connection(storage, ws.settings, system_clock)
    with console.status("bringing profiles up to date and reading the log …"):
        return F.workspace_connection(storage, ws.settings, system_clock)


def _fmt(v: Any, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def leaderboard(records: list[ModelRecord]) -> str:
    """Accepted models first, best gain over the baseline first; then rejected and failed ones."""
    order = {"accepted": 0, "rejected": 1, "failed": 2}

    def gain(r: ModelRecord) -> float:
        a, b = r.metrics.get("auc"), r.baseline.get("auc")
        return (a or 0.0) - (b or 0.0) if a is not None else -9.0

    rows = sorted(records, key=lambda r: (order.get(r.status, 3), -gain(r), r.model))
    width = max([len("model")] + [len(r.model) for r in rows])
    head = (f"{'model':<{width}}  {'v':>3}  {'status':<8}  {'AUC':>5}  {'base':>5}  {'PR-AUC':>6}  {'lift10':>6}  "
            f"{'calib':>5}  {'pos':>5}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        m, b = r.metrics, r.baseline
        pos = m.get("positives")
        lines.append(
            f"{r.model:<{width}}  {r.version:>3}  {r.status:<8}  {_fmt(m.get('auc'))}  {_fmt(b.get('auc'))}  "
            f"{_fmt(m.get('pr_auc')):>6}  {_fmt(m.get('lift_10'), 2):>6}  {_fmt(m.get('calibration_error')):>5}  "
            f"{'—' if pos is None else pos:>5}  {r.reason or ''}")
    acc = sum(r.status == "accepted" for r in rows)
    rej = sum(r.status == "rejected" for r in rows)
    fail = sum(r.status == "failed" for r in rows)
    lines.append(f"\n{acc} accepted, {rej} rejected, {fail} failed (AUC, PR-AUC, lift at 10 %, calibration "
                 "error on the validation period; base = the baseline's AUC)")
    return "\n".join(lines)


def _targets(con: Any, now: datetime, cfg: F.FactoryConfig, names: tuple[str, ...], all_: bool) -> list[Target]:
    found = F.all_targets(con, now, cfg)
    if not found:
        raise TaktError("no targets: no orders, messages or declared targets in the data before the training "
                        "cutoff", code="not_enough_data")
    if all_ or not names:
        return found
    wanted = [n.strip() for item in names for n in item.split(",") if n.strip()]
    return select(found, wanted)


def _config(ws: ws_mod.Workspace, horizon: str | None) -> F.FactoryConfig:
    return F.FactoryConfig.from_settings(ws.settings, horizon_days=parse_horizon(horizon) if horizon else None)


def run_training(ws: ws_mod.Workspace, storage: Any, con: Any, targets: list[Target], now: datetime,
                 cfg: F.FactoryConfig, engine: str, spark_master: str, quiet: bool) -> list[ModelRecord]:
    registry = scoring.registry_of(storage)
    with _progress(quiet) as report:
        data = F.build_data(con, targets, now, cfg, report)
        return F.train(data, registry, cfg, created_at=now, engine=engine, spark_master=spark_master,
                       progress=report)


@command.command("targets")
@workspace_option
@click.option("--horizon", default=None, metavar="DAYS", help="Horizon, e.g. 30d or 4w (setting models.horizon_days).")
@click.option("--at", default=None, help="Now, as an ISO time (default: the clock).")
@handle_errors
def targets_cmd(workspace: str, horizon: str | None, at: str | None) -> None:
    """List the targets discovered in the data and declared in settings."""
    ws = ws_mod.open_workspace(workspace)
    cfg = _config(ws, horizon)
    with ws.open_storage() as storage:
        con = _connection(ws, storage)
        for t in F.all_targets(con, at_or_now(at), cfg):
            click.echo(f"{t.name:<48} {t.describe()}")


@command.command("train")
@workspace_option
@click.option("--targets", "names", multiple=True, metavar="NAMES",
              help="Targets to train (comma-separated; a trailing * matches a prefix). Default: all.")
@click.option("--all", "all_", is_flag=True, help="Train every discovered and declared target.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: LightGBM in this process; spark: one target per Spark task (needs takt[spark]).")
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL for --engine spark.")
@click.option("--horizon", default=None, metavar="DAYS", help="Horizon, e.g. 30d or 4w (setting models.horizon_days).")
@click.option("--at", default=None, help="Now, as an ISO time (default: the clock).")
@click.option("--json", "as_json", is_flag=True, help="Print the registered entries as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def train_cmd(workspace: str, names: tuple[str, ...], all_: bool, engine: str, spark_master: str,
              horizon: str | None, at: str | None, as_json: bool, quiet: bool) -> None:
    """Train one model per target, validate it on a later period, reject it unless it beats its baseline,
    and register it."""
    if all_ and names:
        raise TaktError("use either --all or --targets, not both", code="usage")
    ws = ws_mod.open_workspace(workspace)
    cfg = _config(ws, horizon)
    now = at_or_now(at)
    with ws.open_storage() as storage:
        con = _connection(ws, storage, quiet)
        targets = _targets(con, now, cfg, names, all_)
        records = run_training(ws, storage, con, targets, now, cfg, engine, spark_master, quiet)
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
        return
    t1, t2 = F.cutoffs(now, cfg.horizon_days)
    click.echo(f"trained {len(records)} target{'s' if len(records) != 1 else ''} ({engine}): training cutoff "
               f"{t1:%Y-%m-%d}, validated on ({t2:%Y-%m-%d}, {now:%Y-%m-%d}], horizon {cfg.horizon_days} days\n")
    click.echo(leaderboard(records))
    if any(r.status == "accepted" for r in records):
        click.echo("\nnext: takt models score   (writes the scores segments read with score(\"…\"))")


@command.command("list")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all-versions", is_flag=True, help="Every version, not only the latest of each model.")
@handle_errors
def list_cmd(workspace: str, api: str | None, key: str | None, as_json: bool, all_versions: bool) -> None:
    """The leaderboard: the latest version of every model with its metrics against its baseline."""
    from types import SimpleNamespace

    from takt.api.models import model_listing
    from takt.cli.remote import server_api

    server = server_api(workspace, api, key)
    if server is not None:
        rows = server.get("/v1/models", all_versions=str(all_versions).lower())["models"]
    else:
        ws = ws_mod.open_workspace(workspace)
        with ws.open_storage() as storage:
            rows = model_listing(storage, all_versions)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no models yet: takt models train --all")
        return
    click.echo(leaderboard([SimpleNamespace(**r) for r in rows]))  # type: ignore[misc]


@command.command("score")
@workspace_option
@click.option("--models", "names", multiple=True, metavar="NAMES", help="Models to score (default: every active).")
@click.option("--at", default=None, help="Now, as an ISO time (default: the clock).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def score_cmd(workspace: str, names: tuple[str, ...], at: str | None, quiet: bool) -> None:
    """Score every profile with the active version of every accepted model (written to model_scores)."""
    ws = ws_mod.open_workspace(workspace)
    wanted = [n.strip() for item in names for n in item.split(",") if n.strip()] or None
    now = at_or_now(at)
    with ws.open_storage() as storage:
        registry = scoring.registry_of(storage)
        if wanted:
            known = {r.model for r in registry.active()}
            missing = [n for n in wanted if n not in known]
            if missing:
                raise TaktError(f"no accepted model {missing[0]!r} (`takt models list` shows them)",
                                code="not_found", status=404)
        con = _connection(ws, storage, quiet)
        with _progress(quiet) as report:
            results = F.score(con, registry, now, models=wanted, progress=report)
    if not results:
        click.echo("no accepted models to score: takt models train --all")
        return
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            click.echo(f"{r.model:<48} v{r.version:<3} failed: {r.error}")
        else:
            click.echo(f"{r.model:<48} v{r.version:<3} {r.profiles:>9,} profiles scored")
    click.echo(f"\nuse them in segments: score(\"{results[0].model}\") > 0.5")
    if failed:
        raise TaktError(f"{failed} model{'s' if failed > 1 else ''} could not be scored", code="partial_failure")


@command.command("monitor")
@workspace_option
@click.option("--at", default=None, help="Now, as an ISO time (default: the clock).")
@click.option("--retrain-drifted", is_flag=True, help="Train the drifted models' targets again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def monitor_cmd(workspace: str, at: str | None, retrain_drifted: bool, as_json: bool, quiet: bool) -> None:
    """Population stability of every active model's features and scores, training reference vs now."""
    ws = ws_mod.open_workspace(workspace)
    cfg = _config(ws, None)
    now = at_or_now(at)
    retrained: list[ModelRecord] = []
    with ws.open_storage() as storage:
        registry = scoring.registry_of(storage)
        con = _connection(ws, storage, quiet)
        with _progress(quiet) as report:
            reports = F.monitor(con, registry, now, cfg, report)
        drifted = [r for r in reports if r.drifted]
        if retrain_drifted and drifted:
            by_name = {r.model: Target.from_json(r.target) for r in registry.active()}
            targets = [by_name[d.model] for d in drifted if d.model in by_name]
            groups: dict[int, list[Target]] = {}
            for t in targets:
                groups.setdefault(t.horizon_days, []).append(t)
            for h, ts in groups.items():
                retrained += run_training(ws, storage, con, ts, now, F.FactoryConfig.from_settings(
                    ws.settings, horizon_days=h), "local", "", quiet)
    if as_json:
        click.echo(json.dumps({"models": [r.to_json() for r in reports],
                               "retrained": [r.summary() for r in retrained]}, indent=2))
        return
    if not reports:
        click.echo("no accepted models to monitor")
        return
    for r in reports:
        flag = "DRIFTED" if r.drifted else "stable "
        top = sorted(r.features.items(), key=lambda kv: -kv[1])[:1]
        worst = f"; worst feature {top[0][0]} PSI {top[0][1]:.3f}" if top else ""
        click.echo(f"{flag}  {r.model:<48} v{r.version:<3} score PSI {r.score_psi:.3f}{worst}"
                   + (f"  — {'; '.join(r.reasons)}" if r.reasons else ""))
    click.echo(f"\n{len(drifted)} of {len(reports)} models drifted")
    if retrained:
        click.echo("\nretrained:\n" + leaderboard(retrained))
    elif drifted and not retrain_drifted:
        click.echo("retrain them: takt models monitor --retrain-drifted")
