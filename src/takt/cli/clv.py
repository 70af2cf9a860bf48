"""``takt clv``: customer lifetime value from a transaction file (see docs/clv.md)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from takt import workspace as ws_mod
from takt.cli.main import handle_errors, workspace_option
from takt.clock import system_clock
from takt.errors import TaktError
from takt.models.clv.fit import ClvFit, fit_transactions
from takt.models.transactions import TIME_UNITS, parse_day, read_transactions


@click.group("clv")
def command() -> None:
    """Customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma models."""


@command.command("fit")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@workspace_option
@click.option("--save", is_flag=True,
              help="Without FILE: store each profile's expected purchases, P(alive) and CLV (shown on profiles).")
@click.option("--customer-col", default=None, help="Column with the customer id.")
@click.option("--date-col", default=None, help="Column with the transaction date (ISO 8601, YYYYMMDD, …).")
@click.option("--date-format", default=None, metavar="FORMAT",
              help="strftime format of the dates, e.g. %d/%m/%Y (default: detected).")
@click.option("--amount-col", default=None, help="Column with the transaction amount (not negative).")
@click.option("--calibration-end", default=None, metavar="YYYY-MM-DD",
              help="Last day of the calibration period; later transactions are not used to fit "
                   "(without FILE: default today).")
@click.option("--time-unit", type=click.Choice(list(TIME_UNITS)), default="weeks", show_default=True,
              help="Unit of recency, age and the rate parameters.")
@click.option("--horizon-weeks", type=float, default=52.0, show_default=True,
              help="Horizon of expected purchases and CLV, in weeks.")
@click.option("--discount-rate", type=float, default=0.0, show_default=True,
              help="Annual discount rate for CLV, e.g. 0.1 for 10 %.")
@click.option("--top", type=int, default=10, show_default=True, help="Customers to print in text mode.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write every customer to this file (.csv, .parquet or .json).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every customer.")
@click.option("--sep", default="auto", show_default=True,
              help="Delimiter of a text file: a character, 'whitespace', or 'auto'.")
@click.option("--no-header", is_flag=True,
              help="The text file has no header row; name columns by position from 1 (e.g. --date-col 3).")
@handle_errors
def fit(file: str | None, workspace: str, save: bool, customer_col: str | None, date_col: str | None,
        date_format: str | None, amount_col: str | None,
        calibration_end: str | None, time_unit: str, horizon_weeks: float, discount_rate: float, top: int,
        output: str | None, as_json: bool, sep: str, no_header: bool) -> None:
    """Fit the models on the transactions in FILE (CSV or Parquet) and value every customer.

    Without FILE, fit on the workspace's orders ("Order Completed" and imported orders), one customer per
    profile; --save stores the values so that profiles show them.

    Prints the parameters, log-likelihoods and, per customer, expected purchases over the horizon,
    the probability of being alive and the CLV.
    """
    if top < 0:
        raise TaktError(f"--top must not be negative, got {top}", code="usage")
    if file is None:
        given = [k for k, v in (("--customer-col", customer_col), ("--date-col", date_col),
                                ("--amount-col", amount_col), ("--date-format", date_format)) if v]
        if given:
            raise TaktError(f"{', '.join(given)} only apply to a FILE; the workspace's orders need none",
                            code="usage")
        result, saved = _fit_workspace(workspace, calibration_end, time_unit, horizon_weeks, discount_rate,
                                       save, quiet=as_json)
        _report(result, output, as_json, top, saved)
        return
    if save:
        raise TaktError("--save stores CLV on profiles: use it without FILE (on the workspace's orders)",
                        code="usage")
    need = {"--customer-col": customer_col, "--date-col": date_col, "--amount-col": amount_col,
            "--calibration-end": calibration_end}
    missing = [k for k, v in need.items() if not v]
    if missing:
        raise TaktError(f"missing option{'s' if len(missing) > 1 else ''}: {', '.join(missing)}", code="usage")
    assert customer_col and date_col and amount_col and calibration_end
    end = parse_day(calibration_end, "--calibration-end")
    df = read_transactions(file, sep=sep, header=not no_header)
    result = fit_transactions(df, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                              calibration_end=end, time_unit=time_unit, horizon_weeks=horizon_weeks,
                              discount_rate=discount_rate, date_format=date_format)
    _report(result, output, as_json, top, None)


def _report(result: ClvFit, output: str | None, as_json: bool, top: int, saved: int | None) -> None:
    if output:
        _write(result, Path(output))
    if as_json:
        extra = {"saved_fit_id": saved} if saved is not None else {}
        click.echo(json.dumps({**result.to_json(), "warnings": _warnings(result), **extra}))
        return
    click.echo(render(result, top))
    if output:
        click.echo(f"wrote {len(result.customers)} customers to {output}")
    if saved is not None:
        click.echo(f"saved CLV of {len(result.customers)} profiles (fit {saved}); profiles show it under \"clv\"")


def _fit_workspace(workspace: str, calibration_end: str | None, time_unit: str, horizon_weeks: float,
                   discount_rate: float, save: bool, quiet: bool) -> tuple[ClvFit, int | None]:
    """Fit on the workspace's orders (bringing the profile projection up to date first); optionally save."""
    from takt.models.clv.store import save_fit
    from takt.models.clv.workspace import workspace_orders
    from takt.profiles.config import ProfileConfig
    from takt.projections.runner import ProfileRunner

    now = system_clock()
    end = parse_day(calibration_end, "--calibration-end") if calibration_end else now.date()
    try:
        ws = ws_mod.open_workspace(workspace)
    except TaktError as e:
        raise TaktError(f"takt clv fit needs a transaction FILE (CSV or Parquet), or a workspace whose orders to "
                        f"fit: {e.message}", code="usage") from None
    console = Console(file=sys.stderr)
    with ws.open_storage() as storage:
        total = storage.log.count()
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), system_clock)
        runner.load()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True, disable=quiet) as bar:
            task = bar.add_task("profiles", total=max(total - runner.position, 0))
            runner.catch_up(progress=lambda k: bar.advance(task, k))
            scan = bar.add_task("orders", total=total)
            orders = workspace_orders(runner, progress=lambda k: bar.advance(scan, k))
        if orders.empty:
            raise TaktError("the workspace holds no orders (\"Order Completed\" events or imported orders) to fit "
                            "on", code="no_orders")
        result = _fit_orders(orders, end, time_unit, horizon_weeks, discount_rate)
        saved = save_fit(storage, result, now) if save else None
    return result, saved


