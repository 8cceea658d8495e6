"""Exports: a beancount ledger (checked by the real ``bean-check``) and the voucher
import layout Chinese ERPs (Kingdee / Yonyou style) accept, as CSV or XLSX.

Both read the same :func:`voucher_rows`: every posted line with its voucher,
account, dimensions and partner, in voucher order.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import CostCentre, Project
from yinfin_flow.db.models.ledger import (
    Account,
    AccountingPeriod,
    JournalEntry,
    JournalLine,
    Partner,
)
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.money import MINOR_UNITS

from .periods import parse_code
from .posting import voucher_label

ROOTS = {"asset": "Assets", "liability": "Liabilities", "equity": "Equity",
         "income": "Income", "expense": "Expenses"}

#: The voucher import columns, in order (documented in the README).
VOUCHER_COLUMNS = [
    "凭证日期", "会计年度", "会计期间", "凭证字", "凭证号", "分录号", "摘要", "科目编码", "科目名称",
    "币别", "汇率", "原币金额", "借方", "贷方", "核算项目-部门", "核算项目-项目", "核算项目-往来单位",
    "制单人", "业务单据", "参考信息",
]


@dataclass(frozen=True)
class VoucherRow:
    entry_id: int
    voucher: str
    word: str
    number: int
    period: str
    posting_date: date
    summary: str
    key: str
    document: str | None
    reverses_id: int | None
    posted_by: str
    base_currency: str
    line_no: int
    kind: str
    account_code: str
    account_erp_code: str
    account_name: str
    account_type: str
    debit: Decimal
    credit: Decimal
    currency: str
    amount: Decimal
    rate: Decimal
    cost_centre: str | None
    project: str | None
    partner: str | None
    memo: str | None


def voucher_rows(
    session: Session, company: str, period: str | None = None, *, entry_id: int | None = None,
) -> list[VoucherRow]:
    """Every voucher line of ``company`` (one ``YYYY-MM`` period, or all; or one voucher), in voucher order."""
    comp = company_by_code(session, company)
    cc, pj, pt = aliased(CostCentre), aliased(Project), aliased(Partner)
    stmt = (
        select(JournalEntry, AccountingPeriod.code, JournalLine, Account,
               func.coalesce(cc.external_code, cc.code), func.coalesce(pj.external_code, pj.code),
               func.coalesce(pt.external_code, pt.code))
        .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .join(Account, Account.id == JournalLine.account_id)
        .outerjoin(cc, cc.id == JournalLine.cost_centre_id)
        .outerjoin(pj, pj.id == JournalLine.project_id)
        .outerjoin(pt, pt.id == JournalLine.partner_id)
        .where(JournalEntry.company_id == comp.id)
        .order_by(AccountingPeriod.start_date, JournalEntry.voucher_number, JournalLine.line_no)
    )
    if period:
        parse_code(period)
        stmt = stmt.where(AccountingPeriod.code == period)
    if entry_id is not None:
        stmt = stmt.where(JournalEntry.id == entry_id)
    out = []
    for e, pcode, ln, acc, cc_code, pj_code, pt_code in session.execute(stmt):
        out.append(VoucherRow(
            entry_id=e.id, voucher=voucher_label(e.voucher_word, pcode, e.voucher_number),
            word=e.voucher_word, number=e.voucher_number, period=pcode, posting_date=e.posting_date,
            summary=e.summary, key=e.idempotency_key,
            document=f"{e.document_type}:{e.document_id}" if e.document_type else None,
            reverses_id=e.reverses_id, posted_by=e.posted_by, base_currency=e.currency,
            line_no=ln.line_no, kind=ln.kind, account_code=acc.code,
            account_erp_code=acc.external_code or acc.code, account_name=acc.name,
            account_type=acc.type, debit=ln.debit, credit=ln.credit, currency=ln.currency,
            amount=ln.amount, rate=ln.rate, cost_centre=cc_code, project=pj_code,
            partner=pt_code, memo=ln.memo,
        ))
    return out


# -- beancount ----------------------------------------------------------------------


def beancount_account(row: VoucherRow) -> str:
    """``Expenses:6602-03``: the type's root and the code (beancount allows digits first)."""
    code = re.sub(r"[^0-9A-Za-z]+", "-", row.account_code).strip("-") or "X"
    if not code[0].isalnum():
        code = f"A{code}"
    return f"{ROOTS[row.account_type]}:{code[0].upper()}{code[1:]}"


