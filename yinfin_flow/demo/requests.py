"""Demo requests: every state of every shipped workflow, completed ones included.

Runs after the budgets, org and ledger loaders (people such as amy, bob, wang.app,
fiona and zhou.cfo; company ACME; open books). Then :data:`MORE`: requests charged to the
previous month, tasks waiting for several approvers, and the spending that takes some
lines near and over their thresholds; and :data:`HISTORY`: paid claims in every earlier
month of the year (see docs/demo.md). Each request is driven through the real
engine actions (submit, approve, send back, pay …), so budgets, postings and history are
what production would produce. Grants the demo's purchasing role (``buyer``) to dan.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.domain.workflow import Definition
from yinfin_flow.engine import approvers, definitions, directory, service

from . import dates
from .budgets import COMPANY, fiscal_year, line_code, monthly_budget

BUYER = "dan"


def _line(session: Session, cc: str, item: str, month: int | None = None) -> int:
    """The demo line of ``cc``/``item`` for ``month`` (the current month by default, so
    the console's inbox shows requests of this month)."""
    month = month or dates.current_month()
    code = line_code(f"{fiscal_year()}-{month:02d}", cc, item)
    line_id = session.scalar(select(BudgetLine.id).where(BudgetLine.code == code))
    if line_id is None:
        raise LookupError(f"demo budget line {code} is missing (run the budgets loader first)")
    return int(line_id)


def _path(d: Definition, target: str) -> list[str]:
    """The shortest list of events from the initial state to ``target``."""
    seen = {d.initial: []}
    queue = deque([d.initial])
    while queue:
        s = queue.popleft()
        if s == target:
            return seen[s]
        for t in d.transitions:
            if s in t.sources and t.dest not in seen:
                seen[t.dest] = [*seen[s], t.event]
                queue.append(t.dest)
    raise LookupError(f"{d.name}: state {target} is unreachable")


def _pending(session: Session, req: ApprovalRequest) -> list[ApprovalTask]:
    return list(session.scalars(select(ApprovalTask).where(
        ApprovalTask.request_id == req.id, ApprovalTask.status == "pending").order_by(ApprovalTask.id)))


def _holder(session: Session, role: str, req: ApprovalRequest) -> str:
    users = approvers.resolve(session, {"type": "role", "role": role, "scope": "company"},
                              requester=req.requester, company=req.company, department=req.department,
                              form=req.form, on=dates.today())
    if not users:
        raise LookupError(f"nobody holds {role} in {req.company}")
    return users[0]


def _drive(session: Session, d: Definition, req: ApprovalRequest, event: str, n: int) -> None:
    if event == "submit":
        service.submit_draft(session, req.id, req.requester)
    elif event == "approve":
        approval = req.state
        while req.state == approval:
            task = _pending(session, req)[0]
            service.act(session, task.id, task.assignee, "approve", comment="同意 OK")
    elif event == "reject":
        task = _pending(session, req)[0]
        service.act(session, task.id, task.assignee, "reject", comment="预算不足，下季度再议 Not this quarter")
    elif event == "send_back":
        task = _pending(session, req)[0]
        service.act(session, task.id, task.assignee, "send_back", comment="请补充发票 Please attach invoices")
    elif event == "withdraw":
        service.withdraw(session, req.id, req.requester, comment="不需要了 No longer needed")
    elif event == "resubmit":
        service.resubmit(session, req.id, req.requester)
    else:
        t = d.transition(event, req.state)
        assert t is not None
        actor = req.requester if t.by == "requester" else _holder(session, t.by[5:], req)
        service.perform(session, req.id, event, actor, comment=f"demo {event}")


def _forms(session: Session) -> dict[str, tuple[str, str, Any]]:
    """Per workflow: requester, title, and a function n -> form."""
    travel = _line(session, "RD-APP", "TRAVEL")
    software = _line(session, "RD", "SOFTWARE")
    fin_office, hq_office = _line(session, "FIN", "OFFICE"), _line(session, "HQ", "OFFICE")
    on = dates.today().isoformat()
    return {
        "expense": ("amy", "差旅报销 Trip to Shenzhen", lambda n: {
            "lines": [{"ref": "1", "line_id": travel, "amount": f"{800 + 150 * n}.00", "currency": "CNY",
                       "budget_date": on, "memo": "高铁+酒店 train and hotel"}],
            "cc": "fiona"}),
        "procurement": ("bob", "采购 IDE licences", lambda n: {
            "partner": "V001",
            "lines": [{"ref": "1", "line_id": software, "amount": f"{1200 + 100 * n}.00", "currency": "CNY",
                       "budget_date": on, "memo": "IDE licences"}]}),
        "project": ("wang.app", "立项 Mobile app rewrite", lambda n: {
            "project": f"APP-{n + 1:02d}", "name": f"Mobile app rewrite #{n + 1}", "parent_line": software,
            "lines": [{"ref": "1", "item": "SOFTWARE", "amount": "3000.00", "currency": "CNY", "budget_date": on}]}),
        "budget_transfer": ("fiona", "预算调剂 Office budget to HQ", lambda n: {
            "from_line": fin_office, "to_line": hq_office, "amount": "500.00", "currency": "CNY",
            "budget_date": on, "reason": "HQ move"}),
    }


def load(session: Session) -> None:
    """Create the demo requests in ``session`` (the caller commits)."""
    directory.grant_role(session, BUYER, "buyer", actor="demo")
    forms = _forms(session)
    for name, d in sorted(definitions.load_dir().items()):
        requester, title, form = forms[name]
        for n, target in enumerate(d.states):
            req = service.submit(session, name, requester=requester, company=COMPANY,
                                 title=f"{title} ({target})", form=form(n), draft=True,
                                 key=f"demo:{name}:{target}")
            for event in _path(d, target):
                _drive(session, d, req, event, n)
            if target == "approval" and d.states[target].steps:
                # One more in approval, half-way through its route (the first step approved).
                mid = service.submit(session, name, requester=requester, company=COMPANY,
                                     title=f"{title} (approval, step 2)", form=form(n), key=f"demo:{name}:mid")
                task = _pending(session, mid)[0]
                service.act(session, task.id, task.assignee, "approve", comment="同意")

    expense = definitions.load_dir()["expense"]
    _more(session, expense)
    _history(session, expense)


#: More expense claims: key, requester, cost centre, item, month ("current" or "previous"),
#: percent of the line's monthly budget, state to drive to (``approval:N``: N steps
#: approved, the next one pending), title. With the claims above this leaves, in the
#: current month, RD-WEB/TRAVEL at 92 % (past its 90 % warning), SALES-EAST/TRAVEL at
#: 104 % (over, allowed by its soft control) and SALES-EAST/MARKETING at 130 % (tracked; a claim above 20,000 waits for the GM).
MORE: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("prev-amy-paid", "amy", "RD-APP", "TRAVEL", "previous", "17", "paid", "差旅报销 Beijing customer visit"),
    ("prev-carol-paid", "carol", "SALES-EAST", "TRAVEL", "previous", "72", "paid", "差旅报销 East China tour"),
    ("prev-bob-rejected", "bob", "RD-WEB", "TRAVEL", "previous", "8", "rejected", "差旅报销 Conference"),
    ("prev-dan-approved", "dan", "RD-APP", "TRAVEL", "previous", "9", "approved", "差旅报销 Hangzhou workshop"),
    ("prev-carol-approval", "carol", "SALES-EAST", "TRAVEL", "previous", "2.4", "approval:0",
     "差旅报销 Taxi receipts"),
    ("bob-paid", "bob", "RD-WEB", "TRAVEL", "current", "50", "paid", "差旅报销 Chengdu release"),
    ("bob-approval", "bob", "RD-WEB", "TRAVEL", "current", "42", "approval:0", "差旅报销 Xi'an customer go-live"),
    ("carol-paid", "carol", "SALES-EAST", "TRAVEL", "current", "104", "paid", "差旅报销 Trade fair week"),
    ("carol-marketing", "carol", "SALES-EAST", "MARKETING", "current", "90", "approved",
     "广告投放 Trade fair booth"),
    ("carol-gm", "carol", "SALES-EAST", "MARKETING", "current", "40", "approval:2",
     "广告投放 Online campaign"),
]


