"""``takt campaign launch|pause|resume|stop|status`` on a workspace no server holds: the lifecycle events go to
the log (the worker's orchestrator follows it), status folds the log; errors are one clear line."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from takt.cli.campaign_run import register
from takt.cli.main import main


@click.group()
def campaign() -> None:
    """The group cli/campaign.py owns (stand-in)."""


register(campaign)


def test_lifecycle_through_the_cli_on_a_workspace(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(main, ["init", ws]).exit_code == 0

    def run(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(campaign, list(args), catch_exceptions=False)
        return r.exit_code, r.output

    code, out = run("status", "spring", "-w", ws)
    assert code != 0 and "never launched" in out
    code, out = run("launch", "spring", "-w", ws)
    assert code != 0 and "--version" in out
    code, out = run("launch", "spring", "-w", ws, "--version", "2")
    assert code == 0 and "spring v2: running" in out, out
    assert "spring v2: paused" in run("pause", "spring", "-w", ws)[1]
    code, out = run("pause", "spring", "-w", ws)
    assert code != 0 and "cannot pause" in out
    assert "running" in run("resume", "spring", "-w", ws)[1]
    assert "stopped" in run("stop", "spring", "-w", ws)[1]
    code, out = run("status", "spring", "-w", ws, "--json")
    assert code == 0 and '"status": "stopped"' in out
