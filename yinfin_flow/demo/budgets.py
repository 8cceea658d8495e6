"""The demo organisation's budgets: 示例科技有限公司 (Acme Tech), company ``ACME``, CNY.

What :func:`load` creates (deterministic; the fiscal year is the year of :func:`yinfin_flow.demo.dates.today`):

- periods: the 12 months and the year;
- departments: HQ 总部 ← RD 研发中心 ← RD-APP / RD-WEB; HQ ← SALES 销售部 ← SALES-EAST;
  HQ ← FIN 财务部 (``manager`` is the user who owns their lines);
- budget items on the Chinese chart of accounts: 6602 管理费用 (TRAVEL 差旅费, OFFICE
  办公费, SOFTWARE 软件及信息服务费, ENTERTAIN 业务招待费), 6601 销售费用 (MARKETING
  广告宣传费), 1601 CAPEX 固定资产购置; project ERP-UPGRADE;
- monthly lines for every month, in trees (``RD/TRAVEL`` ← ``RD-APP/TRAVEL``,
  ``RD-WEB/TRAVEL``; ``SALES/TRAVEL`` ← ``SALES-EAST/TRAVEL``; ``SALES/MARKETING`` ←
  ``SALES-EAST/MARKETING``) plus year lines for capex and the ERP project;
- control rules showing each mode: hard with 5 % tolerance on R&D travel (inherited
  by the sub-departments), hard cumulative-to-date with 70/85/100 thresholds on R&D
  software, soft on Sales travel, track on marketing, none on the HQ office line;
  everything else falls back to the shipped default (hard, 90 % warn, 100 % block);
- a January top-up (追加) of 20,000 on R&D software (licence renewals);
- FIN/ENTERTAIN on hold (frozen pending the entertainment-expense audit);
- USD→CNY and EUR→CNY rates on the first of every month (and of the previous December).

Line codes are ``ACME/<period>/<cost centre>/<item>[/<project>]``, see :func:`line_code`;
later demo loaders (ledger, requests) can rely on them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetLine, Company
from yinfin_flow.domain.errors import Conflict

from . import dates

COMPANY = "ACME"
ACTOR = "demo"

COST_CENTRES = [  # code, name, parent, manager
    ("HQ", "总部 Headquarters", None, "chen.ceo"),
    ("RD", "研发中心 R&D", "HQ", "li.rd"),
    ("RD-APP", "应用研发 R&D Apps", "RD", "wang.app"),
    ("RD-WEB", "Web研发 R&D Web", "RD", "zhao.web"),
    ("SALES", "销售部 Sales", "HQ", "liu.sales"),
    ("SALES-EAST", "华东销售 Sales East", "SALES", "sun.east"),
    ("FIN", "财务部 Finance", "HQ", "zhou.cfo"),
]

ITEMS = [  # code, name, account, parent
    ("ADMIN", "管理费用 Administrative expenses", "6602", None),
    ("SELLING", "销售费用 Selling expenses", "6601", None),
    ("TRAVEL", "差旅费 Travel", "6602.03", "ADMIN"),
    ("OFFICE", "办公费 Office", "6602.01", "ADMIN"),
    ("SOFTWARE", "软件及信息服务费 Software & IT services", "6602.08", "ADMIN"),
    ("ENTERTAIN", "业务招待费 Business entertainment", "6602.05", "ADMIN"),
    ("MARKETING", "广告宣传费 Advertising & marketing", "6601.05", "SELLING"),
    ("CAPEX", "固定资产购置 Fixed assets", "1601", None),
]

PROJECTS = [("ERP-UPGRADE", "ERP 升级项目 ERP upgrade")]

#: Monthly lines: cost centre, item, parent (cost centre, item) or None, monthly budget.
MONTHLY: list[tuple[str, str, tuple[str, str] | None, str]] = [
    ("RD", "TRAVEL", None, "30000"),
    ("RD-APP", "TRAVEL", ("RD", "TRAVEL"), "15000"),
    ("RD-WEB", "TRAVEL", ("RD", "TRAVEL"), "12000"),
    ("RD", "SOFTWARE", None, "20000"),
    ("SALES", "TRAVEL", None, "40000"),
    ("SALES-EAST", "TRAVEL", ("SALES", "TRAVEL"), "25000"),
    ("SALES", "MARKETING", None, "80000"),
    ("SALES-EAST", "MARKETING", ("SALES", "MARKETING"), "50000"),
    ("FIN", "OFFICE", None, "5000"),
    ("FIN", "ENTERTAIN", None, "3000"),
    ("HQ", "OFFICE", None, "8000"),
]

#: Year lines: cost centre, item, project, annual budget.
YEARLY: list[tuple[str, str, str | None, str]] = [
    ("HQ", "CAPEX", None, "500000"),
    ("RD", "SOFTWARE", "ERP-UPGRADE", "240000"),
]

#: Seasonality: Spring Festival (Feb) is quiet, year-end (Dec) busy.
SEASON = {2: Decimal("0.8"), 12: Decimal("1.2")}

#: Rules per (cost centre, item) on every month's line, as ``setup.set_rule`` takes them.
RULES: dict[tuple[str, str], dict[str, object]] = {
    ("RD", "TRAVEL"): {"mode": "hard", "tolerance_percent": "5"},
    ("RD", "SOFTWARE"): {
        "mode": "hard", "basis": "cumulative",
        "thresholds": [{"percent": "70", "action": "info"},
                       {"percent": "85", "action": "warn", "notify": True},
                       {"percent": "100", "action": "block", "notify": True}],
    },
    ("SALES", "TRAVEL"): {"mode": "soft", "tolerance_percent": "10"},
    ("SALES", "MARKETING"): {"mode": "track"},
    ("HQ", "OFFICE"): {"mode": "none"},
}

ON_HOLD = ("FIN", "ENTERTAIN")

#: A January top-up (追加) of R&D software: the licences renew at the start of the year.
LICENCE_TOP_UP = (("RD", "SOFTWARE"), Decimal("20000"))

#: USD→CNY on the first of each month (index 0: the previous December).
USD_CNY = ["7.1884", "7.1796", "7.1710", "7.1652", "7.1590", "7.1533", "7.1487",
           "7.1402", "7.1355", "7.1290", "7.1236", "7.1178", "7.1105"]
EUR_CNY = ["7.8012", "7.7935", "7.8120", "7.8266", "7.8301", "7.8455", "7.8520",
           "7.8610", "7.8577", "7.8702", "7.8788", "7.8815", "7.8890"]


def fiscal_year() -> int:
    return dates.fiscal_year()


def line_code(period: str, cost_centre: str, item: str, project: str | None = None) -> str:
    """The demo's line code, e.g. ``line_code("2026-03", "RD-APP", "TRAVEL")``."""
    return "/".join(x for x in (COMPANY, period, cost_centre, item, project) if x)


