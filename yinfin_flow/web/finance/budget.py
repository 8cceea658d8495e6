"""Budget (预算): a period's line tree with buckets, utilisation, control mode and where the
rule comes from, two charts (utilisation by cost centre; budget, committed and actual by
month), and a line's page (entries and movements, open reservations, journals, rules).

Read-only: everything is read from the read database (``state(app).reads``), through the
budget package's reads and the API's line reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request

from yinfin_flow.api.budget import reads as api_reads
from yinfin_flow.budget import overview, setup
from yinfin_flow.budget import rule_changes as rc
from yinfin_flow.domain.errors import ValidationError

from ..i18n import lazy
from . import add_nav
from .shared import default_rule, flow, form_text, path_to, text_amount

ENTRIES_PAGE = 50
READ_ROLES = frozenset({"finance", "admin"})


def _period_choice(periods: list[dict[str, Any]]) -> str:
    """The period asked for, else this month's, else the first one."""
    codes = [p["code"] for p in periods]
    wanted = form_text("period")
    if wanted is not None:
        if wanted not in codes:
            raise ValidationError("period", f"no budget period {wanted!r} for this company")
        return wanted
    this_month = datetime.now(UTC).strftime("%Y-%m")
    return this_month if this_month in codes else (codes[0] if codes else "")


def budget_page() -> str:
    with flow().reads.unit_of_work(readonly=True) as s:
        companies = overview.companies(s)
        company = form_text("company") or (companies[0] if companies else None)
        if company is not None and company not in companies:
            raise ValidationError("company", f"no company {company!r}")
        periods = overview.periods(s, company) if company else []
        period = _period_choice(periods)
        f = overview.TreeFilter(company=company or "", period=period, cost_centre=form_text("cost_centre"),
                                item=form_text("item"), project=form_text("project"))
        all_rows = overview.tree(s, f, default_rule(s)) if company and period else []
        year = next((p["fiscal_year"] for p in periods if p["code"] == period), None)
        months = overview.by_month(s, company, year) if company and year else []
    rows = overview.matching(all_rows, f)
    choices = {key: sorted({r[key] for r in all_rows if r[key]}) for key in ("cost_centre", "item", "project")}
    centres = overview.by_cost_centre(rows)
    charts = {
        "usage": {"labels": [c["cost_centre"] for c in centres],
                  "values": [c["usage_percent"] or "0" for c in centres],
                  "name": str(lazy("Utilisation %"))},
        "months": {"labels": [m["period"] for m in months],
                   "series": [
                       {"name": str(lazy("Budget")), "values": [text_amount(m["budget"], m["currency"]) for m in months]},
                       {"name": str(lazy("Committed")),
                        "values": [text_amount(m["committed"], m["currency"]) for m in months]},
                       {"name": str(lazy("Actual")), "values": [text_amount(m["actual"], m["currency"]) for m in months]},
                   ]},
    }
    return render_template("yinfin/finance/budget.html", rows=rows, f=f, companies=companies, periods=periods,
                           choices=choices, centres=centres, charts=charts)


def line_page(line_id: int) -> str:
    page = request.args.get("page") or "1"
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise ValidationError("page", "must be a whole number from 1")
    with flow().reads.unit_of_work(readonly=True) as s:
        detail = api_reads.line_detail(s, line_id, default_rule(s))
        entries = api_reads.entries(s, line_id, int(page), ENTRIES_PAGE)
        held = overview.open_reservations(s, line_id)
        journals = overview.journals(s, line_id)
        _total, rules = rc.list_changes(s, line_id=line_id, page=1, page_size=100)
        own_rule = rc.rule_snapshot(setup.own_rule(s, line_id))
        docs = {(e["document_type"], e["document_id"]) for e in entries["items"] if e["document_type"]}
        docs |= {(r["document_type"], r["document_id"]) for r in held}
        vouchers = overview.vouchers_of(s, docs)
        rule_from = None
        if detail["rule"]["inherited"] and detail["rule"]["defined_on_line_id"]:
            rule_from = api_reads.require_line(s, detail["rule"]["defined_on_line_id"]).code
    return render_template("yinfin/finance/line.html", line=detail, entries=entries, held=held,
                           journals=journals, rules=rules, own_rule=own_rule, vouchers=vouchers, rule_from=rule_from,
                           page=int(page))


BASIS = {"period": lazy("this period"), "cumulative": lazy("year to date (cumulative)"),
         "annual": lazy("whole year"), "overall": lazy("all periods")}
BUCKETS = {"budget": lazy("budget"), "pre_encumbered": lazy("pre-encumbered"), "encumbered": lazy("encumbered"),
           "actual": lazy("actual")}
LINE_STATUS = {"open": lazy("open"), "hold": lazy("on hold"), "closed": lazy("closed")}


def template_words() -> dict[str, Any]:
    """Words and links the budget side's templates share."""
    return {
        "basis_word": lambda key: str(BASIS.get(key, key)),
        "line_status": lambda key: str(LINE_STATUS.get(key, key)),
        "bucket_word": lambda key: str(BUCKETS.get(key, key)),
        "voucher_path": lambda voucher_id: path_to(f"/finance/vouchers/{int(voucher_id)}"),
    }


def register(bp: Blueprint) -> None:
    bp.context_processor(template_words)
    bp.add_url_rule("/finance/budget", "finance_budget", budget_page)
    bp.add_url_rule("/finance/budget/lines/<int(min=1, max=2147483647):line_id>", "finance_line", line_page)
    add_nav("console.finance_budget", "Budget", READ_ROLES)
