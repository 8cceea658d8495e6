"""Reports: budget vs actual (业财对比) with a chart and a drill-down to the budget lines
and requests behind each row; the trial balance (科目余额表) with account names; one
request's trail; downloads of the journal exports (XLSX, CSV, beancount).

Everything here only reads, from the read database (``YINFIN_DATABASE_READ_URL``, else
the primary), as the API's reports do. Amounts reach the chart as strings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, request, url_for

from yinfin_flow.api.engine_reads import visible_request
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.extension import state
from yinfin_flow.ledger import exports, periods, report_drill, reports

from .. import i18n
from ..common import me
from . import add_nav, books

FORMATS = {"xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
           "csv": ("text/csv; charset=utf-8", "csv"),
           "beancount": ("text/plain; charset=utf-8", "beancount")}


def _reads():  # noqa: ANN202 - a Database
    return state(current_app).reads


def index() -> str:
    with _reads().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        months = [p.code for p in periods.list_periods(s, company)]
    return render_template("yinfin/finance/reports.html", company=company, companies=companies,
                           months=months, year=books.year_arg(), formats=list(FORMATS))


def budget_vs_actual() -> str:
    period, year = books.period_arg(), None if request.args.get("period") else books.year_arg()
    with _reads().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        report = reports.to_jsonable(reports.budget_vs_actual(s, company, period=period, year=year))
    chart = {"labels": [f"{r['cost_centre']} · {r['account']}" for r in report["rows"]],
             "series": {k: [r[k] for r in report["rows"]] for k in ("budget", "actual", "ledger")},
             "names": {"budget": i18n._("Budget"), "actual": i18n._("Actual (budget)"),
                       "ledger": i18n._("Ledger")}}
    return render_template("yinfin/finance/bva.html", company=company, companies=companies,
                           report=report, chart=chart, period=period, year=year)


def bva_drill() -> str:
    period, year = books.period_arg(), None if request.args.get("period") else books.year_arg()
    cost_centre = (request.args.get("cost_centre") or "").strip()[:64]
    account = (request.args.get("account") or "").strip()[:64]
    if not cost_centre:
        raise ValidationError("cost_centre", "is required")
    if not account:
        raise ValidationError("account", "is required")
    with _reads().unit_of_work(readonly=True) as s:
        company, _ = books.company(s)
        drill = reports.to_jsonable(report_drill.budget_vs_actual_drill(
            s, company, cost_centre=cost_centre, account=account, period=period, year=year))
    # The line pages belong to the budget side's module: linked by path, under the
    # console's own root (the host's prefix, if any).
    root = url_for("console.finance_reports").rsplit("/finance/reports", 1)[0]
    return render_template("yinfin/finance/bva_drill.html", company=company, drill=drill,
                           period=period, year=year, lines_root=f"{root}/finance/budget/lines")


def trial_balance() -> str:
    with _reads().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        months = [p.code for p in periods.list_periods(s, company)]
        period = books.period_arg() or (months[-1] if months else None)
        if period is None:
            raise ValidationError("period", "the company has no accounting period yet")
        report = reports.trial_balance(s, company, period)
    return render_template("yinfin/finance/trial_balance.html", company=company, companies=companies,
                           report=report, months=months, period=period)


def trail() -> str:
    raw = (request.args.get("request") or "").strip()
    found = None
    if raw:
        if not raw.isdigit() or not 0 < int(raw) < 2**31:
            raise ValidationError("request", "must be a request number")
        with _reads().unit_of_work(readonly=True) as s:
            req = visible_request(s, me(), int(raw))
            found = reports.to_jsonable(reports.trail(s, req.document_type, str(req.id)))
    return render_template("yinfin/finance/trail.html", trail=found, asked=raw)


def download(fmt: str) -> Response:
    if fmt not in FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(FORMATS)}")
    period = books.period_arg()
    mimetype, ext = FORMATS[fmt]
    with _reads().unit_of_work(readonly=True) as s, tempfile.TemporaryDirectory() as tmp:
        company, _ = books.company(s)
        path = Path(tmp) / f"journal.{ext}"
        exports.export(s, company, fmt, path, period)
        data = path.read_bytes()
    name = f"{company}-journal{'-' + period if period else ''}.{ext}"
    return Response(data, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/reports", "finance_reports", index)
    bp.add_url_rule("/finance/reports/budget-vs-actual", "finance_report_bva", budget_vs_actual)
    bp.add_url_rule("/finance/reports/budget-vs-actual/rows", "finance_report_bva_drill", bva_drill)
    bp.add_url_rule("/finance/reports/trial-balance", "finance_report_tb", trial_balance)
    bp.add_url_rule("/finance/reports/trail", "finance_report_trail", trail)
    bp.add_url_rule("/finance/reports/journal.<fmt>", "finance_export", download)
    add_nav("console.finance_reports", i18n.lazy("Reports"), books.FINANCE_ROLES)
