"""Journal (凭证): the voucher list with its filters, a voucher in the 记账凭证 layout
(prints cleanly), reversing one (红字冲销) with a reason, and manual vouchers (手工凭证)
by form. Each action is the ledger's own (:func:`~yinfin_flow.ledger.reversal.reverse`,
:func:`~yinfin_flow.ledger.manual.post_manual`), in one unit of work, as the API and
the CLI run them."""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.ledger import manual, reversal, vouchers

from .. import i18n
from ..common import db, me
from . import add_nav, books

MAX_LINES = 40
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
REVERSALS = ("only", "none")


def journal() -> str:
    reversals = request.args.get("reversals") or None
    if reversals is not None and reversals not in REVERSALS:
        raise ValidationError("reversals", f"must be one of {', '.join(REVERSALS)}")
    filters = vouchers.VoucherFilter(
        period=books.period_arg(), account=(request.args.get("account") or "").strip()[:64] or None,
        text=(request.args.get("q") or "").strip()[:100] or None, reversals=reversals,
        document_id=(request.args.get("document") or "").strip()[:64] or None)
    with db().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        found = vouchers.list_vouchers(s, company, filters, page=books.page_arg(), page_size=50)
    return render_template("yinfin/finance/vouchers.html", company=company, companies=companies,
                           filters=filters, items=found["items"], pagination=found["pagination"])


def voucher_page(entry_id: int) -> str:
    with db().unit_of_work(readonly=True) as s:
        v = vouchers.voucher(s, entry_id)
    return render_template("yinfin/finance/voucher.html", v=v, today=date.today().isoformat())


def reverse(entry_id: int) -> Response:
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        raise ValidationError("reason", "a reason is required")
    if len(reason) > 300:
        raise ValidationError("reason", "at most 300 characters")
    on = _date(request.form.get("posting_date"), "posting_date", required=False)
    with db().unit_of_work() as s:
        # The API's key: one reversal per voucher whoever asks, wherever from.
        result = reversal.reverse(s, entry_id, key=f"api:reverse:{entry_id}", actor=me().id,
                                  reason=reason, posting_date=on)
    flash(i18n._("Reversed by %(voucher)s.", voucher=result.voucher))
    return redirect(url_for("console.finance_voucher", entry_id=result.entry_id))


def new_manual() -> str | Response:
    with db().unit_of_work(readonly=True) as s:
        company, companies = books.company(s)
        accounts = vouchers.accounts(s, company)
    if request.method == "GET":
        return render_template("yinfin/finance/manual.html", company=company, companies=companies,
                               accounts=accounts, today=date.today().isoformat(),
                               form_key=secrets.token_urlsafe(18), rows=range(4))
    key = request.form.get("form_key") or ""
    if not FORM_KEY.match(key):
        raise ValidationError("form_key", "the form is incomplete; reload the page")
    on = _date(request.form.get("posting_date"), "posting_date", required=True)
    with db().unit_of_work() as s:  # a resent form answers the first voucher (same key)
        result = manual.post_manual(s, key=f"console:manual:{key}", company=company, posting_date=on,
                                    actor=me().id, summary=(request.form.get("summary") or "").strip(),
                                    lines=_posted_lines())
    flash(i18n._("Posted %(voucher)s.", voucher=result.voucher))
    return redirect(url_for("console.finance_voucher", entry_id=result.entry_id))


def _posted_lines() -> list[dict[str, Any]]:
    """``account[] debit[] credit[] cost_centre[] project[] partner[] memo[]`` as the
    ledger's lines; rows with no account and no amount are left out."""
    cols = {name: request.form.getlist(name)
            for name in ("account", "debit", "credit", "cost_centre", "project", "partner", "memo")}
    n = max(len(v) for v in cols.values())
    lines = []
    for i in range(n):
        row = {k: (v[i] if i < len(v) else "").strip() for k, v in cols.items()}
        if not row["account"] and not row["debit"] and not row["credit"]:
            continue
        lines.append({k: v[:200] for k, v in row.items() if v})
    if len(lines) < 2:
        raise ValidationError("lines", "a voucher needs at least two lines")
    if len(lines) > MAX_LINES:
        raise ValidationError("lines", f"at most {MAX_LINES} lines")
    return lines


def _date(raw: str | None, field: str, *, required: bool) -> date | None:
    value = (raw or "").strip()
    if not value:
        if required:
            raise ValidationError(field, "is required (YYYY-MM-DD)")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be a date YYYY-MM-DD") from None


def register(bp: Blueprint) -> None:
    eid = "<int(min=1, max=2147483647):entry_id>"
    bp.add_url_rule("/finance/vouchers", "finance_vouchers", journal)
    bp.add_url_rule("/finance/vouchers/new", "finance_voucher_new", new_manual, methods=["GET", "POST"])
    bp.add_url_rule(f"/finance/vouchers/{eid}", "finance_voucher", voucher_page)
    bp.add_url_rule(f"/finance/vouchers/{eid}/reverse", "finance_voucher_reverse", reverse, methods=["POST"])
    add_nav("console.finance_vouchers", i18n.lazy("Journal"), books.FINANCE_ROLES)
