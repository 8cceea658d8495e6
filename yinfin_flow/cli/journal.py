"""Accounting commands: ``journal``, ``masterdata``, ``period`` and ``report``.

``journal`` is registered through :data:`yinfin_flow.cli.GROUPS`; the other three
groups live here too and attach themselves to the main command when this module
is imported (see :func:`_attach`).

Every command takes ``--company`` (or ``YINFIN_COMPANY``); with one company in
the database it may be left out.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from yinfin_flow.db.models import Company
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.ledger import exports, masterdata, periods, reports, templates, yearend
from yinfin_flow.ledger.manual import post_manual
from yinfin_flow.ledger.posting import post
from yinfin_flow.ledger.reversal import reverse

from .budget import handle_errors, unit_of_work
from .common import read_json, read_unit_of_work, settings


def _company(session: Any, code: str | None) -> str:
    if code:
        return code
    codes = list(session.scalars(select(Company.code).limit(2)))
    if len(codes) != 1:
        raise ValidationError("company", "name the company with --company (or YINFIN_COMPANY)")
    return str(codes[0])


company_option = click.option("--company", envvar="YINFIN_COMPANY", help="Company code (e.g. ACME).")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(reports.to_jsonable(data), ensure_ascii=False, indent=2))


# -- journal ------------------------------------------------------------------------


@click.group("journal")
def command() -> None:
    """Vouchers: post, reverse, list, export (beancount, CSV/XLSX for the ERP)."""


@command.command("export")
@click.option("--format", "fmt", type=click.Choice(["beancount", "csv", "xlsx"]), required=True)
@click.option("--period", help="One month, YYYY-MM (default: everything).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@company_option
@handle_errors
def export_cmd(fmt: str, period: str | None, output: Path, company: str | None) -> None:
    """Write the journal as a beancount ledger or an ERP voucher import file."""
    with read_unit_of_work() as s:
        n = exports.export(s, _company(s, company), fmt, output, period)
    click.echo(f"{n} voucher(s) written to {output}")


@command.command("post")
@click.argument("payload", type=click.File("r", encoding="utf-8"))
@handle_errors
def post_cmd(payload: Any) -> None:
    """Post a business event from a JSON file (the ``posting.requested`` payload)."""
    data = read_json(payload)
    with unit_of_work() as s:
        result = post(s, **data)
    click.echo(f"{'replayed' if result.replayed else 'posted'} {result.voucher} (entry {result.entry_id})")


@command.command("manual")
@click.argument("payload", type=click.File("r", encoding="utf-8"))
@handle_errors
def manual_cmd(payload: Any) -> None:
    """Post a manual voucher (手工凭证) from JSON: key, company, posting_date, actor, summary,
    lines [{account, debit|credit, currency, cost_centre, project, partner, memo}]."""
    data = read_json(payload)
    with unit_of_work() as s:
        result = post_manual(s, **data)
    click.echo(f"{'replayed' if result.replayed else 'posted'} {result.voucher} (entry {result.entry_id})")


@command.command("reverse")
@click.argument("entry_id", type=int)
@click.option("--reason", required=True)
@click.option("--actor", required=True)
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="Posting date (default: the original's).")
@click.option("--key", help="Idempotency key (default: reverse:<entry id>).")
@handle_errors
def reverse_cmd(entry_id: int, reason: str, actor: str, on: Any, key: str | None) -> None:
    """Reverse a voucher (red-ink), taking back the budget actual it caused."""
    with unit_of_work() as s:
        r = reverse(s, entry_id, key=key or f"reverse:{entry_id}", actor=actor, reason=reason,
                    posting_date=on.date() if on else None)
    click.echo(f"{'replayed' if r.replayed else 'reversed by'} {r.voucher} (entry {r.entry_id})")


@command.command("list")
@click.option("--period", help="YYYY-MM")
@company_option
@handle_errors
def list_cmd(period: str | None, company: str | None) -> None:
    """One line per voucher line: voucher, account, debit, credit, currency amount."""
    with unit_of_work(readonly=True) as s:
        rows = exports.voucher_rows(s, _company(s, company), period)
    for r in rows:
        click.echo(f"{r.voucher}  {r.posting_date}  {r.account_code:<10} {r.debit:>14.2f} {r.credit:>14.2f}  "
                   f"{r.amount:>12.2f} {r.currency}  {r.summary if r.line_no == 1 else ''}")


@command.command("templates")
@handle_errors
def templates_cmd() -> None:
    """Validate and list the posting templates in workflows/postings/."""
    for name, t in templates.load_all().items():
        click.echo(f"{name}: {t.description}")


# -- masterdata -----------------------------------------------------------------------


@click.group("masterdata")
def masterdata_cmd() -> None:
    """Accounts, partners, cost centres, projects."""


@masterdata_cmd.command("import")
@click.argument("kind", type=click.Choice(list(masterdata.KINDS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@company_option
@handle_errors
def import_cmd(kind: str, file: Path, company: str | None) -> None:
    """Import KIND from a CSV or XLSX FILE: all rows or none; every bad row is listed."""
    with unit_of_work() as s:
        counts = masterdata.import_file(s, _company(s, company), kind, file, settings().limits)
    click.echo(f"{kind}: {counts['created']} created, {counts['updated']} updated")


@masterdata_cmd.command("deactivate")
@click.argument("kind", type=click.Choice(list(masterdata.KINDS)))
@click.argument("code")
@company_option
@handle_errors
def deactivate_cmd(kind: str, code: str, company: str | None) -> None:
    """Deactivate a record (never deleted: vouchers keep referring to it)."""
    with unit_of_work() as s:
        masterdata.deactivate(s, _company(s, company), kind, code)
    click.echo(f"{kind} {code} deactivated")


# -- period ---------------------------------------------------------------------------


@click.group("period")
def period_cmd() -> None:
    """Accounting periods: open, close, list, year-end roll-forward."""


@period_cmd.command("open")
@click.argument("code")
@company_option
@handle_errors
def open_cmd(code: str, company: str | None) -> None:
    """Open month CODE (YYYY-MM), or a whole year (YYYY); reopen from the latest closed month back."""
    with unit_of_work() as s:
        comp = _company(s, company)
        if code.isdigit() and len(code) == 4:
            periods.open_year(s, comp, int(code))
        else:
            periods.open_period(s, comp, code)
    click.echo(f"{comp} {code} open")


@period_cmd.command("close")
@click.argument("code", required=False)
@click.option("--through", help="Close every open month up to and including this one (YYYY-MM), oldest first.")
@click.option("--actor", required=True)
@company_option
@handle_errors
def close_cmd(code: str | None, through: str | None, actor: str, company: str | None) -> None:
    """Close month CODE, or with --through every open month up to one; refused while an
    earlier month is open or vouchers wait for the ERP (each blocking month and voucher named)."""
    if (code is None) == (through is None):
        raise ValidationError("period", "give one month CODE or --through YYYY-MM")
    with unit_of_work() as s:
        comp = _company(s, company)
        if through is not None:
            closed = periods.close_through(s, comp, through, actor=actor)
        else:
            periods.close_period(s, comp, code or "", actor=actor)
    if through is None:
        click.echo(f"{comp} {code} closed")
    elif closed:
        click.echo(f"{comp} closed {', '.join(p.code for p in closed)}")
    else:
        click.echo(f"{comp}: every month through {through} was already closed")


@period_cmd.command("list")
@company_option
@handle_errors
def list_periods_cmd(company: str | None) -> None:
    with unit_of_work(readonly=True) as s:
        for p in periods.list_periods(s, _company(s, company)):
            click.echo(f"{p.code}  {p.status:<6}  vouchers: {p.last_voucher_number}")


@period_cmd.command("yearend")
@click.argument("year", type=int)
@click.option("--with-budget/--without-budget", required=True,
              help="Carry the budget along with the commitments, or not.")
@click.option("--actor", required=True)
@company_option
@handle_errors
def yearend_cmd(year: int, with_budget: bool, actor: str, company: str | None) -> None:
    """Roll YEAR's open commitments into YEAR+1 (one transaction)."""
    with unit_of_work() as s:
        result = yearend.roll_forward(s, _company(s, company), year, with_budget=with_budget, actor=actor)
    for r in result.rolled:
        budget = f" (budget: {r.budget_out} out, {r.budget_in} in)" if with_budget else ""
        click.echo(f"{r.document}: {r.amount} {r.from_line} -> {r.to_line}{budget}")
    click.echo(f"{len(result.rolled)} commitment(s) rolled into {year + 1}"
               f" ({'with' if with_budget else 'without'} budget)")


