"""``yinfin-flow budget …``: finance's budget commands.

Every command opens ``Settings.from_env().database_url`` and does its work in one
unit of work. A refusal (over budget, closed line, bad file…) prints the domain
error's code, message and details on stderr and exits 1, without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget import io, rule_changes, setup
from yinfin_flow.budget.io_report import LineReport, describe_rule, line_report, usage_percent
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetBalance, BudgetEntry, BudgetMovement
from yinfin_flow.domain.budget import Action, Mode
from yinfin_flow.domain.errors import ValidationError

from .common import (
    actor_option,
    default_rule,
    find_line,
    handle_errors,
    money,
    require_actor,
    settings,
    table,
    unit_of_work,
)

# Other command modules imported these helpers from here before they moved to .common.
__all__ = ["actor_option", "command", "handle_errors", "require_actor", "table", "unit_of_work"]


@click.group("budget")
def command() -> None:
    """Budgets: import/export, show, adjust, transfer, control rules, status."""


@command.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), help="Default: from the file name.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@actor_option
@handle_errors
def import_(file: Path, fmt: str | None, dry_run: bool, actor: str) -> None:
    """Load budgets from FILE (.csv or .xlsx); every bad row is reported, nothing half-imported.

    Columns: company, period, cost_centre, item, amount; optional project, parent,
    currency, owner, reason, code. A row sets the line's budget: a new line gets an
    `original` journal, an existing line an `adjustment` of the difference.
    """

    class _DryRun(Exception):
        pass

    result = None
    try:
        with unit_of_work() as session:
            result = io.import_budgets(session, file, actor=actor, fmt=fmt,
                                       default_mode=settings().default_control_mode,
                                       limits=settings().limits)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert result is not None
    prefix = "dry run, nothing written: would have " if dry_run else ""
    for code in result.created:
        click.echo(f"  created  {code}")
    for code, delta, currency in result.adjusted:
        click.echo(f"  adjusted {code} by {'+' if delta > 0 else '-'}{money(abs(delta), currency)} {currency}")
    if result.periods_created:
        click.echo(f"  periods set up: {', '.join(result.periods_created)}")
    click.echo(f"{prefix}{result.summary()} from {file.name}")


@command.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), help="Default: from the file name.")
@click.option("--company")
@click.option("--period", help="A period code, e.g. 2026-01.")
@click.option("--year", type=int, help="Every period of this fiscal year.")
@handle_errors
def export(output: Path, fmt: str | None, company: str | None, period: str | None, year: int | None) -> None:
    """Write lines with budget, pre_encumbered, encumbered, actual and available; importable back."""
    with unit_of_work(readonly=True) as session:
        n = io.export_budgets(session, output, fmt=fmt, company=company, period=period, year=year,
                              default_rule=default_rule())
    click.echo(f"{n} line(s) written to {output}")


@command.command("show")
@click.option("--company")
@click.option("--period", help="A period code, e.g. 2026-01.")
@click.option("--year", type=int, help="Every period of this fiscal year.")
@click.option("--line", "line_code", help="One line (code) and its subtree, with its rule in detail.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (amounts as strings).")
@handle_errors
def show(company: str | None, period: str | None, year: int | None, line_code: str | None,
         as_json: bool) -> None:
    """The line tree with budget / pre-encumbered / encumbered / actual / available."""
    with unit_of_work(readonly=True) as session:
        rows = line_report(session, company=company, period=period, year=year, line=line_code,
                           default_rule=default_rule())
    if as_json:
        click.echo(json.dumps([_as_dict(r) for r in rows], ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("no budget lines match")
        return
    if line_code:
        click.echo(_detail(rows[0]))
        click.echo()
    click.echo(render_tree(rows))


def _as_dict(r: LineReport) -> dict[str, Any]:
    return {
        "code": r.code, "name": r.name, "company": r.company, "period": r.period,
        "cost_centre": r.cost_centre, "item": r.item, "project": r.project, "parent": r.parent_code,
        "currency": r.currency, "status": r.status, "owner": r.owner, **r.buckets.to_dict(),
        "control": {"mode": r.rule.mode.value, "basis": r.rule.basis.value, "defined_on": r.rule_from,
                    "description": describe_rule(r.rule)},
    }


def _detail(r: LineReport) -> str:
    source = ("its own rule" if r.own_rule else
              f"inherited from {r.rule_from}" if r.rule_from else "the default rule")
    b = r.buckets
    return "\n".join([
        f"{r.code}  {r.name}",
        f"  dimensions  {r.company} / {r.period} / {r.cost_centre} / {r.item}"
        + (f" / {r.project}" if r.project else ""),
        f"  parent      {r.parent_code or '-'}",
        f"  owner       {r.owner or '-'}",
        f"  status      {r.status}",
        f"  control     {describe_rule(r.rule)}  ({source})",
        f"  budget      {money(b.budget, r.currency)} {r.currency}; available "
        f"{money(b.available, r.currency)} {r.currency}",
        *([f"  {r.rule.basis.value:<10}  budget {money(r.basis_buckets.budget, r.currency)}; available "
           f"{money(r.basis_buckets.available, r.currency)} (what control checks)"]
          if r.rule.basis.value != "period" else []),
    ])


def render_tree(rows: Sequence[LineReport]) -> str:
    """Lines grouped by company and period, indented by tree depth."""
    blocks = []
    groups: dict[tuple[str, str], list[LineReport]] = {}
    for r in rows:
        groups.setdefault((r.company, r.period), []).append(r)
    for (company, period), items in groups.items():
        prefix = f"{company}/{period}/"
        body = []
        for r in items:
            label = r.code[len(prefix):] if r.code.startswith(prefix) else r.code
            b = r.buckets
            used = usage_percent(b)
            control = r.rule.mode.value if r.own_rule else f"({r.rule.mode.value})"
            body.append([
                "  " * r.depth + ("└ " if r.depth else "") + label, r.currency,
                *(money(v, r.currency) for v in (b.budget, b.pre_encumbered, b.encumbered, b.actual, b.available)),
                "-" if used is None else f"{used}%", control, r.status, r.name,
            ])
        header = ["line", "cur", "budget", "pre_enc", "encumbered", "actual", "available",
                  "used", "control", "status", "name"]
        blocks.append(f"{company} {period}\n" + table(header, body, right=range(2, 8)))
    blocks.append("control: mode set on the line itself; (mode) inherited or the default rule")
    return "\n\n".join(blocks)


@command.command("history")
@click.argument("line")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent movements shown.")
@handle_errors
def history(line: str, limit: int) -> None:
    """LINE's budget entries, newest first: when, who, what kind, bucket, amount, reason."""
    with unit_of_work(readonly=True) as session:
        ln = find_line(session, line)
        rows = session.execute(
            select(BudgetEntry.created_at, BudgetMovement.actor, BudgetMovement.kind,
                   BudgetMovement.document_type, BudgetMovement.document_id, BudgetEntry.bucket,
                   BudgetEntry.amount, BudgetMovement.reason)
            .join(BudgetMovement, BudgetMovement.id == BudgetEntry.movement_id)
            .where(BudgetEntry.line_id == ln.id)
            .order_by(BudgetEntry.id.desc())
            .limit(limit)
        ).all()
    body = [
        [at.strftime("%Y-%m-%d %H:%M"), actor, kind, f"{doc_type}/{doc_id}" if doc_type else "-",
         bucket, money(amount, ln.currency), reason or ""]
        for at, actor, kind, doc_type, doc_id, bucket, amount, reason in rows
    ]
    click.echo(f"{ln.code} ({ln.currency}), newest first, times UTC")
    click.echo(table(["when", "who", "kind", "document", "bucket", "amount", "reason"], body, right=[5]))