def _fit_orders(orders: pd.DataFrame, end: date, time_unit: str, horizon_weeks: float,
                discount_rate: float) -> ClvFit:
    return fit_transactions(orders, customer_col="customer_id", date_col="date", amount_col="amount",
                            calibration_end=end, time_unit=time_unit, horizon_weeks=horizon_weeks,
                            discount_rate=discount_rate)


@command.command("score")
@workspace_option
@click.option("--calibration-end", default=None, metavar="YYYY-MM-DD",
              help="Last day of the orders used (default: today).")
@click.option("--time-unit", type=click.Choice(list(TIME_UNITS)), default="weeks", show_default=True)
@click.option("--horizon-weeks", type=float, default=52.0, show_default=True,
              help="Horizon of expected purchases and CLV, in weeks.")
@click.option("--discount-rate", type=float, default=0.0, show_default=True,
              help="Annual discount rate for CLV, e.g. 0.1 for 10 %.")
@click.option("--json", "as_json", is_flag=True, help="Print the fit's summary as JSON (no customers).")
@handle_errors
def score(workspace: str, calibration_end: str | None, time_unit: str, horizon_weeks: float,
          discount_rate: float, as_json: bool) -> None:
    """Fit on the workspace's orders and store every profile's expected purchases, P(alive) and CLV
    (the same as `takt clv fit --save`, printing only a summary)."""
    result, saved = _fit_workspace(workspace, calibration_end, time_unit, horizon_weeks, discount_rate, True,
                                   quiet=as_json)
    if as_json:
        summary = {k: v for k, v in result.to_json().items() if k != "customers"}
        click.echo(json.dumps({**summary, "warnings": _warnings(result), "saved_fit_id": saved}))
        return
    click.echo(render(result, 0))
    click.echo(f"saved CLV of {len(result.customers)} profiles (fit {saved}); profiles show it under \"clv\"")


