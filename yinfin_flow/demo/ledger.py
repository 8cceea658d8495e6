"""The demo company's books: chart of accounts, partners, open periods, ledger settings.

Runs after :mod:`yinfin_flow.demo.budgets` (company ``ACME``, CNY, budget items
whose ``account_code`` point into the chart below). :func:`setup_books` is also
what tests use to get a company ready to post.

Partner codes: employees are ``EMP-<username>``, vendors ``V<nnn>``; the requests
loader (and any OA integration) names them in ``document.partner``.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import Company
from yinfin_flow.db.models.org import User
from yinfin_flow.ledger import masterdata, periods
from yinfin_flow.ledger.manual import post_manual

from .budgets import COMPANY, COST_CENTRES, fiscal_year

#: A small Chinese chart of accounts (企业会计准则): code, name, type, parent.
CHART: list[tuple[str, str, str, str | None]] = [
    ("1001", "库存现金 Cash on hand", "asset", None),
    ("1002", "银行存款 Bank deposits", "asset", None),
    ("1122", "应收账款 Accounts receivable", "asset", None),
    ("1221", "其他应收款 Other receivables", "asset", None),
    ("1403", "原材料 Raw materials", "asset", None),
    ("1405", "库存商品 Inventory", "asset", None),
    ("1601", "固定资产 Fixed assets", "asset", None),
    ("2202", "应付账款 Accounts payable", "liability", None),
    ("2211", "应付职工薪酬 Payroll payable", "liability", None),
    ("2221", "应交税费 Taxes payable", "liability", None),
    ("222101", "应交增值税 VAT payable", "liability", "2221"),
    ("22210101", "进项税额 Input VAT", "liability", "222101"),
    ("22210102", "销项税额 Output VAT", "liability", "222101"),
    ("2241", "其他应付款 Other payables", "liability", None),
    ("4001", "实收资本 Paid-in capital", "equity", None),
    ("4103", "本年利润 Current-year profit", "equity", None),
    ("6001", "主营业务收入 Revenue", "income", None),
    ("6601", "销售费用 Selling expenses", "expense", None),
    ("6601.05", "广告宣传费 Advertising & marketing", "expense", "6601"),
    ("6601.03", "差旅费 Travel (selling)", "expense", "6601"),
    ("6602", "管理费用 Administrative expenses", "expense", None),
    ("6602.01", "办公费 Office", "expense", "6602"),
    ("6602.03", "差旅费 Travel", "expense", "6602"),
    ("6602.05", "业务招待费 Business entertainment", "expense", "6602"),
    ("6602.08", "软件及信息服务费 Software & IT services", "expense", "6602"),
    ("6603", "财务费用 Finance costs", "expense", None),
    ("6603.02", "汇兑损益及尾差 Exchange and rounding differences", "expense", "6603"),
]

#: The account conversion rounding differences go to (explicitly, as a voucher line).
ROUNDING_ACCOUNT = "6603.02"

VENDORS = [
    ("V001", "北京云算科技有限公司 Cloudcalc (SaaS)"),
    ("V002", "上海美印广告有限公司 Meiyin Advertising"),
    ("V003", "深圳华达电脑有限公司 Huada Computers"),
    ("V004", "Global Software Inc. (USD)"),
]

EXTRA_EMPLOYEES = ["amy", "bob", "carol", "dave", "erin"]


def setup_books(
    session: Session,
    company: str,
    years: list[int],
    *,
    chart: list[tuple[str, str, str, str | None]] | None = None,
    employees: list[str] | None = None,
    vendors: list[tuple[str, str]] | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """Chart of accounts, partners, open months of ``years``, rounding account: ready to post.

    ``employees`` are usernames; each becomes partner ``EMP-<username>`` (named from
    ``names`` when given), which is what the engine names in ``document.partner``.
    """
    masterdata.import_rows(session, company, "accounts", [
        {"code": c, "name": n, "type": t, "parent": p or "", "external_code": c.replace(".", "")}
        for c, n, t, p in (chart or CHART)
    ])
    partners = [
        {"code": f"EMP-{u}", "name": (names or {}).get(u, u), "kind": "employee", "external_code": f"E-{u}"}
        for u in (employees or [])
    ] + [
        {"code": c, "name": n, "kind": "vendor", "external_code": f"S{c[1:]}"}
        for c, n in (vendors or [])
    ]
    if partners:
        masterdata.import_rows(session, company, "partners", partners)
    for year in years:
        periods.open_year(session, company, year)
    codes = {c for c, *_ in (chart or CHART)}
    masterdata.configure(
        session, company,
        rounding_account=ROUNDING_ACCOUNT if ROUNDING_ACCOUNT in codes else None,
        closed_period_policy="refuse",
    )


def load(session: Session) -> None:
    """The demo company's books (after the budgets loader created ``ACME``): chart,
    partners, the year's months open, and an opening-balance voucher for the bank."""
    year = fiscal_year()
    # Everyone in the directory (the org loader ran first) can claim expenses.
    people = dict(session.execute(
        select(User.id, User.name).join(Company, Company.id == User.company_id).where(Company.code == COMPANY)
    ).all())
    managers = [m for _c, _n, _p, m in COST_CENTRES if m]
    employees = sorted(set(people) | set(managers) | set(EXTRA_EMPLOYEES))
    setup_books(session, COMPANY, [year], employees=employees, vendors=VENDORS, names=people)
    post_manual(
        session, key=f"demo:opening:{year}", company=COMPANY, posting_date=date(year, 1, 1),
        actor="demo", summary="期初余额 Opening balance: paid-in capital at the bank",
        lines=[{"account": "1002", "debit": "5000000.00", "memo": "招商银行基本户"},
               {"account": "4001", "credit": "5000000.00"}],
    )
