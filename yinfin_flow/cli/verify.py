"""``yinfin-flow verify``: recompute what the database maintains and compare.

Runs every check listed in :mod:`yinfin_flow.verify` (budget and ledger). Prints each problem naming the line (or other subject) and exits 1
when there is any; prints a short "ok" summary and exits 0 otherwise.
"""

from __future__ import annotations

import click
from sqlalchemy import func, select

from yinfin_flow import verify as checks
from yinfin_flow.db.models import BudgetEntry, BudgetLine, Reservation

from .common import handle_errors, unit_of_work


@click.command("verify")
@handle_errors
def command() -> None:
    """Check balances against entries, reservations, hard control (and every registered check)."""
    with unit_of_work(readonly=True) as session:
        problems = checks.verify(session)
        counts = {
            "lines": session.scalar(select(func.count()).select_from(BudgetLine)),
            "entries": session.scalar(select(func.count()).select_from(BudgetEntry)),
            "reservations": session.scalar(select(func.count()).select_from(Reservation)),
        }
    names = ", ".join(c.__name__ for c in checks.all_checks())
    if problems:
        for p in problems:
            click.echo(str(p))
        click.echo(f"{len(problems)} problem(s) found (checks: {names})", err=True)
        raise SystemExit(1)
    click.echo(
        f"ok: {counts['lines']} line(s), {counts['entries']} budget entries, "
        f"{counts['reservations']} reservation(s) checked ({names})"
    )
