"""``yinfin-flow budget adjust | transfer | import | proposals …``: budget journals, four eyes.

While ``YINFIN_BUDGET_JOURNAL_APPROVAL=required`` (the default) ``adjust``, ``transfer``
and ``import`` only propose; another finance user approves with ``budget proposals
approve ID`` (or the API). With ``off`` they book at once. Either way ``--actor`` must be
an active person of the directory holding the ``finance`` role, and is recorded as
``cli:<actor>``; the proposer can never approve or reject their own proposal.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget import io
from yinfin_flow.budget import journal_proposals as jp
from yinfin_flow.budget.io_tables import read_table
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetBalance

from .common import (
    actor_option,
    cli_actor,
    directory_actor,
    find_line,
    handle_errors,
    money,
    settings,
    unit_of_work,
)
from .output import Col, emit, format_option, working


def _required() -> bool:
    return settings().budget_journal_approval == jp.REQUIRED


def _budget_of(session: Session, line_id: int) -> Decimal:
    # Read the column, not the ORM object: the service updates balances with SQL.
    value = session.scalar(select(BudgetBalance.budget).where(BudgetBalance.line_id == line_id))
    return value if value is not None else Decimal(0)


def _proposed(p: Any, who: str) -> str:
    return (f"budget journal proposal {p.id} ({p.kind}) proposed by {who}; it is booked when another "
            f"finance user approves it: yinfin-flow budget proposals approve {p.id}")


@click.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("line")
@click.argument("amount")
@click.option("--reason", required=True, help="Why (recorded on the budget journal).")
@click.option("--original", is_flag=True, help="Book as the original budget rather than an adjustment.")
@actor_option
@handle_errors
def adjust(line: str, amount: str, reason: str, original: bool, actor: str) -> None:
    """Add AMOUNT to LINE's budget (negative to cut), e.g. `budget adjust ACME/2026-01/RD/TRAVEL -500`."""
    mode = settings().default_control_mode
    kind = "original" if original else "adjustment"
    with unit_of_work() as session:
        who = cli_actor(session, actor)
        ln = find_line(session, line)
        old = _budget_of(session, ln.id)
        if _required():
            p = jp.propose_adjustment(session, ln.id, amount, actor=who, reason=reason, kind=kind,
                                      default_mode=mode)
            new = old + Decimal(p.payload["amount"])
            click.echo(f"{ln.code}: budget {money(old, ln.currency)} -> {money(new, ln.currency)} "
                       f"{ln.currency} when approved")
            click.echo(_proposed(p, who))
            return
        Budgets(session, default_mode=mode).adjust(None, ln.id, amount, actor=who, reason=reason, kind=kind)
        new = _budget_of(session, ln.id)
    click.echo(f"{ln.code}: budget {money(old, ln.currency)} -> {money(new, ln.currency)} {ln.currency}")


@click.command("transfer")
@click.argument("from_line")
@click.argument("to_line")
@click.argument("amount")
@click.option("--reason", required=True)
@actor_option
@handle_errors
def transfer(from_line: str, to_line: str, amount: str, reason: str, actor: str) -> None:
    """Move AMOUNT of budget from FROM_LINE to TO_LINE (same currency)."""
    mode = settings().default_control_mode
    with unit_of_work() as session:
        who = cli_actor(session, actor)
        src = find_line(session, from_line, "from_line")
        dst = find_line(session, to_line, "to_line")
        if _required():
            p = jp.propose_transfer(session, src.id, dst.id, amount, actor=who, reason=reason, default_mode=mode)
            click.echo(f"transfer of {amount} {src.currency} from {src.code} to {dst.code}: "
                       + _proposed(p, who))
            return
        Budgets(session, default_mode=mode).transfer(None, src.id, dst.id, amount, actor=who, reason=reason)
    click.echo(f"transferred {amount} {src.currency} from {src.code} to {dst.code}")


