"""Accounting commands: ``journal``, ``masterdata`` and ``period`` (``report`` is in .report).

``journal`` is registered through :data:`yinfin_flow.cli.GROUPS`; the other two
groups live here too and attach themselves to the main command when this module
is imported (see :func:`_attach`).

Every command takes ``--company`` (or ``YINFIN_COMPANY``); with one company in
the database it may be left out.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from yinfin_flow.db.models import Company
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.ledger import exports, masterdata, periods, templates, yearend
from yinfin_flow.ledger.manual import post_manual
from yinfin_flow.ledger.posting import post
from yinfin_flow.ledger.reversal import reverse

from .common import (
    ACTOR_ENV,
    actor_option,
    directory_actor,
    handle_errors,
    read_json,
    read_unit_of_work,
    settings,
    unit_of_work,
)
from .output import Col, emit, format_option, is_stdout, output_path, working, write_stdout


def _company(session: Any, code: str | None) -> str:
    if code:
        return code
    codes = list(session.scalars(select(Company.code).limit(2)))
    if len(codes) != 1:
        raise ValidationError("company", "name the company with --company (or YINFIN_COMPANY)")
    return str(codes[0])


company_option = click.option("--company", envvar="YINFIN_COMPANY", help="Company code (e.g. ACME).")


# -- journal ------------------------------------------------------------------------


@click.group("journal")
def command() -> None:
    """Vouchers: post, reverse, list, export (beancount, CSV/XLSX for the ERP)."""


@command.command("export")
@click.option("--format", "fmt", type=click.Choice(["beancount", "csv", "xlsx"]), required=True)
@click.option("--period", help="One month, YYYY-MM (default: everything).")
@output_path
@company_option
@handle_errors
def export_cmd(fmt: str, period: str | None, output: Path, company: str | None) -> None:
    """Write the journal as a beancount ledger or an ERP voucher import file
    (``-o -``: to standard output; the count goes to standard error)."""
    with read_unit_of_work() as s, working(f"exporting the journal as {fmt}"):
        comp = _company(s, company)
        if not is_stdout(output):
            n = exports.export(s, comp, fmt, output, period)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / f"journal.{fmt}"
                n = exports.export(s, comp, fmt, staged, period)
                write_stdout(staged.read_bytes())
    where = "standard output" if is_stdout(output) else str(output)
    click.echo(f"{n} voucher(s) written to {where}", err=is_stdout(output))


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
@click.option("--actor", envvar=ACTOR_ENV, show_envvar=True,
              help="Who posts it, when the file names no actor: a person of the directory.")
@handle_errors
def manual_cmd(payload: Any, actor: str | None) -> None:
    """Post a manual voucher (手工凭证) from JSON: key, company, posting_date, actor, summary,
    lines [{account, debit|credit, currency, cost_centre, project, partner, memo}].
    The actor (the file's, else --actor) must be an active person of the directory."""
    data = read_json(payload)
    if not data.get("actor"):
        if not actor or not actor.strip():
            raise click.UsageError(f"who posts the voucher is required: an actor in the file, "
                                   f"--actor PERSON or {ACTOR_ENV}")
        data["actor"] = actor.strip()
    with unit_of_work() as s:
        data["actor"] = directory_actor(s, str(data["actor"]))
        result = post_manual(s, **data)
    click.echo(f"{'replayed' if result.replayed else 'posted'} {result.voucher} (entry {result.entry_id})")


@command.command("reverse")
@click.argument("entry_id", type=int)
@click.option("--reason", required=True)
@actor_option
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="Posting date (default: the original's).")
@click.option("--key", help="Idempotency key (default: reverse:<entry id>).")
@handle_errors
def reverse_cmd(entry_id: int, reason: str, actor: str, on: Any, key: str | None) -> None:
    """Reverse a voucher (red-ink), taking back the budget actual it caused."""
    with unit_of_work() as s:
        actor = directory_actor(s, actor)
        r = reverse(s, entry_id, key=key or f"reverse:{entry_id}", actor=actor, reason=reason,
                    posting_date=on.date() if on else None)
    click.echo(f"{'replayed' if r.replayed else 'reversed by'} {r.voucher} (entry {r.entry_id})")


VOUCHER_LINE_COLS = [
    Col("voucher"), Col("date"), Col("line_no", "line", right=True), Col("account"),
    Col("account_name", "name"), Col("debit", right=True, shown=lambda v, r: f"{v:,.2f}"),
    Col("credit", right=True, shown=lambda v, r: f"{v:,.2f}"),
    Col("amount", right=True, shown=lambda v, r: f"{v:,.2f}"), Col("currency", "cur"),
    Col("cost_centre", "cost centre"),
    Col("summary", shown=lambda v, r: v if r["line_no"] == 1 else ""),
]