def _write(result: ClvFit, path: Path) -> None:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            result.customers.to_parquet(path, index=False)
        elif suffix == ".json":
            path.write_text(json.dumps(result.to_json()), encoding="utf-8")
        else:
            result.customers.to_csv(path, index=False)
    except OSError as e:
        raise TaktError(f"cannot write {str(path)!r}: {e.strerror or e}", code="io_error") from None


def _warnings(result: ClvFit) -> list[str]:
    out = []
    for name, converged in (("BG/NBD", result.bg_nbd.converged), ("Pareto/NBD", result.pareto_nbd.converged),
                            ("Gamma-Gamma", result.gamma_gamma.converged)):
        if not converged:
            out.append(f"{name}: a parameter reached the search bound; the estimate is unreliable")
    return out


def render(result: ClvFit, top: int) -> str:
    """The text report: parameters, log-likelihoods and the ``top`` customers by CLV."""
    bg, pn, gg = result.bg_nbd, result.pareto_nbd, result.gamma_gamma
    c = result.customers
    disc = f"discounted at {result.discount_rate:.1%} a year" if result.discount_rate else "undiscounted"
    lines = [
        f"{len(c)} customers ({int((c['frequency'] > 0).sum())} with repeat purchases); calibration period "
        f"to {result.calibration_end.isoformat()}; time unit: {result.time_unit}",
        "",
        f"BG/NBD       r={bg.r:.4f}  alpha={bg.alpha:.4f}  a={bg.a:.4f}  b={bg.b:.4f}  "
        f"log-likelihood {bg.log_likelihood:.2f}",
        f"Pareto/NBD   r={pn.r:.4f}  alpha={pn.alpha:.4f}  s={pn.s:.4f}  beta={pn.beta:.4f}  "
        f"log-likelihood {pn.log_likelihood:.2f}",
        f"Gamma-Gamma  p={gg.p:.4f}  q={gg.q:.4f}  v={gg.v:.4f}  log-likelihood {gg.log_likelihood:.2f} "
        f"({gg.n_customers} customers)",
    ]
    lines += [f"warning: {w}" for w in _warnings(result)]
    if top:
        lines += [
            "",
            f"Top {min(top, len(c))} customers by CLV over {result.horizon_weeks:g} weeks "
            f"(BG/NBD × Gamma-Gamma, {disc}; Pareto/NBD alongside):",
            f"{'customer':<16} {'x':>4} {'t_x':>8} {'T':>8} {'E[purch]':>9} {'P(alive)':>8} {'E[spend]':>9} "
            f"{'CLV':>10} | {'E[purch]':>9} {'P(alive)':>8} {'CLV':>10}",
        ]
        for row in c.head(top).itertuples(index=False):
            lines.append(
                f"{str(row.customer_id)[:16]:<16} {row.frequency:>4d} {row.recency:>8.2f} {row.T:>8.2f} "
                f"{row.expected_purchases:>9.3f} {row.p_alive:>8.3f} {row.expected_spend:>9.2f} {row.clv:>10.2f}"
                f" | {row.pareto_nbd_expected_purchases:>9.3f} {row.pareto_nbd_p_alive:>8.3f} "
                f"{row.pareto_nbd_clv:>10.2f}"
            )
    return "\n".join(lines)