@command.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("line")
@click.argument("amount")
@click.option("--reason", required=True, help="Why (recorded on the budget journal).")
@click.option("--original", is_flag=True, help="Book as the original budget rather than an adjustment.")
@actor_option
@handle_errors
def adjust(line: str, amount: str, reason: str, original: bool, actor: str) -> None:
    """Add AMOUNT to LINE's budget (negative to cut), e.g. `budget adjust ACME/2026-01/RD/TRAVEL -500`."""
    with unit_of_work() as session:
        ln = find_line(session, line)
        old = _budget_of(session, ln.id)
        Budgets(session, default_mode=settings().default_control_mode).adjust(
            None, ln.id, amount, actor=actor, reason=reason,
            kind="original" if original else "adjustment")
        new = _budget_of(session, ln.id)
    click.echo(f"{ln.code}: budget {money(old, ln.currency)} -> {money(new, ln.currency)} {ln.currency}")


def _budget_of(session: Session, line_id: int) -> Decimal:
    # Read the column, not the ORM object: the service updates balances with SQL.
    value = session.scalar(select(BudgetBalance.budget).where(BudgetBalance.line_id == line_id))
    return value if value is not None else Decimal(0)


@command.command("transfer")
@click.argument("from_line")
@click.argument("to_line")
@click.argument("amount")
@click.option("--reason", required=True)
@actor_option
@handle_errors
def transfer(from_line: str, to_line: str, amount: str, reason: str, actor: str) -> None:
    """Move AMOUNT of budget from FROM_LINE to TO_LINE (same currency)."""
    with unit_of_work() as session:
        src = find_line(session, from_line, "from_line")
        dst = find_line(session, to_line, "to_line")
        Budgets(session, default_mode=settings().default_control_mode).transfer(
            None, src.id, dst.id, amount, actor=actor, reason=reason)
    click.echo(f"transferred {amount} {src.currency} from {src.code} to {dst.code}")


