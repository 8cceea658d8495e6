"""``yinfin-flow rates import FILE``: exchange rates finance loads (see ``budget.io_rates``)."""

from __future__ import annotations

from pathlib import Path

import click

from yinfin_flow.budget.io_rates import import_rates

from .common import handle_errors, settings, unit_of_work
from .output import working


@click.group("rates")
def command() -> None:
    """Exchange rates used to convert requests into a budget line's currency."""


@command.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), help="Default: from the file name.")
@handle_errors
def import_(file: Path, fmt: str | None) -> None:
    """Load rates from FILE: from_currency,to_currency,date,rate (all rows or none)."""
    with unit_of_work() as session, working(f"importing rates from {file.name}"):
        result = import_rates(session, file, fmt=fmt, limits=settings().limits)
    click.echo(f"{result.summary()} from {file.name}")