def monthly_budget(cost_centre: str, item: str, month: int) -> Decimal:
    """The original budget of a monthly line (``SEASON`` applied)."""
    amount = next(a for cc, it, _p, a in MONTHLY if (cc, it) == (cost_centre, item))
    return (Decimal(amount) * SEASON.get(month, Decimal(1))).quantize(Decimal("0.01"))


def load(session: Session) -> None:
    """Create the demo company with its budgets in ``session`` (the caller commits)."""
    if session.scalar(select(Company.id).where(Company.code == COMPANY)) is not None:
        raise Conflict(f"the demo company {COMPANY} exists already (use `demo load --if-empty`)",
                       field="company")
    year = fiscal_year()
    setup.create_company(session, COMPANY, "示例科技有限公司 Acme Tech", "CNY")
    setup.create_periods(session, COMPANY, year, "month")
    setup.create_periods(session, COMPANY, year, "year")
    for code, name, parent, manager in COST_CENTRES:
        setup.create_cost_centre(session, COMPANY, code, name, parent=parent, manager=manager)
    for code, name, account, parent in ITEMS:
        setup.create_item(session, COMPANY, code, name, account_code=account, parent=parent)
    for code, name in PROJECTS:
        setup.create_project(session, COMPANY, code, name)
    managers = {code: manager for code, _n, _p, manager in COST_CENTRES}
    budgets = Budgets(session)
    reason = f"{year} annual budget (demo)"

    for month in range(1, 13):
        period = f"{year}-{month:02d}"
        ids: dict[tuple[str, str], int] = {}
        for cc, item, parent_key, _amount in MONTHLY:
            line = setup.create_line(
                session, company_code=COMPANY, period_code=period, cost_centre=cc, item=item,
                parent_id=ids[parent_key] if parent_key else None, owner=managers[cc],
            )
            ids[(cc, item)] = line.id
            value = monthly_budget(cc, item, month)
            budgets.adjust(None, line.id, value, actor=ACTOR, reason=reason, kind="original")
        for (cc, item), rule in RULES.items():
            setup.set_rule(session, ids[(cc, item)], actor=ACTOR, **rule)  # type: ignore[arg-type]
        setup.set_status(session, ids[ON_HOLD], "hold")

    # 追加: the software licences renew in January (the month the cumulative basis is thinnest)
    january = session.scalar(select(BudgetLine.id).where(
        BudgetLine.code == line_code(f"{year}-01", *LICENCE_TOP_UP[0])))
    budgets.adjust(None, january, LICENCE_TOP_UP[1], actor=ACTOR, kind="adjustment",
                   reason="年初软件续费 Annual licence renewals (demo)")

    for cc, item, project, amount in YEARLY:
        line = setup.create_line(session, company_code=COMPANY, period_code=str(year), cost_centre=cc,
                                 item=item, project=project, owner=managers[cc])
        budgets.adjust(None, line.id, amount, actor=ACTOR, reason=reason, kind="original")
        setup.set_rule(session, line.id, mode="hard", actor=ACTOR)

    for i, (usd, eur) in enumerate(zip(USD_CNY, EUR_CNY, strict=True)):
        on = date(year - 1, 12, 1) if i == 0 else date(year, i, 1)
        setup.add_rate(session, "USD", "CNY", on, Decimal(usd))
        setup.add_rate(session, "EUR", "CNY", on, Decimal(eur))
