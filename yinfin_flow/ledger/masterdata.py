"""Accounting master data: chart of accounts, partners, cost centres, projects, settings.

Imports (CSV or XLSX) upsert by code: every row is checked first and every bad
row is reported at once (:class:`ImportRejected`); if any row is bad nothing is
written. Records are deactivated (``active = false``), never deleted, so vouchers
that reference them stay readable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget.io_tables import check_file
from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import Company, CostCentre, Project
from yinfin_flow.db.models.ledger import (
    ACCOUNT_TYPES,
    PARTNER_KINDS,
    Account,
    LedgerSettings,
    Partner,
)
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits, check_cells
from yinfin_flow.domain.money import check_currency

KINDS = ("accounts", "partners", "cost_centres", "projects")

# Column names accepted per kind (Chinese headers as ERPs export them map to these).
HEADER_ALIASES = {
    "科目编码": "code", "编码": "code", "代码": "code", "科目名称": "name", "名称": "name",
    "类别": "type", "科目类别": "type", "币别": "currency", "上级": "parent", "上级科目": "parent",
    "外部编码": "external_code", "ERP编码": "external_code", "启用": "active", "类型": "kind",
    "负责人": "manager",
}
COLUMNS = {
    "accounts": ("code", "name", "type", "currency", "parent", "external_code", "active"),
    "partners": ("code", "name", "kind", "external_code", "active"),
    "cost_centres": ("code", "name", "parent", "manager", "external_code", "active"),
    "projects": ("code", "name", "external_code", "active"),
}


class ImportRejected(DomainError):
    """Some rows are bad; ``details['errors']`` lists every one (row, column, problem)."""

    code = "import_rejected"
    http_status = 422


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "problem": self.problem}

    def __str__(self) -> str:
        return f"row {self.row}: {self.column}: {self.problem}"


# -- single records -----------------------------------------------------------------


def settings_for(session: Session, company_id: int) -> LedgerSettings:
    row = session.get(LedgerSettings, company_id)
    return row if row is not None else LedgerSettings(
        company_id=company_id, rounding_account=None, closed_period_policy="refuse", voucher_word="记"
    )


def configure(
    session: Session, company_code: str, *, rounding_account: str | None = None,
    closed_period_policy: str | None = None, voucher_word: str | None = None,
) -> LedgerSettings:
    """Set the company's rounding account, closed-period policy (refuse | next_open), voucher word."""
    comp = company_by_code(session, company_code)
    row = session.get(LedgerSettings, comp.id)
    if row is None:
        row = LedgerSettings(company_id=comp.id, closed_period_policy="refuse", voucher_word="记")
        session.add(row)
    if rounding_account is not None:
        acc = account(session, comp.id, rounding_account, "rounding_account")
        row.rounding_account = acc.code
    if closed_period_policy is not None:
        if closed_period_policy not in ("refuse", "next_open"):
            raise ValidationError("closed_period_policy", "must be refuse or next_open")
        row.closed_period_policy = closed_period_policy
    if voucher_word is not None:
        if not voucher_word.strip() or len(voucher_word) > 8:
            raise ValidationError("voucher_word", "must be 1 to 8 characters")
        row.voucher_word = voucher_word.strip()
    session.flush()
    return row


def account(session: Session, company_id: int, code: str, field: str = "account") -> Account:
    """An active leaf account of the company; anything else is a clear error on ``field``."""
    row = session.scalar(select(Account).where(Account.company_id == company_id, Account.code == code))
    if row is None:
        raise ValidationError(field, f"unknown account {code!r}")
    if not row.active:
        raise ValidationError(field, f"account {code!r} is inactive")
    has_child = session.scalar(select(Account.id).where(Account.parent_id == row.id).limit(1))
    if has_child is not None:
        raise ValidationError(field, f"account {code!r} has sub-accounts: post to a leaf account (末级科目)")
    return row


def add_account(
    session: Session, company_code: str, code: str, name: str, type: str, *,
    currency: str | None = None, parent: str | None = None, external_code: str | None = None,
) -> Account:
    rows = [{"code": code, "name": name, "type": type, "currency": currency or "",
             "parent": parent or "", "external_code": external_code or ""}]
    import_rows(session, company_code, "accounts", rows)
    comp = company_by_code(session, company_code)
    result = session.scalar(select(Account).where(Account.company_id == comp.id, Account.code == code))
    assert result is not None
    return result


