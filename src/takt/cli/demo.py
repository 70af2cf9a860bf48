"""``takt demo``: a realistic travel-and-outdoor retailer's data, fed through the real ingestion path."""

from __future__ import annotations

import click


@click.command("demo")
def command() -> None:
    """Build and serve a demo workspace (work in progress)."""
    raise click.ClickException("takt demo is not ready yet")