def _echo_plan(plan: io.ImportResult) -> None:
    for code in plan.created:
        click.echo(f"  created  {code}")
    for code, delta, currency in plan.adjusted:
        click.echo(f"  adjusted {code} by {'+' if delta > 0 else '-'}{money(abs(delta), currency)} {currency}")
    if plan.periods_created:
        click.echo(f"  periods set up: {', '.join(plan.periods_created)}")


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), help="Default: from the file name.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@click.option("--reason", help="Reason for rows that give none (default: budget import FILE).")
@actor_option
@handle_errors
def import_(file: Path, fmt: str | None, dry_run: bool, reason: str | None, actor: str) -> None:
    """Load budgets from FILE (.csv or .xlsx); every bad row is reported, nothing half-imported.

    Columns: company, period, cost_centre, item, amount; optional project, parent,
    currency, owner, reason, code. A row sets the line's budget: a new line gets an
    `original` journal, an existing line an `adjustment` of the difference. The file is
    one proposal that another finance user approves (unless approval is off).
    """
    mode = settings().default_control_mode
    header, rows = read_table(file, fmt, settings().limits)
    with unit_of_work() as session, working(f"importing {len(rows)} row(s) from {file.name}"):
        if dry_run:  # shows, books nothing: anyone may look
            who = f"cli:{directory_actor(session, actor)}"
            plan = jp.rehearse(session, lambda: io.import_rows(
                session, header, rows, source=file.name, actor=who, default_mode=mode, reason=reason))
            _echo_plan(plan)
            click.echo(f"dry run, nothing written: would have {plan.summary()} from {file.name}")
            return
        who = cli_actor(session, actor)
        if _required():
            p = jp.propose_import(session, header, rows, source=file.name, actor=who, reason=reason,
                                  default_mode=mode)
            plan = io.ImportResult(p.base["plan"]["created"],
                                   [(a["line"], Decimal(a["delta"]), a["currency"])
                                    for a in p.base["plan"]["adjusted"]],
                                   p.base["plan"]["unchanged"], p.base["plan"]["periods_created"])
            _echo_plan(plan)
            click.echo(f"when approved: {plan.summary()} from {file.name}")
            click.echo(_proposed(p, who))
            return
        plan = io.import_rows(session, header, rows, source=file.name, actor=who, default_mode=mode,
                              reason=reason)
    _echo_plan(plan)
    click.echo(f"{plan.summary()} from {file.name}")


@click.group("proposals")
def proposals() -> None:
    """Budget journal proposals: the reviewers' queue, approve, reject, withdraw."""


def _describe(d: dict[str, Any]) -> str:
    if d["kind"] == "import":
        plan = d["plan"]
        return (f"{d['source']}: {len(plan['created'])} created, {len(plan['adjusted'])} adjusted, "
                f"{plan['unchanged']} unchanged")
    return "; ".join(f"{c['line']} {money(Decimal(c['budget_before']), c['currency'])} -> "
                     f"{money(Decimal(c['budget_after']), c['currency'])}" for c in d["changes"])


@proposals.command("list")
@click.option("--status", type=click.Choice(list(jp.STATUSES)), help="pending: what waits for a reviewer.")
@format_option
@handle_errors
def list_(status: str | None, fmt: str) -> None:
    """Proposals, newest first."""
    with unit_of_work(readonly=True) as session:
        _, items = jp.list_proposals(session, status=status, page_size=200)
    emit([{**d, "change": _describe(d)} for d in items],
         [Col("id", right=True), Col("kind"), Col("status"), Col("proposed_by", "proposed by"),
          Col("decided_by", "decided by", shown=lambda v, r: v or "-"), Col("change"), Col("reason")], fmt)


def _decide(action: str, proposal_id: int, actor: str, comment: str | None) -> None:
    with unit_of_work() as session:
        who = cli_actor(session, actor)
        kw: dict[str, Any] = {"comment": comment}
        if action == "approve":
            kw["default_mode"] = settings().default_control_mode
        getattr(jp, action)(session, proposal_id, actor=who, **kw)
        d = jp.get_proposal(session, proposal_id)
    click.echo(f"proposal {proposal_id} ({d['kind']}): {d['status']} by {who}; {_describe(d)}")


@proposals.command("approve")
@click.argument("proposal_id", type=int)
@click.option("--comment")
@actor_option
@handle_errors
def approve(proposal_id: int, comment: str | None, actor: str) -> None:
    """Book proposal PROPOSAL_ID (not yours; refused if a budget changed since)."""
    _decide("approve", proposal_id, actor, comment)


@proposals.command("reject")
@click.argument("proposal_id", type=int)
@click.option("--comment", required=True, help="Why it is refused.")
@actor_option
@handle_errors
def reject(proposal_id: int, comment: str, actor: str) -> None:
    """Refuse proposal PROPOSAL_ID (not yours: withdraw your own)."""
    _decide("reject", proposal_id, actor, comment)


@proposals.command("withdraw")
@click.argument("proposal_id", type=int)
@click.option("--comment")
@actor_option
@handle_errors
def withdraw(proposal_id: int, comment: str | None, actor: str) -> None:
    """Take back your own proposal PROPOSAL_ID."""
    _decide("withdraw", proposal_id, actor, comment)


COMMANDS = [import_, adjust, transfer, proposals]
