"""``yinfin-flow verify``: recompute what the database maintains and compare.

Runs every check listed in :mod:`yinfin_flow.verify` (budget and ledger). Prints each
problem naming the line (or other subject) and exits 3 (differences found) when there is
any; prints a short "ok" summary and exits 0 otherwise. A check that cannot run (no
database, no tables) is an error: exit 1.
"""

from __future__ import annotations

import click
from sqlalchemy import func, select

from yinfin_flow import verify as checks
from yinfin_flow.db.models import BudgetEntry, BudgetLine, Reservation

from .common import handle_errors, unit_of_work
from .output import DIFFERENCES, Col, emit, format_option, progress


@click.command("verify")
@format_option
@handle_errors
def command(fmt: str) -> None:
    """Check balances against entries, reservations, hard control (and every registered check).

    Table: one problem per line, or an ok summary; JSON and CSV: the problems (check,
    subject, message), the summary on standard error. Exits 3 when a problem is found."""
    run = checks.all_checks()
    problems = []
    with unit_of_work(readonly=True) as session:
        for check in progress(run, "verifying", length=len(run)):
            problems.extend(check(session))
        counts = {
            "lines": session.scalar(select(func.count()).select_from(BudgetLine)),
            "entries": session.scalar(select(func.count()).select_from(BudgetEntry)),
            "reservations": session.scalar(select(func.count()).select_from(Reservation)),
        }
    names = ", ".join(c.__name__ for c in run)
    if fmt != "table":
        emit([{"check": p.check, "subject": p.subject, "message": p.message} for p in problems],
             [Col("check"), Col("subject"), Col("message")], fmt)
    else:
        for p in problems:
            click.echo(str(p))
    if problems:
        click.echo(f"{len(problems)} problem(s) found (checks: {names})", err=True)
        raise SystemExit(DIFFERENCES)
    click.echo(
        f"ok: {counts['lines']} line(s), {counts['entries']} budget entries, "
        f"{counts['reservations']} reservation(s) checked ({names})", err=fmt != "table",
    )