def parse_threshold(text: str) -> dict[str, Any]:
    """``85:warn:notify`` -> ``{"percent": "85", "action": "warn", "notify": True}``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "notify"):
        raise ValidationError("threshold", f"{text!r}: use PERCENT:ACTION or PERCENT:ACTION:notify")
    if parts[1] not in {a.value for a in Action}:
        raise ValidationError("threshold", f"{text!r}: action must be info, warn or block")
    return {"percent": parts[0], "action": parts[1], "notify": len(parts) == 3}


@command.command("rule")
@click.argument("line")
@click.option("--mode", type=click.Choice([m.value for m in Mode]), required=True)
@click.option("--tolerance-percent", help="Allowed overrun in % of budget.")
@click.option("--tolerance-amount", help="Allowed overrun in money (the smaller limit wins).")
@click.option("--basis", type=click.Choice(["period", "cumulative", "annual", "overall"]), default="period",
              show_default=True)
@click.option("--threshold", "thresholds", multiple=True,
              help="PERCENT:ACTION[:notify], repeatable, e.g. --threshold 70:info --threshold 85:warn:notify."
                   " Default: 90:warn:notify 100:block:notify.")
@click.option("--no-subtree", is_flag=True, help="Apply to this line only, not the lines below it.")
@click.option("--reason", help="Why (shown to the finance user who reviews the change).")
@actor_option
@handle_errors
def rule(line: str, mode: str, tolerance_percent: str | None, tolerance_amount: str | None, basis: str,
         thresholds: tuple[str, ...], no_subtree: bool, reason: str | None, actor: str) -> None:
    """Propose the control rule for LINE (and, unless --no-subtree, the lines below it).

    While YINFIN_RULE_CHANGE_APPROVAL=required (the default) this only proposes: the
    change applies when another finance user approves it through the API
    (POST /api/v1/budget/rule-changes/ID/approve); the command line cannot prove who
    is typing, so it never approves. With YINFIN_RULE_CHANGE_APPROVAL=off it applies at
    once. Either way the actor is recorded as cli:<actor>.
    """
    require_actor(actor)
    who = actor if actor.startswith("cli:") else f"cli:{actor}"
    parsed = [parse_threshold(t) for t in thresholds] or None
    values: dict[str, Any] = {"mode": mode, "tolerance_percent": tolerance_percent, "tolerance_amount": tolerance_amount,
              "thresholds": parsed, "basis": basis, "subtree": not no_subtree}
    with unit_of_work() as session:
        ln = find_line(session, line)
        if settings().rule_change_approval == rule_changes.REQUIRED:
            change = rule_changes.propose(session, ln.id, actor=who, reason=reason, **values)
            click.echo(f"{ln.code}: rule change {change.id} proposed by {who}; it applies when another "
                       f"finance user approves it (POST /api/v1/budget/rule-changes/{change.id}/approve)")
            return
        setup.set_rule(session, ln.id, actor=who, **values)
        report = line_report(session, line=ln.code, default_rule=default_rule())[0]
    click.echo(f"{ln.code}: {describe_rule(report.rule)}")


@command.command("status")
@click.argument("line")
@click.argument("status", type=click.Choice(["open", "hold", "closed"]))
@actor_option
@handle_errors
def status(line: str, status: str, actor: str) -> None:
    """Open, hold (no new consumption) or close LINE."""
    require_actor(actor)
    with unit_of_work() as session:
        ln = find_line(session, line)
        old = ln.status
        setup.set_status(session, ln.id, status)
    click.echo(f"{ln.code}: {old} -> {status}")
