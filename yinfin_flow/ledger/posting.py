"""Posting: a business event becomes one balanced, numbered, immutable voucher.

:func:`post` works in the caller's session (the approval engine's transaction, via
the ``posting.requested`` event) and never commits. It is idempotent per ``key``:
the same key again returns the first voucher and writes nothing. Bad input (an
unknown or inactive account, cost centre, project or partner; a currency without
a rate for the date; an unbalanced result; a closed period) raises a clear error
naming the field, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.budget.lookup import rate_for
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetItem, Company, CostCentre, Project, Reservation
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry, JournalLine, Partner
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.journal import DocumentLine, Posting, balance, evaluate, render
from yinfin_flow.domain.money import check_currency, parse_amount

from . import masterdata, templates
from .periods import period_for_posting

ZERO = Decimal(0)


@dataclass
class PostResult:
    """What a caller may rely on: the voucher's id and number, and whether it was a replay."""

    entry_id: int
    voucher: str
    period: str
    posting_date: date
    replayed: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id, "voucher": self.voucher, "period": self.period,
            "posting_date": self.posting_date.isoformat(), "replayed": self.replayed,
            "lines": self.lines,
        }


def voucher_label(word: str, period_code: str, number: int) -> str:
    return f"{word}-{period_code}-{number:04d}"


def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.0001")))


