"""``yinfin-flow report …``: trial balance, budget vs actual, a request's trail.

Every report takes ``--format table|json|csv`` (``--json`` is kept as ``--format json``).
A trail of a document nobody knows (no request, reservation, budget movement or voucher)
is an error (exit 1), not an empty skeleton.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from yinfin_flow.domain.errors import NotFound
from yinfin_flow.ledger import reports

from .common import handle_errors, read_unit_of_work
from .journal import _company, company_option
from .output import Col, emit, emit_one, format_option, json_option

AMOUNTS = ("opening_debit", "opening_credit", "debit", "credit", "closing_debit", "closing_credit")


@click.group("report")
def command() -> None:
    """Trial balance, budget vs actual (业财), a request's trail."""


def _fmt(fmt: str, as_json: bool) -> str:
    return "json" if as_json else fmt


def _amount(value: Any, row: Any) -> str:
    if value is None:
        return ""
    return f"{value:,.2f}" if isinstance(value, Decimal) else str(value)


@command.command("trial-balance")
@click.option("--period", required=True, help="YYYY-MM")
@format_option
@json_option
@company_option
@handle_errors
def trial_balance_cmd(period: str, fmt: str, as_json: bool, company: str | None) -> None:
    """科目余额表: opening, debit, credit, closing per account (code and name) for PERIOD.
    JSON: the whole report (rows, totals, balanced); table and CSV: one row per account, then TOTAL."""
    with read_unit_of_work() as s:
        tb = reports.trial_balance(s, _company(s, company), period)
    fmt = _fmt(fmt, as_json)
    if fmt == "json":
        emit_one(reports.to_jsonable(tb), "json")
        return
    rows = [*tb["rows"], {"account": "TOTAL", "name": "", "level": 1, **tb["totals"]}]
    if fmt == "csv":
        rows = reports.to_jsonable(rows)
    indent = fmt == "table"
    cols = [Col("account", shown=lambda v, r: f"{'  ' * (r['level'] - 1)}{v}" if indent else v),
            Col("name"), *(Col(k, right=True, shown=_amount) for k in AMOUNTS)]
    emit(rows, cols, fmt)
    if fmt == "table":
        click.echo(f"{tb['company']} {tb['period']} ({tb['status']}), {tb['currency']}: "
                   f"{'balanced' if tb['balanced'] else 'NOT BALANCED'}")


@command.command("budget-vs-actual")
@click.option("--period", help="YYYY-MM")
@click.option("--year", type=int)
@format_option
@json_option
@company_option
@handle_errors
def budget_vs_actual_cmd(period: str | None, year: int | None, fmt: str, as_json: bool,
                         company: str | None) -> None:
    """Budget, commitments and actual beside the ledger, per cost centre and account."""
    with read_unit_of_work() as s:
        rep = reports.budget_vs_actual(s, _company(s, company), period=period,
                                       year=year if period is None else None)
    fmt = _fmt(fmt, as_json)
    if fmt == "json":
        emit_one(reports.to_jsonable(rep), "json")
        return
    figures = ("budget", "pre_encumbered", "encumbered", "actual", "available", "ledger", "unbudgeted")
    cols = [Col("cost_centre", "cost centre"), Col("account"),
            *(Col(k, right=True, shown=_amount) for k in figures),
            Col("usage_percent", "used %", right=True)]
    emit(rep["rows"] if fmt == "table" else reports.to_jsonable(rep["rows"]), cols, fmt)
    if fmt == "table":
        click.echo(f"{rep['company']} {rep['range']} ({rep['currency']})")


def _found(trail: dict[str, Any]) -> bool:
    return bool(trail["request"] or trail["reservations"] or trail["budget_movements"] or trail["vouchers"])


def _move(before: str | None, after: str | None) -> str:
    return f"{before or ''} -> {after}" if after and after != before else ""


def _timeline(trail: dict[str, Any]) -> list[dict[str, Any]]:
    """The trail as rows, one per event: approvals, budget entries, voucher lines."""
    rows: list[dict[str, Any]] = []
    for a in trail["approvals"]:
        rows.append({"section": "approval", "ref": str(a["seq"]), "at": a["at"], "actor": a["actor"],
                     "what": a["action"], "line": a["step"], "amount": None, "currency": None,
                     "detail": "; ".join(x for x in (_move(a["from"], a["to"]), a["comment"]) if x)})
    for m in trail["budget_movements"]:
        for e in m["entries"]:
            rows.append({"section": "budget", "ref": str(m["id"]), "at": m["at"], "actor": m["actor"],
                         "what": f"{m['kind']} {e['bucket']}", "line": e["line"], "amount": e["amount"],
                         "currency": e["currency"], "detail": m["step"] or ""})
    for v in trail["vouchers"]:
        erp = v["erp"]["status"] + (f" {v['erp']['voucher_id']}" if v["erp"]["voucher_id"] else "")
        for ln in v["lines"]:
            side = "debit" if ln["debit"] else "credit"
            rows.append({"section": "voucher", "ref": v["voucher"], "at": v["date"], "actor": "",
                         "what": side, "line": ln["account"], "amount": ln["debit"] or ln["credit"],
                         "currency": ln["currency"], "detail": f"ERP {erp}"})
    return rows


@command.command("trail")
@click.argument("document_type")
@click.argument("document_id")
@format_option
@handle_errors
def trail_cmd(document_type: str, document_id: str, fmt: str) -> None:
    """A request end to end: approvals, budget movements, vouchers, ERP voucher ids.
    Exits 1 when nothing is known of DOCUMENT_TYPE DOCUMENT_ID."""
    with read_unit_of_work() as s:
        trail = reports.trail(s, document_type, document_id)
    if not _found(trail):
        raise NotFound(f"no {document_type} {document_id}: no request, budget movement or voucher has it",
                       field="document_id", document_type=document_type, document_id=document_id)
    if fmt == "json":
        emit_one(reports.to_jsonable(trail), "json")
        return
    if fmt == "table":
        req = trail["request"]
        head = f"{document_type} {document_id}"
        if req:
            head += f": {req['title']} ({req['requester']}, {req['workflow']}, {req['state']})"
        click.echo(head)
    rows = _timeline(trail)
    emit(rows if fmt == "table" else reports.to_jsonable(rows), [Col("section"), Col("ref"), Col("at", shown=lambda v, r: str(v)[:19]),
                            Col("actor"), Col("what"), Col("line"),
                            Col("amount", right=True, shown=_amount), Col("currency", "cur"),
                            Col("detail")], fmt)
