"""Concurrent retries of one action (same idempotency key) replay, even when the first used it all.

A retry that waited for the locks while the first attempt committed must answer
with that attempt's result, not with a refusal computed from the budget the first
attempt just used, nor with a unique violation: the replay check after the locks
is the movement's ``INSERT … ON CONFLICT DO NOTHING`` plus a look-up on refusal.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from yinfin_flow.db.models import BudgetMovement, Reservation

from ..factories import line_req, org_in
from .test_concurrency import assert_verified, available, hammer


def _count(db, model, **where):
    with db.unit_of_work(readonly=True) as s:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return s.scalar(stmt)


def test_retries_of_a_reservation_that_takes_all_that_is_left_all_replay(db):
    org = org_in(db)  # the office line has 100.00 and nothing above it
    calls = [
        (lambda b: b.reserve("all-of-it", ("expense", "1"), [line_req(org.office_line, "100.00")], actor="amy"))
        for _ in range(8)
    ]
    assert hammer(db, calls) == Counter(ok=8)
    assert _count(db, BudgetMovement, kind="reserve") == 1
    assert _count(db, Reservation) == 1
    assert available(db, org.office_line) == 0
    assert_verified(db)


def test_retries_of_a_move_to_actual_all_replay(db):
    org = org_in(db)
    calls = [lambda b: b.reserve("r", ("expense", "1"), [line_req(org.office_line, "40.00")], actor="amy")]
    assert hammer(db, calls) == Counter(ok=1)
    with db.unit_of_work(readonly=True) as s:
        res_id = s.scalar(select(Reservation.id))
    # Whoever comes second finds nothing left to move: that is a replay, not an error.
    calls = [(lambda b: b.advance("spend", res_id, "actual", actor="amy")) for _ in range(8)]
    assert hammer(db, calls) == Counter(ok=8)
    assert _count(db, BudgetMovement, kind="to_actual") == 1
    assert available(db, org.office_line) == 60
    assert_verified(db)


def test_retries_of_a_partial_release_all_replay(db):
    org = org_in(db)
    calls = [lambda b: b.reserve("r", ("expense", "1"), [line_req(org.office_line, "40.00")], actor="amy")]
    assert hammer(db, calls) == Counter(ok=1)
    with db.unit_of_work(readonly=True) as s:
        res_id = s.scalar(select(Reservation.id))
    # 30.00 of the 40.00: a second release of 30.00 would be more than is left.
    calls = [(lambda b: b.release("give-back", [res_id], "30.00", actor="amy")) for _ in range(8)]
    assert hammer(db, calls) == Counter(ok=8)
    assert _count(db, BudgetMovement, kind="release") == 1
    assert available(db, org.office_line) == 90
    assert_verified(db)
