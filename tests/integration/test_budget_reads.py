"""Preview and the re-check at each approval: what they answer, by either read path.

On PostgreSQL both read the lines, their ancestors, balances and rules in one
statement (``budget/combined.py``); elsewhere, or when a rule with another basis
exists, through the general path. The answers must be the same.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event

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


# -- a document's reservations and their re-check in one statement --------------------


def _document_both_ways(db: Database, monkeypatch: pytest.MonkeyPatch, doc: tuple[str, str],
                        one_statement: bool = True) -> tuple[
        list[dict[str, object]], list[tuple[object, ...]]]:
    """``read_document`` (one statement where it applies) against the two reads it replaces,
    ``reservations_for`` and the ``recheck`` of the open ones, by either path; and its
    statement count (a rule with another basis brings in the general path's reads)."""
    statements: list[str] = []

    def count(conn: object, cursor: object, sql: str, *args: object) -> None:
        statements.append(sql)

    with db.unit_of_work(readonly=True) as s:
        b = Budgets(s)
        s.connection()  # BEGIN (SQLite) before counting
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            views, checks = b.read_document(*doc)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        one = ([v.to_dict() for v in views], _summary(checks))
    assert len(statements) == 1 or not one_statement
    with db.unit_of_work(readonly=True) as s:
        b = Budgets(s)
        views = b.reservations_for(*doc)
        two = ([v.to_dict() for v in views], _summary(b.recheck([v.id for v in views if v.status == "open"])))
    with monkeypatch.context() as m:
        m.setattr(BudgetQueries, "_combined", lambda self: False)
        with db.unit_of_work(readonly=True) as s:
            views, checks = Budgets(s).read_document(*doc)
            general = ([v.to_dict() for v in views], _summary(checks))
    assert one == two == general
    return one


def test_a_documents_reservations_and_recheck_are_one_read_with_the_same_answer(db, held, monkeypatch):
    org, ids = held
    with db.unit_of_work() as s:  # one closed, one on another document, one partly released
        b = Budgets(s)
        b.release("rel", [ids[2]], actor="amy", close=True)
        b.release("part", [ids[3]], "50", actor="amy")
        other = b.reserve("c", ("expense", "2"), [line_req(org.child_line, "10")], actor="amy").reservations[0].id
    views, checks = _document_both_ways(db, monkeypatch, ("expense", "1"))
    assert [v["id"] for v in views] == ids and other not in [v["id"] for v in views]
    assert [v["status"] for v in views] == ["open", "open", "closed", "open"]
    assert views[3]["pre_encumbered"] == "150.0000" and views[0]["rate"].startswith("1")
    # the office line's reservation is closed: not re-checked; the child's counts the other document
    assert [c[0] for c in checks] == [org.child_line, org.parent_line, org.sibling_line]
    assert checks[0][4].pre_encumbered == 300 + 150 + 10


def test_a_document_with_nothing_open_or_nothing_at_all_has_no_checks(db, held, monkeypatch):
    _, ids = held
    with db.unit_of_work() as s:
        Budgets(s).release("all", ids, actor="amy", close=True)
    views, checks = _document_both_ways(db, monkeypatch, ("expense", "1"))
    assert len(views) == 4 and checks == []
    assert _document_both_ways(db, monkeypatch, ("expense", "404")) == ([], [])


def test_a_documents_read_with_a_cumulative_rule_takes_the_general_checks(db, monkeypatch):
    org = org_in(db)
    with db.unit_of_work() as s:
        feb = setup.create_line(s, company_code="ACME", period_code="2026-02", cost_centre="RD", item="OFFICE")
        b = Budgets(s)
        b.adjust(None, feb.id, "50", actor="cfo", reason="feb")
        setup.set_rule(s, feb.id, mode="hard", actor="cfo", basis="cumulative")
        b.reserve("j", ("expense", "1"), [line_req(org.office_line, "60")], actor="amy")
        feb_id = feb.id
    _, checks = _document_both_ways(db, monkeypatch, ("expense", "1"), one_statement=False)
    assert [c[0] for c in checks] == [org.office_line, feb_id]
    assert checks[1][4].budget == 150 and checks[1][4].pre_encumbered == 60
