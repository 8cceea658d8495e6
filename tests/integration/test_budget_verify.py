"""``verify``'s reservation check names each reservation that disagrees with its entries.

The comparison runs in SQL and returns only the mismatches, so these tests tamper
with stored rows directly (as a bad migration or a hand edit would) and check the
exact problems reported, on both databases.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update

from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import reservations_match_entries, verify
from yinfin_flow.db.models import Reservation

from ..factories import line_req, org_in


def _reserve_three(db, org):
    """Three reservations: one open, one moved to actual, one released and closed."""
    with db.unit_of_work() as s:
        b = Budgets(s)
        ids = [
            b.reserve(f"k{n}", ("expense", str(n)), [line_req(org.child_line, "10.00")],
                      actor="amy").reservations[0].id
            for n in range(3)
        ]
        b.advance("adv", ids[1], "actual", actor="amy")
        b.release_document("rel", ("expense", "2"), actor="amy")
    return ids


def _tamper(db, res_id, **values):
    with db.unit_of_work() as s:
        s.execute(update(Reservation).where(Reservation.id == res_id).values(**values))


def test_clean_reservations_report_nothing(db):
    org = org_in(db)
    _reserve_three(db, org)
    with db.unit_of_work(readonly=True) as s:
        assert reservations_match_entries(s) == []
        assert verify(s) == []


def test_a_stage_that_differs_from_its_entries_is_named(db):
    org = org_in(db)
    open_id, actual_id, _ = _reserve_three(db, org)
    _tamper(db, open_id, pre_encumbered=Decimal("7.5"))
    _tamper(db, actual_id, encumbered=Decimal("1"))
    with db.unit_of_work(readonly=True) as s:
        found = [str(p) for p in reservations_match_entries(s)]
    assert found == [
        f"[reservations] reservation {open_id}: pre_encumbered is 7.5000 but entries sum to 10.0000",
        # Moved straight from pre-encumbered to actual: no encumbered entry at all.
        f"[reservations] reservation {actual_id}: encumbered is 1.0000 but entries sum to 0",
    ]


def test_entries_that_net_to_zero_still_count(db):
    org = org_in(db)
    _, actual_id, closed_id = _reserve_three(db, org)
    _tamper(db, actual_id, actual=Decimal("2"))  # its entries: +10 actual
    _tamper(db, closed_id, pre_encumbered=Decimal("3"), status="open")  # +10 and -10
    with db.unit_of_work(readonly=True) as s:
        found = [str(p) for p in reservations_match_entries(s)]
    assert found == [
        f"[reservations] reservation {actual_id}: actual is 2.0000 but entries sum to 10.0000",
        f"[reservations] reservation {closed_id}: pre_encumbered is 3.0000 but entries sum to 0.0000",
    ]


def test_closed_holding_and_negative_stages_are_named(db):
    org = org_in(db)
    open_id, _, closed_id = _reserve_three(db, org)
    # Consistent with the entries, so only the status rule can catch it.
    _tamper(db, open_id, status="closed")
    with db.unit_of_work(readonly=True) as s:
        found = [str(p) for p in reservations_match_entries(s)]
    assert found == [
        f"[ended_requests_hold_nothing] reservation {open_id}: closed but still holds 10.0000",
    ]
    _tamper(db, closed_id, encumbered=Decimal("-1"))
    with db.unit_of_work(readonly=True) as s:
        found = [str(p) for p in reservations_match_entries(s)]
    assert f"[reservations] reservation {closed_id}: a stage holds a negative amount" in found
    assert f"[reservations] reservation {closed_id}: encumbered is -1.0000 but entries sum to 0" in found