def entry_hash(entry: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> str:
    """A SHA-256 over what a voucher says; ``verify`` recomputes it to detect tampering."""
    head = {k: entry[k] for k in (
        "idempotency_key", "company_id", "period_id", "voucher_word", "voucher_number",
        "summary", "currency", "reverses_id",
    )}
    head["posting_date"] = str(entry["posting_date"])
    body = [
        {
            "line_no": ln["line_no"], "kind": ln["kind"], "account_id": ln["account_id"],
            "debit": _d(ln["debit"]), "credit": _d(ln["credit"]), "currency": ln["currency"],
            "amount": _d(ln["amount"]), "rate": str(Decimal(ln["rate"]).normalize()),
            "cost_centre_id": ln["cost_centre_id"], "project_id": ln["project_id"],
            "partner_id": ln["partner_id"], "reservation_id": ln["reservation_id"],
            "budget_amount": _d(ln["budget_amount"]), "memo": ln["memo"],
            "source_ref": ln["source_ref"],
        }
        for ln in sorted(lines, key=lambda x: x["line_no"])
    ]
    raw = json.dumps({"entry": head, "lines": body}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def write_entry(session: Session, entry: dict[str, Any], lines: list[dict[str, Any]]) -> int:
    """Insert a voucher and its lines (hash computed here). Callers hold the period lock."""
    entry = {**entry, "content_hash": entry_hash(entry, lines), "posted_at": utcnow()}
    entry_id = int(session.execute(insert(JournalEntry).values(**entry).returning(JournalEntry.id)).scalar_one())
    session.execute(insert(JournalLine), [{**ln, "entry_id": entry_id} for ln in lines])
    return entry_id


def next_voucher_number(period: AccountingPeriod) -> int:
    """Gap-free: the period row is locked, and the counter commits with the voucher or not at all."""
    period.last_voucher_number += 1
    return period.last_voucher_number


def replayed_result(session: Session, key: str) -> PostResult | None:
    prior = session.scalar(select(JournalEntry).where(JournalEntry.idempotency_key == key))
    if prior is None:
        return None
    period = session.get(AccountingPeriod, prior.period_id)
    assert period is not None
    return PostResult(prior.id, voucher_label(prior.voucher_word, period.code, prior.voucher_number),
                      period.code, prior.posting_date, replayed=True)


def parse_date(value: Any, field_name: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(field_name, "a date like 2026-01-31 is required")


def active_by_code(session: Session, model: Any, company_id: int, code: str | None, field_name: str, label: str) -> Any:
    if not code:
        return None
    row = session.scalar(select(model).where(model.company_id == company_id, model.code == code))
    if row is None:
        raise ValidationError(field_name, f"unknown {label} {code!r}")
    if not row.active:
        raise ValidationError(field_name, f"{label} {code!r} is inactive")
    return row


def post(
    session: Session,
    *,
    key: str,
    template: str,
    company: str,
    posting_date: date | str,
    actor: str,
    document: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    workflows_dir: Path | None = None,
) -> PostResult:
    """Post a business event through its template; see the module docstring for guarantees."""
    if not key or not isinstance(key, str) or len(key) > 200:
        raise ValidationError("key", "an idempotency key of up to 200 characters is required")
    prior = replayed_result(session, key)
    if prior is not None:
        return prior
    if not actor:
        raise ValidationError("actor", "who is posting is required")
    on = parse_date(posting_date, "posting_date")
    comp = session.scalar(select(Company).where(Company.code == company))
    if comp is None or not comp.active:
        raise ValidationError("company", f"unknown or inactive company {company!r}")
    tpl = templates.get(template, workflows_dir)
    doc = dict(document or {})
    if not doc.get("type") or not doc.get("id"):
        raise ValidationError("document", "type and id are required")
    if not isinstance(lines, Sequence) or not lines:
        raise ValidationError("lines", "at least one line is required")

    doc_lines: list[DocumentLine] = []
    rates: dict[str, Decimal] = {}
    refs: set[str] = set()
    for i, raw in enumerate(lines):
        f = f"lines[{i}]"
        ref = str(raw.get("ref") or "").strip()
        if not ref:
            raise ValidationError(f"{f}.ref", "is required")
        if ref in refs:
            raise ValidationError(f"{f}.ref", f"{ref!r} is used by another line")
        refs.add(ref)
        account = raw.get("account")
        item_code = raw.get("item")
        if item_code:
            item = active_by_code(session, BudgetItem, comp.id, item_code, f"{f}.item", "budget item")
            account = account or item.account_code
        if not account:
            raise ValidationError(f"{f}.account", "no account given and the budget item has no account_code")
        currency = check_currency(raw.get("currency"), f"{f}.currency")
        amount = parse_amount(raw.get("amount"), currency, f"{f}.amount", positive=True)
        tax_raw = raw.get("tax_amount")
        tax = ZERO if tax_raw in (None, "") else parse_amount(tax_raw, currency, f"{f}.tax_amount", signed=False)
        if tax < 0:
            raise ValidationError(f"{f}.tax_amount", "must not be negative")
        active_by_code(session, CostCentre, comp.id, raw.get("cost_centre"), f"{f}.cost_centre", "cost centre")
        active_by_code(session, Project, comp.id, raw.get("project"), f"{f}.project", "project")
        if currency != comp.base_currency and currency not in rates:
            rates[currency] = rate_for(session, currency, comp.base_currency, on, f"{f}.currency")
        res_id = raw.get("reservation_id")
        if res_id is not None:
            if isinstance(res_id, bool) or not str(res_id).isdigit():
                raise ValidationError(f"{f}.reservation_id", f"{res_id!r} is not a reservation id")
            res = session.get(Reservation, int(res_id))
            if res is None:
                raise ValidationError(f"{f}.reservation_id", f"no reservation {res_id}")
            if (res.document_type, res.document_id) != (str(doc["type"]), str(doc["id"])):
                raise ValidationError(f"{f}.reservation_id", f"reservation {res_id} belongs to another document")
        doc_lines.append(DocumentLine(
            ref=ref, account=str(account), currency=currency, amount=amount, tax_amount=tax,
            cost_centre=raw.get("cost_centre") or None, project=raw.get("project") or None,
            memo=raw.get("memo") or None, reservation_id=int(res_id) if res_id is not None else None,
        ))

    settings = masterdata.settings_for(session, comp.id)
    drafts = balance(evaluate(tpl, doc, doc_lines), comp.base_currency, rates, settings.rounding_account)

    partner = None
    if any(tl.partner == "document" for tl in tpl.lines):
        if not doc.get("partner"):
            raise ValidationError("document.partner", f"template {tpl.name} posts to a partner: name one")
        partner = active_by_code(session, Partner, comp.id, doc["partner"], "document.partner", "partner")
    line_accounts = {ln.ref: (i, ln.account) for i, ln in enumerate(doc_lines)}

    rows = resolve_lines(session, comp.id, drafts, tpl.name, line_accounts, partner)
    period, effective = period_for_posting(session, comp.id, on, settings.closed_period_policy)
    # A concurrent retry of the same key waited on the period lock: now it sees the
    # first one's voucher (READ COMMITTED) and returns it instead of failing on the key.
    prior = replayed_result(session, key)
    if prior is not None:
        return prior

    # Budget actuals come from postings: move each reservation-carrying line on now,
    # in this transaction, keyed by posting key + line ref (idempotent like the voucher).
    budgets = Budgets(session)
    for row, draft in zip(rows, drafts, strict=True):
        if draft.reservation_id is None:
            continue
        res = session.get(Reservation, draft.reservation_id)
        assert res is not None
        before = res.actual
        budgets.advance(
            f"{key}:{draft.source_ref}", draft.reservation_id, "actual", abs(draft.amount),
            actor=actor, currency=draft.currency, step="posting",
        )
        session.refresh(res)
        row["budget_amount"] = res.actual - before

    number = next_voucher_number(period)
    word = tpl.voucher_word or settings.voucher_word
    entry = {
        "idempotency_key": key, "company_id": comp.id, "period_id": period.id,
        "voucher_word": word, "voucher_number": number, "posting_date": effective,
        "document_date": on, "template": tpl.name, "document_type": str(doc["type"])[:32],
        "document_id": str(doc["id"])[:64],
        "summary": (render(tpl.summary, doc, None) or tpl.name)[:400],
        "currency": comp.base_currency, "reverses_id": None, "posted_by": actor,
    }
    entry_id = write_entry(session, entry, rows)
    label = voucher_label(word, period.code, number)
    events.publish(session, "journal.posted", entry_id=entry_id, key=key, company=comp.code,
                   voucher=label, document=doc)
    return PostResult(entry_id, label, period.code, effective,
                      lines=[{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows])


def resolve_lines(
    session: Session, company_id: int, drafts: Sequence[Posting], template: str,
    line_accounts: Mapping[str, tuple[int, str]], partner: Partner | None,
) -> list[dict[str, Any]]:
    """Drafts → line rows with ids; accounts must exist, be active leaves, and take the currency."""
    cc_ids: dict[str, int] = {}
    proj_ids: dict[str, int] = {}
    rows = []
    for n, d in enumerate(drafts, start=1):
        origin = line_accounts.get(d.source_ref or "")
        if origin is not None and origin[1] == d.account:
            f = f"lines[{origin[0]}].account"
        elif d.kind == "rounding":
            f = "rounding_account"
        else:
            f = f"template {template}: account"
        acc = masterdata.account(session, company_id, d.account, f)
        if acc.currency is not None and acc.currency != d.currency:
            raise ValidationError(f, f"account {acc.code} is kept in {acc.currency}, not {d.currency}")
        if d.cost_centre and d.cost_centre not in cc_ids:
            cc_ids[d.cost_centre] = session.scalar(select(CostCentre.id).where(
                CostCentre.company_id == company_id, CostCentre.code == d.cost_centre))
        if d.project and d.project not in proj_ids:
            proj_ids[d.project] = session.scalar(select(Project.id).where(
                Project.company_id == company_id, Project.code == d.project))
        base = d.base_amount if d.base_amount is not None else d.amount
        debit_side = d.amount > 0 if d.kind == "normal" else base > 0
        rows.append({
            "line_no": n, "kind": d.kind, "account_id": acc.id,
            "debit": base if debit_side else ZERO, "credit": ZERO if debit_side else -base,
            "currency": d.currency, "amount": d.amount, "rate": d.rate,
            "cost_centre_id": cc_ids.get(d.cost_centre) if d.cost_centre else None,
            "project_id": proj_ids.get(d.project) if d.project else None,
            "partner_id": partner.id if (d.partner and partner is not None) else None,
            "memo": (d.memo or None) and d.memo[:400], "source_ref": d.source_ref,
            "reservation_id": d.reservation_id, "budget_amount": None,
        })
    return rows