def add_partner(session: Session, company_code: str, code: str, name: str, kind: str,
                external_code: str | None = None) -> Partner:
    import_rows(session, company_code, "partners",
                [{"code": code, "name": name, "kind": kind, "external_code": external_code or ""}])
    comp = company_by_code(session, company_code)
    result = session.scalar(select(Partner).where(Partner.company_id == comp.id, Partner.code == code))
    assert result is not None
    return result


def deactivate(session: Session, company_code: str, kind: str, code: str) -> None:
    """Mark a record inactive: it can no longer be posted to, but history keeps it."""
    if kind not in KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}")
    comp = company_by_code(session, company_code)
    model = _MODELS[kind]
    if session.scalar(select(model.id).where(model.company_id == comp.id, model.code == code)) is None:
        raise ValidationError("code", f"unknown {kind[:-1].replace('_', ' ')} {code!r}")
    import_rows(session, company_code, kind, [{"code": code, "active": "false"}])


# -- imports ------------------------------------------------------------------------


def read_table(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[dict[str, str]]:
    """Rows of a CSV (UTF-8, BOM allowed) or XLSX file (first sheet) as header → text,
    within ``limits`` (file size, cell length)."""
    check_file(path, limits)
    rows = _read_rows(path)
    check_cells(list(enumerate(rows, start=2)), limits)
    return rows


def _read_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
        wb.close()
        if not rows:
            return []
        header = [str(h).strip() if h is not None else "" for h in rows[0]]
        return [
            {header[i]: "" if v is None else str(v).strip() for i, v in enumerate(r) if i < len(header)}
            for r in rows[1:]
            if any(v not in (None, "") for v in r)
        ]
    if path.suffix.lower() != ".csv":
        raise ValidationError("file", f"{path.name}: use a .csv or .xlsx file")
    text = path.read_text(encoding="utf-8-sig")
    return [
        {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


def _normalise(row: dict[str, Any]) -> dict[str, str]:
    return {HEADER_ALIASES.get(k, k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in row.items()}


def _flag(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("", ):
        return None
    if v in ("1", "true", "yes", "y", "是", "启用", "active"):
        return True
    if v in ("0", "false", "no", "n", "否", "停用", "禁用", "inactive"):
        return False
    raise ValueError(value)


_MODELS: dict[str, Any] = {"accounts": Account, "partners": Partner, "cost_centres": CostCentre, "projects": Project}
_TYPE_ALIASES = {"资产": "asset", "负债": "liability", "权益": "equity", "所有者权益": "equity",
                 "收入": "income", "损益": "expense", "费用": "expense", "成本": "expense"}
_KIND_ALIASES = {"职员": "employee", "员工": "employee", "供应商": "vendor", "客户": "customer"}


def import_rows(
    session: Session, company_code: str, kind: str, rows: Iterable[dict[str, Any]],
) -> dict[str, int]:
    """Upsert ``rows`` of ``kind`` by code, all or nothing. Returns created/updated counts.

    A row for an existing code changes only the columns it has. Rows are numbered
    from 2, as a spreadsheet user sees them under the header.
    """
    if kind not in KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}")
    comp: Company = company_by_code(session, company_code)
    model = _MODELS[kind]
    existing = {r.code: r for r in session.scalars(select(model).where(model.company_id == comp.id))}
    rows = [_normalise(r) for r in rows]
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    parsed: list[dict[str, Any]] = []
    for n, row in enumerate(rows, start=2):
        unknown = sorted(set(row) - set(COLUMNS[kind]) - {""})
        for col in unknown:
            errors.append(RowError(n, col, f"unknown column (expected {', '.join(COLUMNS[kind])})"))
        errs_before = len(errors)
        out: dict[str, Any] = {}
        code = row.get("code", "")
        if not code:
            errors.append(RowError(n, "code", "is required"))
        elif len(code) > 64:
            errors.append(RowError(n, "code", "is longer than 64 characters"))
        elif code in seen:
            errors.append(RowError(n, "code", f"{code!r} appears again (first on row {seen[code]})"))
        else:
            seen[code] = n
        out["code"] = code
        is_new = code not in existing
        if "name" in row or is_new:
            if not row.get("name"):
                if is_new:
                    errors.append(RowError(n, "name", "is required for a new record"))
            else:
                out["name"] = row["name"][:200]
        if kind == "accounts":
            t = row.get("type", "")
            t = _TYPE_ALIASES.get(t, t.lower())
            if t:
                if t not in ACCOUNT_TYPES:
                    errors.append(RowError(n, "type", f"must be one of {', '.join(ACCOUNT_TYPES)}"))
                out["type"] = t
            elif is_new:
                errors.append(RowError(n, "type", "is required for a new account"))
            if row.get("currency"):
                try:
                    out["currency"] = check_currency(row["currency"])
                except ValidationError as err:
                    errors.append(RowError(n, "currency", err.details["problem"]))
            elif "currency" in row:
                out["currency"] = None
        if kind == "partners":
            k = row.get("kind", "")
            k = _KIND_ALIASES.get(k, k.lower())
            if k:
                if k not in PARTNER_KINDS:
                    errors.append(RowError(n, "kind", f"must be one of {', '.join(PARTNER_KINDS)}"))
                out["kind"] = k
            elif is_new:
                errors.append(RowError(n, "kind", "is required for a new partner"))
        if kind == "cost_centres" and "manager" in row:
            out["manager"] = row["manager"] or None
        if "external_code" in row:
            out["external_code"] = row["external_code"] or None
        if "active" in row:
            try:
                flag = _flag(row["active"])
            except ValueError:
                errors.append(RowError(n, "active", f"{row['active']!r} is not yes/no"))
            else:
                if flag is not None:
                    out["active"] = flag
        if kind in ("accounts", "cost_centres") and row.get("parent"):
            out["parent"] = row["parent"]
        if len(errors) == errs_before:
            parsed.append({"row": n, **out})
    # Parents may be in the file (any order) or already stored.
    codes = set(existing) | {p["code"] for p in parsed}
    for p in parsed:
        if "parent" in p:
            if p["parent"] not in codes:
                errors.append(RowError(p["row"], "parent", f"unknown {kind[:-1].replace('_', ' ')} {p['parent']!r}"))
            elif p["parent"] == p["code"]:
                errors.append(RowError(p["row"], "parent", "cannot be its own parent"))
    errors += _cycles(existing, parsed)
    if errors:
        errors.sort(key=lambda e: (e.row, e.column))
        raise ImportRejected(
            f"{len(errors)} problem(s) in the {kind} import; nothing was imported: "
            + "; ".join(str(e) for e in errors[:5]) + (" …" if len(errors) > 5 else ""),
            errors=[e.to_dict() for e in errors],
        )
    created = updated = 0
    by_code = dict(existing)
    for p in parsed:
        row_obj = by_code.get(p["code"])
        if row_obj is None:
            row_obj = model(company_id=comp.id, code=p["code"], active=True)
            session.add(row_obj)
            by_code[p["code"]] = row_obj
            created += 1
        else:
            updated += 1
        for key, value in p.items():
            if key not in ("row", "code", "parent"):
                setattr(row_obj, key, value)
    session.flush()
    for p in parsed:
        if "parent" in p:
            by_code[p["code"]].parent_id = by_code[p["parent"]].id
    session.flush()
    return {"created": created, "updated": updated}


def _cycles(existing: dict[str, Any], parsed: list[dict[str, Any]]) -> list[RowError]:
    """Rows whose new parent would make the tree loop (A under B under A)."""
    by_id = {r.id: code for code, r in existing.items()}
    parent_of: dict[str, str | None] = {
        code: by_id.get(getattr(r, "parent_id", None)) for code, r in existing.items()
    }
    for p in parsed:
        if "parent" in p:
            parent_of[p["code"]] = p["parent"]
    out = []
    for p in parsed:
        if "parent" not in p:
            continue
        seen: set[str] = {p["code"]}
        node = p["parent"] if p["parent"] != p["code"] else None
        while node is not None:
            if node in seen:
                out.append(RowError(p["row"], "parent", f"{p['parent']!r} would make the tree loop back to {p['code']!r}"))
                break
            seen.add(node)
            node = parent_of.get(node)
    return out


def import_file(session: Session, company_code: str, kind: str, path: Path,
                limits: Limits = DEFAULT_LIMITS) -> dict[str, int]:
    return import_rows(session, company_code, kind, read_table(path, limits))


def codes_of(session: Session, model: Any, company_id: int, ids: Sequence[int | None]) -> dict[int, Any]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {r.id: r for r in session.scalars(select(model).where(model.id.in_(wanted)))}
