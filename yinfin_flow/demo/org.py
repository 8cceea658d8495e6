"""The demo organisation's people, for company ``ACME`` (run after the budgets loader).

Department heads are the ``manager`` of each cost centre the budgets demo creates
(:data:`yinfin_flow.demo.budgets.COST_CENTRES`): chen.ceo (HQ, the GM), li.rd (RD),
wang.app (RD-APP), zhao.web (RD-WEB), liu.sales (SALES), sun.east (SALES-EAST) and
zhou.cfo (FIN). Employees with short ids work under them::

    chen.ceo  GM 总经理 (gm, override_authority, approver)
    ├─ li.rd  R&D director (dept_head@RD, pmo)
    │  ├─ wang.app  ── amy (RD-APP), dan (RD-APP)
    │  └─ zhao.web  ── bob (RD-WEB)
    ├─ liu.sales  Sales director (dept_head@SALES, pmo)
    │  └─ sun.east  ── carol (SALES-EAST)
    ├─ zhou.cfo  CFO (cfo, finance, override_authority)
    │  ├─ fiona, frank  finance reviewers (finance, finance_reviewer)
    │  └─ pam  PMO office (pmo)
    └─ admin  system administrator (admin)

Every user also holds ``employee``; managers hold ``approver``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow.domain.org import parse_roles
from yinfin_flow.engine.directory import UserSpec, upsert_user

COMPANY = "ACME"

#: id, name, department, manager, roles (CSV form: ``role`` or ``role@DEPT``)
PEOPLE = [
    ("chen.ceo", "陈总 Chen (GM)", "HQ", None, "employee;approver;gm;override_authority;dept_head@HQ"),
    ("li.rd", "李工 Li (R&D director)", "RD", "chen.ceo", "employee;approver;dept_head@RD;pmo"),
    ("wang.app", "王 Wang (Apps lead)", "RD-APP", "li.rd", "employee;approver;dept_head@RD-APP"),
    ("zhao.web", "赵 Zhao (Web lead)", "RD-WEB", "li.rd", "employee;approver;dept_head@RD-WEB"),
    ("liu.sales", "刘 Liu (Sales director)", "SALES", "chen.ceo", "employee;approver;dept_head@SALES;pmo"),
    ("sun.east", "孙 Sun (Sales East lead)", "SALES-EAST", "liu.sales", "employee;approver;dept_head@SALES-EAST"),
    ("zhou.cfo", "周 Zhou (CFO)", "FIN", "chen.ceo", "employee;approver;cfo;finance;override_authority;dept_head@FIN"),
    ("fiona", "Fiona 方 (finance reviewer)", "FIN", "zhou.cfo", "employee;approver;finance;finance_reviewer"),
    ("frank", "Frank 冯 (finance reviewer)", "FIN", "zhou.cfo", "employee;approver;finance;finance_reviewer"),
    ("pam", "Pam 潘 (PMO)", "FIN", "zhou.cfo", "employee;approver;pmo"),
    ("amy", "Amy 艾 (engineer)", "RD-APP", "wang.app", "employee"),
    ("dan", "Dan 邓 (engineer)", "RD-APP", "wang.app", "employee"),
    ("bob", "Bob 鲍 (web developer)", "RD-WEB", "zhao.web", "employee"),
    ("carol", "Carol 蔡 (sales)", "SALES-EAST", "sun.east", "employee"),
    ("admin", "System administrator", "HQ", "chen.ceo", "employee;admin"),
]


def load(session: Session) -> None:
    """Create (or refresh) the demo people; safe to run twice."""
    # Managers before their reports, so each upsert finds its manager in the directory.
    for uid, name, dept, manager, roles in PEOPLE:
        upsert_user(
            session,
            UserSpec(id=uid, name=name, company=COMPANY, department=dept, manager=manager,
                     email=f"{uid}@acme.example", roles=parse_roles(roles)),
            actor="demo",
        )
