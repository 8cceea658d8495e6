"""Periods (会计期间): a company's months with their status, closing through a month in
one action (:func:`yinfin_flow.ledger.periods.close_through`, as ``period close
--through`` and ``POST /api/v1/periods/close``), reopening the latest closed month, and
what blocks a close, named (vouchers the ERP does not hold yet)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, url_for

from yinfin_flow.ledger import periods

from .. import i18n
from ..common import db, me
from . import add_nav, books


def periods_page() -> str:
    with db().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        months = periods.overview(s, company)
    open_months = [m for m in months if m["status"] == "open"]
    closed = [m for m in months if m["status"] == "closed"]
    return render_template("yinfin/finance/periods.html", company=company, companies=companies,
                           months=months, first_open=open_months[0]["code"] if open_months else None,
                           latest_closed=closed[-1]["code"] if closed else None)


def close_through() -> Response:
    through = books.period_arg("through", required=True)
    assert through is not None
    with db().unit_of_work() as s:
        company, _ = books.company(s)
        closed = periods.close_through(s, company, through, actor=me().id)
        names = [p.code for p in closed]
    if names:
        flash(i18n._("Closed %(months)s.", months=", ".join(names)))
    else:
        flash(i18n._("Every month through %(month)s was already closed.", month=through))
    return redirect(url_for("console.finance_periods", company=company))


def reopen(code: str) -> Response:
    month = books.period_arg_value(code, "period")
    with db().unit_of_work() as s:
        company, _ = books.company(s)
        periods.open_period(s, company, month)
    flash(i18n._("Reopened %(month)s.", month=month))
    return redirect(url_for("console.finance_periods", company=company))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/periods", "finance_periods", periods_page)
    bp.add_url_rule("/finance/periods/close", "finance_period_close", close_through, methods=["POST"])
    bp.add_url_rule("/finance/periods/<string(length=7):code>/reopen", "finance_period_reopen", reopen,
                    methods=["POST"])
    add_nav("console.finance_periods", i18n.lazy("Periods"), books.FINANCE_ROLES)