@command.command("list")
@click.option("--period", help="YYYY-MM")
@format_option
@company_option
@handle_errors
def list_cmd(period: str | None, fmt: str, company: str | None) -> None:
    """One row per voucher line: voucher, date, account and its name, debit, credit,
    amount in the line's currency, cost centre, summary."""
    with unit_of_work(readonly=True) as s:
        rows = exports.voucher_rows(s, _company(s, company), period)
    emit([{"voucher": r.voucher, "date": r.posting_date, "line_no": r.line_no, "account": r.account_code,
           "account_name": r.account_name, "debit": _cents(r.debit), "credit": _cents(r.credit),
           "amount": _cents(r.amount), "currency": r.currency, "cost_centre": r.cost_centre,
           "summary": r.summary} for r in rows], VOUCHER_LINE_COLS, fmt)


def _cents(value: Decimal) -> Decimal:
    """Two places where the amount has no more (the ledger keeps four)."""
    two = value.quantize(Decimal("0.01"))
    return two if two == value else value


@command.command("templates")
@format_option
@handle_errors
def templates_cmd(fmt: str) -> None:
    """Validate and list the posting templates in workflows/postings/."""
    emit([{"name": name, "description": t.description} for name, t in templates.load_all().items()],
         [Col("name"), Col("description")], fmt)


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
    with unit_of_work() as s, working(f"importing {kind} from {file.name}"):
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
@actor_option
@company_option
@handle_errors
def open_cmd(code: str, actor: str, company: str | None) -> None:
    """Open month CODE (YYYY-MM), or a whole year (YYYY); reopen from the latest closed month back."""
    with unit_of_work() as s:
        directory_actor(s, actor)
        comp = _company(s, company)
        if code.isdigit() and len(code) == 4:
            periods.open_year(s, comp, int(code))
        else:
            periods.open_period(s, comp, code)
    click.echo(f"{comp} {code} open")


@period_cmd.command("close")
@click.argument("code", required=False)
@click.option("--through", help="Close every open month up to and including this one (YYYY-MM), oldest first.")
@actor_option
@company_option
@handle_errors
def close_cmd(code: str | None, through: str | None, actor: str, company: str | None) -> None:
    """Close month CODE, or with --through every open month up to one; refused while an
    earlier month is open or vouchers wait for the ERP (each blocking month and voucher named)."""
    if (code is None) == (through is None):
        raise ValidationError("period", "give one month CODE or --through YYYY-MM")
    with unit_of_work() as s:
        actor = directory_actor(s, actor)
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
@format_option
@company_option
@handle_errors
def list_periods_cmd(fmt: str, company: str | None) -> None:
    """Months with their status, vouchers numbered, who closed them and when."""
    with unit_of_work(readonly=True) as s:
        rows = [{"period": p.code, "status": p.status, "vouchers": p.last_voucher_number,
                 "closed_by": p.closed_by, "closed_at": p.closed_at}
                for p in periods.list_periods(s, _company(s, company))]
    emit(rows, [Col("period"), Col("status"), Col("vouchers", right=True), Col("closed_by", "closed by"),
                Col("closed_at", "closed at", shown=lambda v, r: "" if v is None else str(v)[:16])], fmt)


@period_cmd.command("yearend")
@click.argument("year", type=int)
@click.option("--with-budget/--without-budget", required=True,
              help="Carry the budget along with the commitments, or not.")
@actor_option
@company_option
@handle_errors
def yearend_cmd(year: int, with_budget: bool, actor: str, company: str | None) -> None:
    """Roll YEAR's open commitments into YEAR+1 (one transaction)."""
    with unit_of_work() as s, working(f"rolling {year} into {year + 1}"):
        actor = directory_actor(s, actor)
        result = yearend.roll_forward(s, _company(s, company), year, with_budget=with_budget, actor=actor)
    for r in result.rolled:
        budget = f" (budget: {r.budget_out} out, {r.budget_in} in)" if with_budget else ""
        click.echo(f"{r.document}: {r.amount} {r.from_line} -> {r.to_line}{budget}")
    click.echo(f"{len(result.rolled)} commitment(s) rolled into {year + 1}"
               f" ({'with' if with_budget else 'without'} budget)")


def _attach() -> None:
    """Add the groups beyond ``journal`` to the main command (it is being built right now)."""
    from yinfin_flow import cli

    main = getattr(cli, "main", None)
    if main is None:
        return
    for group in (masterdata_cmd, period_cmd):
        if group.name not in main.commands:
            main.add_command(group)


_attach()
__all__ = ["command"]
