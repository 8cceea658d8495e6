"""``yinfin-flow budget …``: finance's budget commands.

Every command opens ``Settings.from_env().database_url`` and does its work in one
unit of work. A refusal (over budget, closed line, bad file…) prints the domain
error's code, message and details on stderr and exits 1, without a traceback.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from yinfin_flow.budget import io, rule_changes, setup
from yinfin_flow.budget.io_report import LineReport, describe_rule, line_report, usage_percent
from yinfin_flow.db.models import BudgetEntry, BudgetMovement
from yinfin_flow.domain.budget import Action, Mode
from yinfin_flow.domain.errors import ValidationError

from .common import (
    actor_option,
    cli_actor,
    default_rule,
    find_line,
    handle_errors,
    money,
    read_unit_of_work,
    require_actor,
    settings,
    table,
    unit_of_work,
)
from .output import (
    Col,
    emit,
    format_option,
    is_stdout,
    json_option,
    output_path,
    render,
    working,
    write_stdout,
)

# Other command modules imported these helpers from here before they moved to .common.
__all__ = ["actor_option", "command", "handle_errors", "require_actor", "table", "unit_of_work"]


@click.group("budget")
def command() -> None:
    """Budgets: import/export, show, adjust, transfer, control rules, status."""


@command.command("export")
@output_path
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
              help="Default: from the file name (csv for -o -).")
@click.option("--company")
@click.option("--period", help="A period code, e.g. 2026-01.")
@click.option("--year", type=int, help="Every period of this fiscal year.")
@handle_errors
def export(output: Path, fmt: str | None, company: str | None, period: str | None, year: int | None) -> None:
    """Write lines with budget, pre_encumbered, encumbered, actual and available; importable back
    (``-o -``: to standard output; the count goes to standard error)."""
    with read_unit_of_work() as session, working("exporting budgets"):
        if not is_stdout(output):
            n = io.export_budgets(session, output, fmt=fmt, company=company, period=period, year=year,
                                  default_rule=default_rule())
        else:
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / f"budgets.{fmt or 'csv'}"
                n = io.export_budgets(session, staged, fmt=fmt or "csv", company=company, period=period,
                                      year=year, default_rule=default_rule())
                write_stdout(staged.read_bytes())
    click.echo(f"{n} line(s) written to {'standard output' if is_stdout(output) else output}",
               err=is_stdout(output))


@command.command("show")
@click.option("--company")
@click.option("--period", help="A period code, e.g. 2026-01.")
@click.option("--year", type=int, help="Every period of this fiscal year.")
@click.option("--line", "line_code", help="One line (code) and its subtree, with its rule in detail.")
@click.option("--ids", is_flag=True, help="Show each line's id (what the API's /budget/lines/ID takes).")
@format_option
@json_option
@handle_errors
def show(company: str | None, period: str | None, year: int | None, line_code: str | None,
         ids: bool, fmt: str, as_json: bool) -> None:
    """The line tree with budget / pre-encumbered / encumbered / actual / available.

    JSON: an array of objects (id, code, dimensions, buckets as strings, control rule);
    CSV: the same flattened, one row per line."""
    with read_unit_of_work() as session:
        rows = line_report(session, company=company, period=period, year=year, line=line_code,
                           default_rule=default_rule())
    fmt = "json" if as_json else fmt
    if fmt != "table":
        emit([_as_dict(r) for r in rows], SHOW_COLS if fmt == "csv" else [Col(k) for k in JSON_KEYS], fmt)
        return
    if not rows:
        click.echo("no budget lines match")
        return
    if line_code:
        click.echo(_detail(rows[0]))
        click.echo()
    click.echo(render_tree(rows, ids=ids))


JSON_KEYS = ["id", "code", "name", "company", "period", "cost_centre", "item", "project", "parent", "currency",
             "status", "effective_status", "status_from", "owner", "budget", "pre_encumbered", "encumbered",
             "actual", "available", "basis_buckets", "control"]
SHOW_COLS = [Col(k) for k in JSON_KEYS[:-2]] + [Col("control_mode"), Col("control_basis"),
                                                 Col("basis_available")]


def _as_dict(r: LineReport) -> dict[str, Any]:
    return {
        "id": r.line_id, "control_mode": r.rule.mode.value, "control_basis": r.rule.basis.value,
        "basis_available": r.basis_buckets.available,
        "code": r.code, "name": r.name, "company": r.company, "period": r.period,
        "cost_centre": r.cost_centre, "item": r.item, "project": r.project, "parent": r.parent_code,
        "currency": r.currency, "status": r.status, "effective_status": r.effective_status,
        "status_from": r.status_from, "owner": r.owner, **r.buckets.to_dict(),
        "basis_buckets": r.basis_buckets.to_dict(),
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
        f"  status      {r.status}" + (f"; effective {r.effective_status} (set on {r.status_from})"
                                           if r.status_from else ""),
        f"  control     {describe_rule(r.rule)}  ({source})",
        f"  budget      {money(b.budget, r.currency)} {r.currency}; available "
        f"{money(b.available, r.currency)} {r.currency}",
        *([f"  {r.rule.basis.value:<10}  budget {money(r.basis_buckets.budget, r.currency)}; available "
           f"{money(r.basis_buckets.available, r.currency)} (what control checks)"]
          if r.rule.basis.value != "period" else []),
    ])


def render_tree(rows: Sequence[LineReport], ids: bool = False) -> str:
    """Lines grouped by company and period, indented by tree depth (with ``ids``, each line's id first)."""
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
            basis = r.rule.basis.value
            checked = "" if basis == "period" else f"{money(r.basis_buckets.available, r.currency)} {basis[:3]}"
            status = r.status if r.status_from is None else f"{r.effective_status}*"
            body.append([
                *([str(r.line_id)] if ids else []),
                "  " * r.depth + ("└ " if r.depth else "") + label, r.currency,
                *(money(v, r.currency) for v in (b.budget, b.pre_encumbered, b.encumbered, b.actual, b.available)),
                "-" if used is None else f"{used}%", checked, control, status, r.name,
            ])
        header = [*(["id"] if ids else []), "line", "cur", "budget", "pre_enc", "encumbered", "actual",
                  "available", "used", "checked", "control", "status", "name"]
        shift = 1 if ids else 0
        blocks.append(f"{company} {period}\n" + table(header, body, right=[0, *range(2 + shift, 9 + shift)]
                                                        if ids else range(2, 9)))
    blocks.append("control: mode set on the line itself; (mode) inherited or the default rule\n"
                  "checked: available on the rule's basis where it is not the period alone "
                  "(cum: cumulative to date, ann: annual, ove: overall), what control checks\n"
                  "status: the line's own; status* the effective one, set on a line above (the most "
                  "restrictive on the path)")
    return "\n\n".join(blocks)


@command.command("history")
@click.argument("line")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent movements shown.")
@format_option
@handle_errors
def history(line: str, limit: int, fmt: str) -> None:
    """LINE's budget entries, newest first: when, who, what kind, bucket, amount, reason."""
    with read_unit_of_work() as session:
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
    records = [
        {"when": at, "who": actor, "kind": kind, "document": f"{doc_type}/{doc_id}" if doc_type else None,
         "bucket": bucket, "amount": amount, "currency": ln.currency, "reason": reason}
        for at, actor, kind, doc_type, doc_id, bucket, amount, reason in rows
    ]
    cols = [Col("when", shown=lambda v, r: v.strftime("%Y-%m-%d %H:%M")), Col("who"), Col("kind"),
            Col("document", shown=lambda v, r: v or "-"), Col("bucket"),
            Col("amount", right=True, shown=lambda v, r: money(v, r["currency"])),
            *([Col("currency")] if fmt != "table" else []), Col("reason")]
    if fmt == "table":
        click.echo(f"{ln.code} ({ln.currency}), newest first, times UTC")
    click.echo(render(records, cols, fmt))


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
    once. Either way the actor, a finance person of the directory, is recorded as
    cli:<actor>.
    """
    parsed = [parse_threshold(t) for t in thresholds] or None
    values: dict[str, Any] = {"mode": mode, "tolerance_percent": tolerance_percent, "tolerance_amount": tolerance_amount,
              "thresholds": parsed, "basis": basis, "subtree": not no_subtree}
    with unit_of_work() as session:
        who = cli_actor(session, actor)
        ln = find_line(session, line)
        if settings().rule_change_approval == rule_changes.REQUIRED:
            change = rule_changes.propose(session, ln.id, actor=who, reason=reason, **values)
            click.echo(f"{ln.code}: rule change {change.id} proposed by {who}; it applies when another "
                       f"finance user approves it (POST /api/v1/budget/rule-changes/{change.id}/approve)")
            click.echo(f"what it would have done: yinfin-flow budget simulate {ln.code} --change {change.id}")
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
    with unit_of_work() as session:
        cli_actor(session, actor)
        ln = find_line(session, line)
        old = ln.status
        setup.set_status(session, ln.id, status)
    click.echo(f"{ln.code}: {old} -> {status}")


# Budget journals (adjust, transfer, import and their proposals) live in .budget_journals,
# the what-if simulation in .budget_simulate.
from .budget_journals import COMMANDS as _JOURNAL_COMMANDS  # noqa: E402 - after the group exists
from .budget_simulate import simulate as _simulate  # noqa: E402

for _journal_command in [*_JOURNAL_COMMANDS, _simulate]:
    command.add_command(_journal_command)
