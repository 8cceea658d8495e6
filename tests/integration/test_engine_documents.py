"""The shipped procurement, project and budget-transfer workflows end to end; versions;
the read side (inbox, request with budget impact)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.db.models import BudgetBalance, BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.engine import directory, queries, service
from yinfin_flow.engine.definitions import DefinitionChanged
from yinfin_flow.engine.errors import Forbidden, StaleRequest

from .test_engine_support import clean, expense_form, held, pending, state, world


def approve_all(db, rid):
    with db.unit_of_work() as s:
        req = s.get(ApprovalRequest, rid)
        approval = req.state
    while state(db, rid) == approval:
        t, _, who = pending(db, rid)[0]
        with db.unit_of_work() as s:
            service.act(s, t, who, "approve")


def test_procurement_reserve_encumber_invoice_actual_close(db):
    org = world(db)
    with db.unit_of_work() as s:
        directory.upsert_user(s, directory.UserSpec(id="dan", name="Dan", company="ACME", department="RD",
                                                    manager="lee"), actor="t")
        directory.grant_role(s, "dan", "buyer", actor="t")
        rid = service.submit(s, "procurement", requester="amy", company="ACME", title="laptops",
                             form={**expense_form(org.child_line, "500.00"), "partner": "EMP-amy"}).id
    approve_all(db, rid)
    assert state(db, rid) == "approved"
    assert held(db, org.child_line) == (Decimal("500"), 0, 0)
    with pytest.raises(Forbidden), db.unit_of_work() as s:
        service.perform(s, rid, "issue_po", "pat")  # not a buyer
    with db.unit_of_work() as s:
        service.perform(s, rid, "issue_po", "dan")
    assert held(db, org.child_line) == (0, Decimal("500"), 0)
    with db.unit_of_work() as s:
        service.perform(s, rid, "receive", "dan")
        service.perform(s, rid, "match_invoice", "fay")
    assert held(db, org.child_line) == (0, 0, Decimal("500"))  # the ledger consumed it
    with db.unit_of_work() as s:
        service.perform(s, rid, "pay", "fay")
    assert state(db, rid) == "closed"
    clean(db)


def test_budget_transfer_moves_budget_on_approval(db):
    org = world(db)
    with db.unit_of_work() as s:
        rid = service.submit(s, "budget_transfer", requester="amy", company="ACME", title="move",
                             form={"from_line": org.office_line, "to_line": org.sibling_line,
                                   "amount": "40.00", "budget_date": "2026-01-15", "reason": "offsite"}).id
    assert held(db, org.office_line)[0] == Decimal("40")
    with db.unit_of_work() as s:
        directory.grant_role(s, "gm", "cfo", actor="t")  # the second step's approver
    approve_all(db, rid)
    assert state(db, rid) == "done"
    with db.unit_of_work(readonly=True) as s:
        assert s.get(BudgetBalance, org.office_line).budget == Decimal("60")
        assert s.get(BudgetBalance, org.sibling_line).budget == Decimal("640")
    assert held(db, org.office_line) == (0, 0, 0)
    clean(db)


def test_project_approval_carves_lines_out_of_the_parent(db):
    org = world(db)
    with db.unit_of_work() as s:
        for u in ("pat", "quinn"):
            directory.grant_role(s, u, "pmo", actor="t")
        rid = service.submit(s, "project", requester="amy", company="ACME", title="new app",
                             form={"project": "APP1", "name": "New app", "parent_line": org.parent_line,
                                   "lines": [{"ref": "1", "item": "TRAVEL", "amount": "300.00",
                                              "budget_date": "2026-01-15"}]}).id
    assert held(db, org.parent_line)[0] == Decimal("300")
    approve_all(db, rid)
    assert state(db, rid) == "active"
    with db.unit_of_work(readonly=True) as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.parent_id == org.parent_line,
                                                  BudgetLine.project_id.is_not(None)))
        assert s.get(BudgetBalance, line.id).budget == Decimal("300")
        assert s.get(BudgetBalance, org.parent_line).pre_encumbered == 0
    clean(db)


def test_running_request_stays_on_its_version(db, tmp_path):
    org = world(db)
    text = (PROJECT_ROOT / "workflows" / "expense.yaml").read_text(encoding="utf-8")
    (tmp_path / "expense.yaml").write_text(text)
    with db.unit_of_work() as s:
        old = service.submit(s, "expense", requester="amy", company="ACME", title="v1",
                             form=expense_form(org.child_line, "10.00"), directory=tmp_path).id
    # v2 skips the finance step; a changed file under the same version is refused.
    (tmp_path / "expense.yaml").write_text(text.replace("title: Expense reimbursement", "title: changed"))
    with pytest.raises(DefinitionChanged), db.unit_of_work() as s:
        service.submit(s, "expense", requester="amy", company="ACME", title="x",
                       form=expense_form(org.child_line, "10.00"), directory=tmp_path)
    v2 = text.replace("version: 1", "version: 2").replace(
        "        title: Finance review\n", "        title: Finance review\n        when: 'false'\n")
    (tmp_path / "expense.yaml").write_text(v2)
    with db.unit_of_work() as s:
        new = service.submit(s, "expense", requester="amy", company="ACME", title="v2",
                             form=expense_form(org.child_line, "10.00"), directory=tmp_path).id
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, old).workflow_version == 1
        assert s.get(ApprovalRequest, new).workflow_version == 2
        assert s.get(ApprovalRequest, old).route == ["manager", "finance"]
        assert s.get(ApprovalRequest, new).route == ["manager"]
    approve_all(db, old)  # still two steps, from the stored v1 text
    assert state(db, old) == "approved"


def test_stale_version_is_a_conflict_and_inbox_and_detail_show_the_impact(db):
    org = world(db)
    with db.unit_of_work() as s:
        rid = service.submit(s, "expense", requester="amy", company="ACME", title="trip",
                             form=expense_form(org.child_line, "550.00")).id
        version = s.get(ApprovalRequest, rid).version
    [(t, _, _)] = pending(db, rid)
    with db.unit_of_work() as s:
        service.comment(s, rid, "wang", "checking")
        service.act(s, t, "wang", "transfer", to="lee")
    [(t2, _, _)] = pending(db, rid)
    with pytest.raises(StaleRequest), db.unit_of_work() as s:
        service.act(s, t2, "lee", "approve", expected_version=version)  # lee saw the old page
    with db.unit_of_work(readonly=True) as s:
        [item] = queries.inbox(s, "lee")
        detail = queries.get_request(s, rid)
    assert item["request"]["id"] == rid and item["request"]["amount"] == "550.0000"
    # 550 of 600 is past the 90 % warning: the approver sees it on the task.
    assert item["warnings"] and item["warnings"][0]["level"] == "warn"
    assert detail["budget"]["lines"][0]["pre_encumbered"] == "550.0000"
    assert {c["line_id"] for c in detail["budget"]["checks"]} == {org.child_line, org.parent_line}
    assert [h["action"] for h in detail["history"]] == ["create", "submit", "comment", "transfer"]
    assert detail["current_step"] == "manager"
