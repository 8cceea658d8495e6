"""A small organisation to test against: one company, a department tree, budgets.

ACME (CNY), fiscal year 2026 in months (and the year), cost centres
HQ ← RD ← RD-APP, items TRAVEL and OFFICE, and per-month lines with budgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.db.engine import Database

JAN = date(2026, 1, 15)


@dataclass
class Org:
    company: str
    parent_line: int  # RD / TRAVEL / 2026-01, budget 1000.00
    child_line: int  # RD-APP / TRAVEL / 2026-01, budget 600.00, parent = parent_line
    sibling_line: int  # RD-WEB / TRAVEL / 2026-01, budget 600.00, parent = parent_line
    office_line: int  # RD / OFFICE / 2026-01, budget 100.00, no parent


def make_org(session: Session, *, budgets: tuple[str, str, str, str] = ("1000", "600", "600", "100")) -> Org:
    setup.create_company(session, "ACME", "Acme Ltd", "CNY")
    setup.create_periods(session, "ACME", 2026, "month")
    setup.create_periods(session, "ACME", 2026, "year")
    setup.create_cost_centre(session, "ACME", "RD", "R&D", manager="lee")
    setup.create_cost_centre(session, "ACME", "RD-APP", "R&D Apps", parent="RD", manager="wang")
    setup.create_cost_centre(session, "ACME", "RD-WEB", "R&D Web", parent="RD", manager="zhao")
    setup.create_item(session, "ACME", "TRAVEL", "Travel", account_code="6601")
    setup.create_item(session, "ACME", "OFFICE", "Office supplies", account_code="6602")
    parent = setup.create_line(session, company_code="ACME", period_code="2026-01", cost_centre="RD", item="TRAVEL", owner="lee")
    child = setup.create_line(session, company_code="ACME", period_code="2026-01", cost_centre="RD-APP", item="TRAVEL", parent_id=parent.id, owner="wang")
    sib = setup.create_line(session, company_code="ACME", period_code="2026-01", cost_centre="RD-WEB", item="TRAVEL", parent_id=parent.id, owner="zhao")
    office = setup.create_line(session, company_code="ACME", period_code="2026-01", cost_centre="RD", item="OFFICE")
    b = Budgets(session)
    for line, amount in zip((parent, child, sib, office), budgets, strict=True):
        if Decimal(amount):
            b.adjust(None, line.id, amount, actor="cfo", reason="2026 budget", kind="original")
    return Org("ACME", parent.id, child.id, sib.id, office.id)


FINANCE_PEOPLE = ("cfo", "frank", "fiona")


def add_people(session: Session, *ids: str, company: str = "ACME") -> None:
    """Directory entries (no department, no roles) for people who act on budgets by name."""
    from yinfin_flow.engine.directory import UserSpec, upsert_user

    for uid in ids or FINANCE_PEOPLE:
        upsert_user(session, UserSpec(id=uid, name=uid.title(), company=company), actor="test")


def org_in(db: Database, **kw: object) -> Org:
    with db.unit_of_work() as s:
        return make_org(s, **kw)  # type: ignore[arg-type]


def line_req(line_id: int, amount: str, ref: str = "1", currency: str = "CNY", on: date = JAN) -> LineRequest:
    return LineRequest(ref=ref, amount=amount, currency=currency, budget_date=on, line_id=line_id)