def _q(text: str | None) -> str:
    return '"' + (text or "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _amt(value: Decimal, currency: str) -> str:
    """The amount at its currency's minor units when that is exact (it is for posted lines)."""
    q = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    return str(value.quantize(q) if value == value.quantize(q) else value)


def _link(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-_/.]+", "-", text).strip("-")


def to_beancount(rows: Iterable[VoucherRow], title: str = "yinfin-flow") -> str:
    """A complete beancount file: options, one ``open`` per account used, one transaction per voucher.

    Foreign-currency lines carry their base value as a total price (``@@``), so each
    transaction balances in the base currency exactly as the voucher does.
    """
    rows = list(rows)
    base = rows[0].base_currency if rows else "CNY"
    out = [f"option \"title\" {_q(title)}", f"option \"operating_currency\" \"{base}\"", ""]
    first_use: dict[str, tuple[date, VoucherRow]] = {}
    for r in rows:
        name = beancount_account(r)
        if name not in first_use or r.posting_date < first_use[name][0]:
            first_use[name] = (r.posting_date, r)
    for name, (on, r) in sorted(first_use.items()):
        out.append(f"{on.isoformat()} open {name}")
        out.append(f"  name: {_q(r.account_name)}")
        out.append(f"  code: {_q(r.account_code)}")
    out.append("")
    current = None
    for r in rows:
        if r.entry_id != current:
            current = r.entry_id
            tags = " #reversal" if r.reverses_id else ""
            links = f" ^{_link(r.document)}" if r.document else ""
            out.append("")
            out.append(f"{r.posting_date.isoformat()} * {_q(r.voucher)} {_q(r.summary)}{tags}{links}")
            out.append(f"  voucher: {_q(r.voucher)}")
            out.append(f"  key: {_q(r.key)}")
            out.append(f"  posted_by: {_q(r.posted_by)}")
        value = r.debit - r.credit
        if r.currency == r.base_currency:
            posting = f"  {beancount_account(r)}  {_amt(value, r.currency)} {r.currency}"
        else:
            posting = (f"  {beancount_account(r)}  {_amt(r.amount, r.currency)} {r.currency}"
                       f" @@ {_amt(abs(value), r.base_currency)} {r.base_currency}")
        out.append(posting)
        for key, meta in (("cost_centre", r.cost_centre), ("project", r.project),
                          ("partner", r.partner), ("memo", r.memo)):
            if meta:
                out.append(f"    {key}: {_q(meta)}")
    return "\n".join(out) + "\n"


# -- ERP voucher import (CSV / XLSX) ----------------------------------------------------


def voucher_table(rows: Iterable[VoucherRow]) -> list[list[object]]:
    """Rows in :data:`VOUCHER_COLUMNS` order. ``原币金额`` is signed like its side (red-ink negative)."""
    table: list[list[object]] = []
    for r in rows:
        debit_side = r.debit != 0 or (r.credit == 0 and r.amount >= 0)
        original = r.amount if debit_side else -r.amount
        table.append([
            r.posting_date.isoformat(), int(r.period[:4]), int(r.period[5:]), r.word, r.number,
            r.line_no, r.memo or r.summary if r.kind == "normal" else (r.memo or ""),
            r.account_erp_code, r.account_name, r.currency, str(r.rate.normalize()), original,
            r.debit if debit_side else Decimal(0), Decimal(0) if debit_side else r.credit,
            r.cost_centre or "", r.project or "", r.partner or "", r.posted_by,
            r.document or "", r.key,
        ])
    return table


def _cell(v: object) -> str:
    """Money at two decimals when exact (every posted amount is); anything finer as it is."""
    if isinstance(v, Decimal):
        cents = v.quantize(Decimal("0.01"))
        return format(cents if cents == v else v.normalize(), "f")
    return str(v)


def to_csv(rows: Iterable[VoucherRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(VOUCHER_COLUMNS)
    for row in voucher_table(rows):
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


def write_xlsx(rows: Iterable[VoucherRow], path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "凭证"
    ws.append(VOUCHER_COLUMNS)
    money_cols = {VOUCHER_COLUMNS.index(c) + 1 for c in ("原币金额", "借方", "贷方")}
    for row in voucher_table(rows):
        ws.append(row)
        for col in money_cols:
            ws.cell(ws.max_row, col).number_format = "#,##0.00;-#,##0.00"
    wb.save(path)


def export(session: Session, company: str, fmt: str, path: Path, period: str | None = None) -> int:
    """Write ``company``'s journal (``period`` or all) as ``fmt`` to ``path``; returns vouchers written."""
    rows = voucher_rows(session, company, period)
    if fmt == "beancount":
        path.write_text(to_beancount(rows, f"{company} journal"), encoding="utf-8")
    elif fmt == "csv":
        path.write_text(to_csv(rows), encoding="utf-8-sig")  # BOM: Excel/ERPs read UTF-8 right
    elif fmt == "xlsx":
        write_xlsx(rows, path)
    else:
        raise ValidationError("format", "must be beancount, csv or xlsx")
    return len({r.entry_id for r in rows})
