"""Manual vouchers (手工凭证): opening balances, accruals, corrections an accountant enters.

Same guarantees as template postings (balanced per currency and in base with an
explicit rounding line, active leaf accounts, open period, gap-free number,
idempotent per ``key``), but the lines name their account and side directly.
Manual vouchers never touch budget reservations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.budget.lookup import rate_for
from yinfin_flow.db.models import Company, CostCentre, Project
from yinfin_flow.db.models.ledger import Partner
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.journal import Posting, balance
from yinfin_flow.domain.money import check_currency, parse_amount

from . import masterdata
from .periods import period_for_posting
from .posting import (
    PostResult,
    active_by_code,
    next_voucher_number,
    parse_date,
    replayed_result,
    resolve_lines,
    voucher_label,
    write_entry,
)


def post_manual(
    session: Session,
    *,
    key: str,
    company: str,
    posting_date: date | str,
    actor: str,
    summary: str,
    lines: Sequence[Mapping[str, Any]],
) -> PostResult:
    """Post a voucher whose lines are ``{account, debit | credit, currency, cost_centre,
    project, partner, memo}``; exactly one of debit/credit per line, positive."""
    if not key:
        raise ValidationError("key", "an idempotency key is required")
    prior = replayed_result(session, key)
    if prior is not None:
        return prior
    if not actor:
        raise ValidationError("actor", "who is posting is required")
    if not summary or not summary.strip():
        raise ValidationError("summary", "a summary (摘要) is required")
    on = parse_date(posting_date, "posting_date")
    comp = session.scalar(select(Company).where(Company.code == company))
    if comp is None or not comp.active:
        raise ValidationError("company", f"unknown or inactive company {company!r}")
    drafts: list[Posting] = []
    rates: dict[str, Decimal] = {}
    partners: dict[int, Partner] = {}
    for i, raw in enumerate(lines):
        f = f"lines[{i}]"
        currency = check_currency(raw.get("currency") or comp.base_currency, f"{f}.currency")
        has_debit, has_credit = raw.get("debit") not in (None, ""), raw.get("credit") not in (None, "")
        if has_debit == has_credit:
            raise ValidationError(f"{f}.debit", "give exactly one of debit or credit")
        side = "debit" if has_debit else "credit"
        value = parse_amount(raw.get(side), currency, f"{f}.{side}", positive=True)
        if not raw.get("account"):
            raise ValidationError(f"{f}.account", "is required")
        active_by_code(session, CostCentre, comp.id, raw.get("cost_centre"), f"{f}.cost_centre", "cost centre")
        active_by_code(session, Project, comp.id, raw.get("project"), f"{f}.project", "project")
        partner = active_by_code(session, Partner, comp.id, raw.get("partner"), f"{f}.partner", "partner")
        if partner is not None:
            partners[i] = partner
        if currency != comp.base_currency and currency not in rates:
            rates[currency] = rate_for(session, currency, comp.base_currency, on, f"{f}.currency")
        drafts.append(Posting(
            account=str(raw["account"]), currency=currency,
            amount=value if side == "debit" else -value,
            cost_centre=raw.get("cost_centre") or None, project=raw.get("project") or None,
            partner=raw.get("partner") or None, memo=raw.get("memo") or None, source_ref=str(i),
        ))
    settings = masterdata.settings_for(session, comp.id)
    balanced = balance(drafts, comp.base_currency, rates, settings.rounding_account)
    rows = resolve_lines(session, comp.id, balanced, "manual",
                         {str(i): (i, d.account) for i, d in enumerate(drafts)}, None)
    for row, d in zip(rows, balanced, strict=True):
        if d.kind == "normal" and d.source_ref is not None and int(d.source_ref) in partners:
            row["partner_id"] = partners[int(d.source_ref)].id
    period, effective = period_for_posting(session, comp.id, on, settings.closed_period_policy)
    # A concurrent retry of the same key waited on the period lock: now it sees the
    # first one's voucher (READ COMMITTED) and returns it instead of failing on the key.
    prior = replayed_result(session, key)
    if prior is not None:
        return prior
    number = next_voucher_number(period)
    entry = {
        "idempotency_key": key, "company_id": comp.id, "period_id": period.id,
        "voucher_word": settings.voucher_word, "voucher_number": number, "posting_date": effective,
        "document_date": on, "template": None, "document_type": "manual", "document_id": key[:64],
        "summary": summary.strip()[:400], "currency": comp.base_currency, "reverses_id": None,
        "posted_by": actor,
    }
    entry_id = write_entry(session, entry, rows)
    label = voucher_label(settings.voucher_word, period.code, number)
    events.publish(session, "journal.posted", entry_id=entry_id, key=key, company=comp.code, voucher=label)
    return PostResult(entry_id, label, period.code, effective)
