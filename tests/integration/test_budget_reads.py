"""Preview and the re-check at each approval: what they answer, by either read path.

On PostgreSQL both read the lines, their ancestors, balances and rules in one
statement (``budget/combined.py``); elsewhere, or when a rule with another basis
exists, through the general path. The answers must be the same.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from yinfin_flow.budget import setup
from yinfin_flow.budget.queries import BudgetQueries
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.domain.budget import LineCheck

from ..factories import Org, line_req, org_in


def _summary(checks: list[LineCheck]) -> list[tuple[object, ...]]:
    return [
        (c.line_id, c.rule.mode.value, c.rule.basis.value, c.rule.line_id, c.basis_buckets, c.delta,
         c.level, c.blocked, c.over)
        for c in checks
    ]


def _both_ways(db: Database, monkeypatch: pytest.MonkeyPatch, read: object) -> list[tuple[object, ...]]:
    """``read(budgets)`` by the one-statement path (where it applies) and by the general path."""
    with db.unit_of_work(readonly=True) as s:
        combined = _summary(read(Budgets(s)))  # type: ignore[operator]
    with monkeypatch.context() as m:
        m.setattr(BudgetQueries, "_combined", lambda self: False)
        with db.unit_of_work(readonly=True) as s:
            general = _summary(read(Budgets(s)))  # type: ignore[operator]
    assert combined == general
    return combined


@pytest.fixture
def held(db: Database) -> tuple[Org, list[int]]:
    """Reservations on the child (twice), the sibling and the office line; a soft parent."""
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.parent_line, mode="soft", actor="cfo", subtree=False,
                       thresholds=[{"percent": "50", "action": "warn"}])
        b = Budgets(s)
        ids = [v.id for v in b.reserve("a", ("expense", "1"), [
            line_req(org.child_line, "300", ref="1"), line_req(org.sibling_line, "250", ref="2"),
            line_req(org.office_line, "95", ref="3"),
        ], actor="amy").reservations]
        ids += [v.id for v in b.reserve("b", ("expense", "1"), [line_req(org.child_line, "200", ref="4")],
                                        actor="amy").reservations]
    return org, ids


def test_recheck_names_each_controlling_line_once_in_reservation_order(db, held, monkeypatch):
    org, ids = held
    checks = _both_ways(db, monkeypatch, lambda b: b.recheck(list(reversed(ids))))
    assert [c[0] for c in checks] == [org.child_line, org.parent_line, org.sibling_line, org.office_line]
    child, parent, sibling, office = checks
    assert child[4].pre_encumbered == 500 and child[6] is None and not child[7]  # 83 %: below 90
    assert parent[1] == "soft" and parent[4].pre_encumbered == 750 and parent[6].value == "warn"
    assert sibling[1] == "hard" and sibling[3] is None  # subtree=False: the default governs it
    assert office[4].available == 5 and not office[7]


def test_recheck_of_nothing_known_is_empty(db, held, monkeypatch):
    assert _both_ways(db, monkeypatch, lambda b: b.recheck([987654])) == []


def test_preview_of_several_lines_counts_the_earlier_ones(db, held, monkeypatch):
    org, _ = held
    checks = _both_ways(db, monkeypatch, lambda b: b.preview([
        line_req(org.child_line, "110", ref="1"), line_req(org.sibling_line, "20", ref="2"),
    ]))
    by_line = {(c[0], c[5]): c for c in checks}
    assert by_line[(org.child_line, Decimal(110))][7]  # 500 of 600 held already: blocked
    # the parent counts the child's 110 before the sibling's 20
    assert by_line[(org.parent_line, Decimal(20))][4].pre_encumbered == 750 + 110


def test_reads_with_a_cumulative_rule_count_the_earlier_periods(db, monkeypatch):
    org = org_in(db)  # office_line: January, budget 100
    with db.unit_of_work() as s:
        feb = setup.create_line(s, company_code="ACME", period_code="2026-02", cost_centre="RD", item="OFFICE")
        b = Budgets(s)
        b.adjust(None, feb.id, "50", actor="cfo", reason="feb")
        setup.set_rule(s, feb.id, mode="hard", actor="cfo", basis="cumulative")
        jan = b.reserve("j", ("expense", "1"), [line_req(org.office_line, "60")], actor="amy").reservations[0].id
        feb_id = feb.id
    checks = _both_ways(db, monkeypatch, lambda b: b.recheck([jan]))
    assert [c[0] for c in checks] == [org.office_line, feb_id]  # February's basis counts January
    assert checks[1][4].budget == 150 and checks[1][4].pre_encumbered == 60
    checks = _both_ways(db, monkeypatch, lambda b: b.preview([line_req(feb_id, "91", on=date(2026, 2, 3))]))
    assert checks[0][7]  # 60 + 91 > 150: blocked
