"""What-if simulation of control rules is exact: what it says a proposed rule would have
done is what live control does when the rule is really in force.

A history is written under the rule in force; the simulation replays it under a proposed
rule. Then a fresh database gets the proposed rule for real and the same requests are
made live, each refused one left out afterwards (as a refusal leaves it out): every
request's decision (refused or not, and its level) must match the simulation's, and the
current side must match what live control decided when the history was written.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.simulation import default_window, simulate
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetEntry
from yinfin_flow.domain.budget import OverBudget
from yinfin_flow.domain.errors import NotFound, ValidationError

from ..factories import Org, line_req, org_in

# (op, request, which line, amount): a month of travel requests on RD-APP (child) and RD-WEB
HISTORY: list[tuple[str, str, str, str]] = [
    ("reserve", "s1", "sibling", "300"),
    ("reserve", "c1", "child", "250"),
    ("reserve", "c2", "child", "200"),
    ("reserve", "c3", "child", "100"),  # child at 550 / 600: past 90 %
    ("release", "c2", "child", ""),
    ("reserve", "c4", "child", "200"),
    ("reserve", "c5", "child", "80"),  # 630: over the child's budget
    ("reserve", "c6", "child", "40"),  # passes under the proposed rule only because c5 never held anything
    ("reserve", "s2", "sibling", "50"),
    ("release", "c5", "child", ""),
    ("reserve", "c7", "child", "45"),  # 635 under the proposed rule: refused there too
]
PROPOSED = {"mode": "hard", "thresholds": [{"percent": "80", "action": "warn"},
                                           {"percent": "100", "action": "block"}]}
RANK = {None: 0, "info": 1, "warn": 2, "block": 3}


def decision(checks: list[Any], blocked: bool) -> tuple[bool, str | None]:
    levels = [c.level.value if c.level else None for c in checks]
    return blocked, ("block" if blocked else max(levels, key=RANK.__getitem__, default=None))


def play(db: Database, org: Org, only: set[str] | None = None) -> dict[str, tuple[bool, str | None]]:
    """The history as live control decides it; a refused request's later steps are skipped
    (and requests not in ``only``, when given: those the history never had)."""
    lines = {"child": org.child_line, "sibling": org.sibling_line}
    out: dict[str, tuple[bool, str | None]] = {}
    for op, key, which, amount in HISTORY:
        if only is not None and key not in only:
            continue
        if op == "release":
            if not out[key][0]:
                with db.unit_of_work() as s:
                    Budgets(s).release_document(f"rel-{key}", ("expense", key), actor="amy")
            continue
        try:
            with db.unit_of_work() as s:
                result = Budgets(s).reserve(f"res-{key}", ("expense", key), [line_req(lines[which], amount)],
                                            actor="amy")
            out[key] = decision(result.checks, False)
        except OverBudget:
            out[key] = (True, "block")
    return out


def simulated(result: dict[str, Any], side: str) -> dict[str, tuple[bool, str | None]]:
    return {r["document"].split(":")[1]: (r[side]["blocked"], r[side]["level"]) for r in result["every_request"]}


@pytest.fixture
def fresh(sqlite_template: Path, tmp_path: Path):
    path = tmp_path / "fresh.sqlite"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def test_the_simulation_decides_as_live_control_does(db: Database, fresh: Database):
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="soft", actor="cfo")
    history = play(db, org)
    with db.unit_of_work(readonly=True) as s:
        entries = s.scalar(select(func.count()).select_from(BudgetEntry))
        result = simulate(s, org.child_line, PROPOSED, every_request=True)
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(BudgetEntry)) == entries  # read-only

    live_org = org_in(fresh)
    with fresh.unit_of_work() as s:
        setup.set_rule(s, live_org.child_line, mode="hard", actor="cfo", thresholds=PROPOSED["thresholds"])
    live = play(fresh, live_org)

    assert live["c5"] == (True, "block") and live["c6"] == (False, "warn")  # the history is not trivial
    requests = {key for op, key, which, _ in HISTORY if op == "reserve" and which == "child"}
    assert simulated(result, "proposed") == {k: live[k] for k in requests}
    assert simulated(result, "current") == {k: history[k] for k in requests}
    assert result["requests"] == len(requests)
    assert [r["document"] for r in result["passed_only_under_current"]["items"]] == ["expense:c5", "expense:c7"]
    assert result["passed_only_under_proposed"]["count"] == 0
    assert result["proposed"]["refused"] == 2 and result["proposed"]["refused_amount"] == "125.0000"
    assert result["current"]["refused"] == 0
    refused = result["refused"]["items"][0]
    assert (refused["proposed"]["threshold"], refused["proposed"]["decided_by"]) == ("100", "ACME/2026-01/RD-APP/TRAVEL")
    warned = {r["document"]: r["proposed"]["threshold"] for r in result["warned"]["items"]}
    assert warned == {f"expense:{k}": "80" for k in requests if live[k] == (False, "warn")}
    # peak utilisation and the day available went below zero, each side
    assert result["current"]["peak_usage_percent"] == "111.67"  # 670 / 600
    assert result["current"]["first_negative_on"] == date.today()
    assert result["proposed"]["peak_usage_percent"] == "98.33"  # 590 / 600: c5 never held anything
    assert result["proposed"]["first_negative_on"] is None
    assert result["proposed"]["rule"]["mode"] == "hard" and result["current"]["rule"]["mode"] == "soft"


def test_a_subtree_rule_on_the_parent_decides_its_children_as_live_control_does(db: Database, fresh: Database):
    rule = {"mode": "hard", "thresholds": [{"percent": "50", "action": "info"},
                                           {"percent": "90", "action": "block"}]}
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="soft", actor="cfo")
    history = play(db, org)
    happened = {k for k, (blocked, _) in history.items() if not blocked}
    assert happened == {k for _, k, _, _ in HISTORY} - {"s2"}  # s2 took the parent (default rule) past 1000
    with db.unit_of_work(readonly=True) as s:
        result = simulate(s, org.parent_line, rule, every_request=True)
    live_org = org_in(fresh)
    with fresh.unit_of_work() as s:
        setup.set_rule(s, live_org.child_line, mode="soft", actor="cfo")
        setup.set_rule(s, live_org.parent_line, actor="cfo", **rule)
    live = play(fresh, live_org, only=happened)

    assert result["requests"] == len(happened)  # every request on the parent's subtree, both children
    assert simulated(result, "proposed") == live
    assert simulated(result, "current") == {k: history[k] for k in happened}
    assert {k for k, (blocked, _) in live.items() if blocked} == {"c5", "c7"}  # 930, then 935 of 1000
    first = result["refused"]["items"][0]
    assert (first["document"], first["proposed"]["decided_by"], first["proposed"]["threshold"]) == (
        "expense:c5", "ACME/2026-01/RD/TRAVEL", "90")


def test_window_and_bad_input(db: Database):
    org = org_in(db)
    assert default_window(date(2028, 2, 29)) == (date(2027, 2, 28), date(2028, 2, 29))
    assert default_window(date(2026, 11, 30)) == (date(2025, 11, 30), date(2026, 11, 30))
    with db.unit_of_work(readonly=True) as s:
        with pytest.raises(NotFound):
            simulate(s, 9999, {"mode": "hard"})
        with pytest.raises(ValidationError) as info:
            simulate(s, org.child_line, {"mode": "strict"})
        assert info.value.details["field"] == "mode"
        with pytest.raises(ValidationError):
            simulate(s, org.child_line, {"mode": "hard"}, start=date(2026, 2, 1), end=date(2026, 1, 1))
        empty = simulate(s, org.child_line, {"mode": "hard"}, start=date(2020, 1, 1), end=date(2020, 12, 31))
    assert (empty["requests"], empty["proposed"]["peak_usage_percent"]) == (0, None)
