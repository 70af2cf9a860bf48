"""``takt analytics touchpoints|paths|attribution``: the reports of :mod:`takt.analytics` as tables, JSON, and
chart files (``--png``, ``--svg``: Vega-Lite rendered without network; ``--csv``: the main table). Through the
server's API when ``takt serve`` holds the workspace (or ``--api`` is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from takt.analytics import charts
from takt.analytics.request import ask_from
from takt.cli.main import handle_errors, server_options, workspace_option
from takt.cli.render import console, table
from takt.clock import system_clock


@click.group("analytics")
def command() -> None:
    """Touchpoint analytics: which touchpoints people use, paths to a goal, attribution; is the data fresh."""


def _options(fn: Any) -> Any:
    for opt in reversed([
        workspace_option, server_options,
        click.option("--segment", "-s", "segment", default=None,
                     help="A stored segment's NAME or a DEFINITION (default: everyone)."),
        click.option("--from", "start", default=None, help="Start of the period, ISO 8601 (default: 90 days ago)."),
        click.option("--to", "end", default=None, help="End of the period, exclusive, ISO 8601 (default: now)."),
        click.option("--goal", default=None, help="The track event that is a conversion (setting analytics.goal)."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
        click.option("--png", type=click.Path(dir_okay=False), default=None, help="Write the chart as PNG."),
        click.option("--svg", type=click.Path(dir_okay=False), default=None, help="Write the chart as SVG."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
                     help="Write the main table as CSV."),
    ]):
        fn = opt(fn)
    return fn


def _params(o: dict[str, Any]) -> dict[str, str | None]:
    segment = o.get("segment")
    from takt.segments.store import NAME_RE

    named = segment is not None and NAME_RE.fullmatch(segment) is not None
    p: dict[str, str | None] = {"segment": segment if named else None, "definition": None if named else segment,
                                "from": o.get("start"), "to": o.get("end"), "goal": o.get("goal")}
    for k in ("days", "length", "top", "trend", "half_life"):
        v = o.get(k)
        p[k] = None if v is None else str(v)
    return p


def _report(kind: str, workspace: str, api: str | None, key: str | None, params: dict[str, str | None]
            ) -> dict[str, Any]:
    from takt.cli.remote import server_api

    server = server_api(workspace, api, key)
    if server is not None:
        return server.get(f"/v1/analytics/{kind}", **params)  # type: ignore[no-any-return]
    ask = ask_from(kind, params, system_clock())
    from takt.analytics.config import AnalyticsConfig
    from takt.analytics.engine import SessionEngine
    from takt.analytics.request import run, scope_of
    from takt.cli.segment import _runner, _target, _workspace
    from takt.projections.tables import WorkspaceTables

    with _workspace(workspace) as (ws, storage):
        runner = _runner(ws, storage)
        WorkspaceTables(storage, runner, computed=[]).refresh()
        scope = scope_of(ask, storage, lambda d: _target(storage, runner, d, settings=ws.settings)[0])
        return run(ask, SessionEngine(storage), scope, AnalyticsConfig.from_settings(ws.settings))


def _write(kind: str, report: dict[str, Any], png: str | None, svg: str | None, csv_path: str | None) -> None:
    if png or svg:
        spec = charts.spec(kind, report)
        if png:
            Path(png).write_bytes(charts.png(spec))
            click.echo(f"wrote {png}", err=True)
        if svg:
            Path(svg).write_text(charts.svg(spec), encoding="utf-8")
            click.echo(f"wrote {svg}", err=True)
    if csv_path:
        Path(csv_path).write_text(charts.to_csv(kind, report), encoding="utf-8")
        click.echo(f"wrote {csv_path}", err=True)


def _fmt(v: Any) -> Any:
    return f"{v:.2f}" if isinstance(v, float) else v


def _show(kind: str, report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    s = report["scope"]
    out = console()
    head = f"{kind} · {s['segment']} · {s['from']} – {s['to']} · engine {report['engine']}"
    if kind == "touchpoints":
        head += f" · {report['people']} people, {report['events']} interactions"
    elif report.get("conversions") is not None:
        head += f" · {report['conversions']} conversions of {report['goal']}"
    out.print(head)
    cols, rows = charts.table_rows(kind, report)
    out.print(table(cols, [[_fmt(v) for v in r] for r in rows]))
    if kind == "attribution":
        for m, text in report["definitions"].items():
            out.print(f"  {m}: {text}")
    for note in report["notes"]:
        out.print(f"note: {note}")


def _common(kind: str, o: dict[str, Any]) -> None:
    report = _report(kind, o["workspace"], o.get("api"), o.get("key"), _params(o))
    _show(kind, report, o["as_json"])
    _write(kind, report, o.get("png"), o.get("svg"), o.get("csv_path"))


@command.command("touchpoints")
@_options
@click.option("--trend", type=click.Choice(["day", "week"]), default="day", show_default=True,
              help="The trend by day or by week.")
@handle_errors
def touchpoints_cmd(**o: Any) -> None:
    """Interactions and people by touchpoint × purpose, hour of the week, day or week; converters' mix."""
    _common("touchpoints", o)


@command.command("paths")
@_options
@click.option("--days", type=float, default=None, help="Days before a conversion (setting analytics.lookback_days).")
@click.option("--length", type=int, default=5, show_default=True, help="The last this many steps of a path.")
@click.option("--top", type=int, default=20, show_default=True, help="How many paths.")
@handle_errors
def paths_cmd(**o: Any) -> None:
    """The most frequent touchpoint sequences before a goal event."""
    _common("paths", o)


@command.command("attribution")
@_options
@click.option("--days", type=float, default=None, help="Days before a conversion (setting analytics.lookback_days).")
@click.option("--half-life", "half_life", default="7", show_default=True,
              help="Time-decay half-lives in days, comma-separated (e.g. 1,7,30).")
@handle_errors
def attribution_cmd(**o: Any) -> None:
    """Goal events attributed to touchpoints: first, last, linear, time-decay and Markov, side by side."""
    _common("attribution", o)


@command.command("fresh")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def fresh_cmd(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """Is the data fresh? Per source: time since its last event, lag, volume, status against its SLA."""
    from takt.cli.remote import server_api

    server = server_api(workspace, api, key)
    if server is not None:
        report = server.get("/v1/analytics/fresh")
    else:
        from takt.analytics.config import AnalyticsConfig
        from takt.analytics.engine import SessionEngine
        from takt.analytics.freshness import freshness
        from takt.cli.segment import _runner, _workspace
        from takt.projections.tables import WorkspaceTables

        with _workspace(workspace) as (ws, storage):
            runner = _runner(ws, storage)
            WorkspaceTables(storage, runner, computed=[]).refresh()
            report = freshness(SessionEngine(storage), system_clock(),
                               AnalyticsConfig.from_settings(ws.settings).source_sla_minutes)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    out = console()
    out.print(f"fresh? {report['status']} at {report['at']}")
    cols = ["source", "status", "last_received", "since_last_seconds", "lag_p50_seconds", "lag_p99_seconds",
            "recent", "usual", "sla_minutes"]
    out.print(table(cols, [[_fmt(r[c]) for c in cols] for r in report["sources"]]))