def _more(session: Session, d: Definition) -> None:
    for key, requester, cc, item, when, percent, target, title in MORE:
        month = dates.current_month() if when == "current" else dates.previous_month()
        amount = (monthly_budget(cc, item, month) * Decimal(percent) / 100).quantize(Decimal("0.01"))
        on = dates.today() if when == "current" else dates.day_in(month, 12)
        form = {"lines": [{"ref": "1", "line_id": _line(session, cc, item, month), "amount": str(amount),
                           "currency": "CNY", "budget_date": on.isoformat(), "memo": title}]}
        req = service.submit(session, "expense", requester=requester, company=COMPANY, title=title,
                             form=form, key=f"demo:expense:{key}")
        state, _, steps = target.partition(":")
        if state == "approval":
            for _ in range(int(steps)):
                task = _pending(session, req)[0]
                service.act(session, task.id, task.assignee, "approve", comment="同意 OK")
            continue
        for event in _path(d, state)[1:]:  # submitted already
            _drive(session, d, req, event, 0)


#: The months before last month: paid claims that give the year its history (requester,
#: cost centre, item, percent of the month's budget before the month's own variation).
HISTORY = [
    ("amy", "RD-APP", "TRAVEL", 55),
    ("bob", "RD-WEB", "TRAVEL", 45),
    ("carol", "SALES-EAST", "TRAVEL", 70),
    ("carol", "SALES-EAST", "MARKETING", 60),
]


def _history(session: Session, d: Definition) -> None:
    for month in range(1, dates.previous_month()):
        for requester, cc, item, base in HISTORY:
            percent = Decimal(base + (month * 7) % 5 * 5)  # 0 to 20 points more, month by month
            amount = (monthly_budget(cc, item, month) * percent / 100).quantize(Decimal("0.01"))
            form = {"lines": [{"ref": "1", "line_id": _line(session, cc, item, month), "amount": str(amount),
                               "currency": "CNY", "budget_date": dates.day_in(month, 15).isoformat(),
                               "memo": f"{month:02d}月 {cc} {item}"}]}
            req = service.submit(session, "expense", requester=requester, company=COMPANY,
                                 title=f"{month}月报销 {cc} {item.lower()} ({dates.period(month)})",
                                 form=form, key=f"demo:expense:history:{dates.period(month)}:{cc}:{item}")
            for event in _path(d, "paid")[1:]:
                _drive(session, d, req, event, 0)