# -- report ---------------------------------------------------------------------------


@click.group("report")
def report_cmd() -> None:
    """Trial balance, budget vs actual (业财), a request's trail."""


def _table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    click.echo("  ".join(f"{c:>14}" if i else f"{c:<22}" for i, c in enumerate(cols)))
    for r in rows:
        cells = []
        for i, c in enumerate(cols):
            v = r.get(c)
            text = "" if v is None else (f"{v:,.2f}" if isinstance(v, Decimal) else str(v))
            cells.append(f"{text:>14}" if i else f"{text:<22}")
        click.echo("  ".join(cells))


@report_cmd.command("trial-balance")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--json", "as_json", is_flag=True)
@company_option
@handle_errors
def trial_balance_cmd(period: str, as_json: bool, company: str | None) -> None:
    """科目余额表: opening, debit, credit, closing per account for PERIOD."""
    with read_unit_of_work() as s:
        tb = reports.trial_balance(s, _company(s, company), period)
    if as_json:
        _echo_json(tb)
        return
    rows = [{**r, "account": f"{'  ' * (r['level'] - 1)}{r['account']}"} for r in tb["rows"]]
    _table(rows + [{"account": "TOTAL", **tb["totals"]}],
           ["account", "opening_debit", "opening_credit", "debit", "credit", "closing_debit", "closing_credit"])
    click.echo(f"{tb['company']} {tb['period']} ({tb['status']}), {tb['currency']}: "
               f"{'balanced' if tb['balanced'] else 'NOT BALANCED'}")


