"""``verify`` catches the leaks at the edges: an unlinked voucher, a request nobody can
move, an approval by the requester, a delegated action outside its window."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, update

from yinfin_flow.db.models.engine import ApprovalTask, RequestHistory
from yinfin_flow.engine import directory
from yinfin_flow.ledger.posting import post
from yinfin_flow.verify import verify

from .test_engine_steps import go, step
from .test_engine_support import flow, world


def checks(db):
    with db.unit_of_work(readonly=True) as s:
        return sorted({p.check for p in verify(s)})


def test_a_voucher_that_consumes_budget_but_carries_no_reservation_is_reported(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    with db.unit_of_work() as s:  # what a rolled PO's invoice used to post
        post(s, key=f"expense:{rid}:x", template="purchase.invoice_matched", company="ACME",
             posting_date="2026-01-20", actor="fay",
             document={"type": "expense", "id": str(rid), "title": "t", "partner": "EMP-amy"},
             lines=[{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP", "amount": "100.00", "currency": "CNY"}])
    assert checks(db) == ["vouchers_linked_to_reservations"]


def test_a_request_in_approval_that_nobody_can_act_on_is_reported(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    assert checks(db) == []
    with db.unit_of_work() as s:
        directory.set_active(s, "pat", False)
    assert checks(db) == ["approvals_have_an_actionable_task"]
    with db.unit_of_work() as s:
        directory.set_active(s, "pat", True)
        s.execute(update(ApprovalTask).where(ApprovalTask.request_id == rid).values(status="cancelled"))
    assert checks(db) == ["approvals_have_an_actionable_task"]


def _history(db, rid, **values):
    with db.unit_of_work() as s:
        seq = max(s.scalars(select(RequestHistory.seq).where(RequestHistory.request_id == rid)))
        s.add(RequestHistory(request_id=rid, seq=seq + 1, created_at=datetime(2026, 5, 1, tzinfo=UTC), **values))


def test_an_approval_by_the_requester_is_reported(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    _history(db, rid, action="approve", actor="amy", from_state="approval", to_state="approved")
    assert checks(db) == ["nobody_approves_their_own_request"]


def test_an_action_on_behalf_outside_any_window_is_reported(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    with db.unit_of_work() as s:
        directory.delegate(s, "pat", "olga", date(2026, 3, 1), date(2026, 3, 15))
    _history(db, rid, action="comment", actor="olga", on_behalf_of="pat")  # 1 May: after the window
    assert checks(db) == ["delegated_actions_in_window"]
