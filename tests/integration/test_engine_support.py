"""Shared set-up for the engine tests (no tests here): an organisation, books, helpers.

People (company ACME): amy and bob request; wang manages amy (RD-APP), lee manages wang
and heads RD, zhao manages bob (RD-WEB); fay and fred hold ``finance``; gm holds ``gm``;
olga holds ``override_authority``; buyer holds ``buyer``; admin is the fallback approver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.demo.ledger import setup_books
from yinfin_flow.engine import directory, service
from yinfin_flow.engine.directory import UserSpec
from yinfin_flow.ledger import handlers
from yinfin_flow.verify import verify

from ..factories import JAN, Org, org_in

CHART = [
    ("1002", "Bank", "asset", None),
    ("2202", "Accounts payable", "liability", None),
    ("2241", "Other payables", "liability", None),
    ("6601", "Travel", "expense", None),
    ("6602", "Office", "expense", None),
]

PEOPLE = [
    # id, department, manager, roles
    ("ceo", "RD", None, ["gm"]),
    ("lee", "RD", "ceo", []),
    ("wang", "RD-APP", "lee", []),
    ("zhao", "RD-WEB", "lee", []),
    ("amy", "RD-APP", "wang", []),
    ("bob", "RD-WEB", "zhao", []),
    ("fay", "RD", "ceo", ["finance"]),
    ("fred", "RD", "ceo", ["finance"]),
    ("gm", "RD", "ceo", ["gm"]),
    ("olga", "RD", "ceo", ["override_authority"]),
    ("buyer", "RD", "ceo", ["buyer"]),
    ("admin", "RD", "ceo", ["admin"]),
    ("pat", "RD", "ceo", []),
    ("quinn", "RD", "ceo", []),
]


def world(db: Database) -> Org:
    """Budgets (factories), people and books; the ledger subscribed to postings."""
    handlers.register()
    org = org_in(db)
    with db.unit_of_work() as s:
        for uid, dept, mgr, roles in PEOPLE:  # managers come before their reports
            directory.upsert_user(s, UserSpec(id=uid, name=uid.title(), company="ACME", department=dept,
                                              manager=mgr), actor="test")
            for r in roles:
                directory.grant_role(s, uid, r, actor="test")
        setup_books(s, "ACME", [2026], chart=CHART, employees=[p[0] for p in PEOPLE])
    return org


def expense_form(line_id: int, amount: str = "250.00", **extra: Any) -> dict[str, Any]:
    return {"lines": [{"ref": "1", "line_id": line_id, "amount": amount, "currency": "CNY",
                       "budget_date": str(JAN), "memo": "Beijing trip"}], **extra}


def pending(db: Database, request_id: int) -> list[tuple[int, str, str]]:
    """(task id, step, assignee) of the request's pending tasks, in creation order."""
    with db.unit_of_work(readonly=True) as s:
        return [(t.id, t.step_id, t.assignee) for t in s.scalars(
            select(ApprovalTask).where(ApprovalTask.request_id == request_id, ApprovalTask.status == "pending")
            .order_by(ApprovalTask.id))]


def one_pending_task(db: Database, tmp: Path) -> tuple[int, int]:
    """A world, and amy's request of 100.00 through a one-step flow to pat: (request id,
    pat's pending task id)."""
    org = world(db)
    wf = flow(tmp, "      - {id: a, approvers: [{type: user, user: pat}]}\n")
    with db.unit_of_work() as s:
        rid = service.submit(s, "flow", requester="amy", company="ACME", title="t",
                             form=expense_form(org.child_line, "100.00"), directory=wf).id
    [(task_id, _, _)] = pending(db, rid)
    return rid, task_id


def state(db: Database, request_id: int) -> str:
    with db.unit_of_work(readonly=True) as s:
        req = s.get(ApprovalRequest, request_id)
        assert req is not None
        return req.state


def actions(db: Database, request_id: int) -> list[str]:
    with db.unit_of_work(readonly=True) as s:
        return list(s.scalars(select(RequestHistory.action).where(RequestHistory.request_id == request_id)
                              .order_by(RequestHistory.seq)))


def held(db: Database, line_id: int) -> tuple[Any, Any, Any]:
    """(pre_encumbered, encumbered, actual) on a line."""
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        assert b is not None
        return (b.pre_encumbered, b.encumbered, b.actual)


def clean(db: Database) -> None:
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def write_workflow(directory_: Path, text: str, name: str = "flow") -> Path:
    directory_.mkdir(parents=True, exist_ok=True)
    path = directory_ / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return directory_


FLOW = """
name: flow
version: {version}
document_type: expense
settings: {{withdraw_window_hours: 24, no_approver: {no_approver}, auto_approve_repeat: {auto}, resubmit: {resubmit}}}
states:
  draft: {{editable: true}}
  approval:
    steps:
{steps}
  sent_back: {{editable: true}}
  approved: {{final: true}}
  rejected: {{final: true}}
  withdrawn: {{final: true}}
transitions:
  - {{event: submit, from: draft, to: approval, budget: reserve}}
  - {{event: approve, from: approval, to: approved, by: approver, budget: release}}
  - {{event: reject, from: approval, to: rejected, by: approver, budget: release}}
  - {{event: send_back, from: approval, to: sent_back, by: approver, budget: none}}
  - {{event: resubmit, from: sent_back, to: approval, budget: reserve}}
  - {{event: withdraw, from: [approval, sent_back], to: withdrawn, budget: release}}
"""


def flow(tmp: Path, steps: str, *, no_approver: str = "admin", auto: str = "true",
         resubmit: str = "from_start", version: int = 1) -> Path:
    """A workflow ``flow`` with the given steps (YAML, indented 6) in a fresh directory."""
    return write_workflow(tmp, FLOW.format(steps=steps, no_approver=no_approver, auto=auto,
                                              resubmit=resubmit, version=version))