@report_cmd.command("budget-vs-actual")
@click.option("--period", help="YYYY-MM")
@click.option("--year", type=int)
@click.option("--json", "as_json", is_flag=True)
@company_option
@handle_errors
def budget_vs_actual_cmd(period: str | None, year: int | None, as_json: bool, company: str | None) -> None:
    """Budget, commitments and actual beside the ledger, per cost centre and account."""
    with read_unit_of_work() as s:
        rep = reports.budget_vs_actual(s, _company(s, company), period=period,
                                       year=year if period is None else None)
    if as_json:
        _echo_json(rep)
        return
    rows = [{**r, "key": f"{r['cost_centre']} {r['account']}"} for r in rep["rows"]]
    _table(rows, ["key", "budget", "pre_encumbered", "encumbered", "actual", "available", "ledger",
                  "unbudgeted", "usage_percent"])
    click.echo(f"{rep['company']} {rep['range']} ({rep['currency']})")


@report_cmd.command("trail")
@click.argument("document_type")
@click.argument("document_id")
@handle_errors
def trail_cmd(document_type: str, document_id: str) -> None:
    """A request end to end: approvals, budget movements, vouchers, ERP voucher ids (JSON)."""
    with read_unit_of_work() as s:
        _echo_json(reports.trail(s, document_type, document_id))


def _attach() -> None:
    """Add the groups beyond ``journal`` to the main command (it is being built right now)."""
    from yinfin_flow import cli

    main = getattr(cli, "main", None)
    if main is None:
        return
    for group in (masterdata_cmd, period_cmd, report_cmd):
        if group.name not in main.commands:
            main.add_command(group)


_attach()
__all__ = ["command"]
