"""``Database.unit_of_work`` on both databases: what a session is left as, committed or not."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine

from ..factories import org_in


def test_what_a_unit_of_work_loaded_is_detached_after_it(db: Database):
    org = org_in(db)
    with db.unit_of_work() as s:
        line = s.get(BudgetLine, org.child_line)
        assert line is not None
    assert inspect(line).detached
    assert not s.in_transaction() and len(s.identity_map) == 0
    assert db.engine.pool.checkedout() == 0


def test_a_unit_of_work_that_loaded_nothing_ends_clean(db: Database):
    org_in(db)
    with db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(BudgetLine)) == 4
    assert not s.in_transaction() and len(s.identity_map) == 0
    assert db.engine.pool.checkedout() == 0
    with db.unit_of_work() as s2:  # the next one starts afresh
        assert s2 is not s and s2.scalar(select(func.count()).select_from(BudgetLine)) == 4


def test_a_failing_unit_of_work_rolls_back_and_detaches(db: Database):
    org = org_in(db)
    with pytest.raises(RuntimeError), db.unit_of_work() as s:
        line = s.get(BudgetLine, org.child_line)
        assert line is not None
        line.name = "renamed"
        s.flush()
        raise RuntimeError("the caller fails")
    assert inspect(line).detached
    assert not s.in_transaction() and len(s.identity_map) == 0
    assert db.engine.pool.checkedout() == 0
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(BudgetLine.name).where(BudgetLine.id == org.child_line)) != "renamed"
