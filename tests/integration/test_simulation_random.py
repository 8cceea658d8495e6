"""The simulation's replay against a slow reference on random histories: live control.

For a random history of reservations and releases on two children of a parent line,
written under a random rule in force, the simulation of a random proposed rule on the
parent (with its subtree) must decide every request as live control decides it when
the proposed rule is really in force and the same requests are made one by one on a
fresh database (a request refused there leaves its release out, as a refusal does);
and its "current" side must be what live control decided when the history was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.simulation import simulate
from yinfin_flow.db.engine import Database
from yinfin_flow.domain.budget import OverBudget

from ..factories import Org, line_req, org_in
from .test_simulation import decision, simulated

Step = tuple[str, str, str, str]  # (reserve | release, request, child | sibling, amount)


def history_of(ops: list[tuple[bool, str, int]]) -> list[Step]:
    """Reservations, and now and then the release of the oldest one still held."""
    out: list[Step] = []
    held: list[tuple[str, str]] = []
    for n, (release, which, amount) in enumerate(ops):
        if release and held:
            key, line = held.pop(0)
            out.append(("release", key, line, ""))
        else:
            out.append(("reserve", f"r{n}", which, str(amount)))
            held.append((f"r{n}", which))
    return out


def play(db: Database, org: Org, history: list[Step], only: set[str] | None = None) -> dict[str, Any]:
    lines = {"child": org.child_line, "sibling": org.sibling_line}
    out: dict[str, Any] = {}
    for op, key, which, amount in history:
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


def fresh(template: Path, folder: Path, name: str) -> Database:
    path = folder / f"{name}.sqlite"
    shutil.copy(template, path)
    return Database(f"sqlite:///{path}")


OPS = st.lists(st.tuples(st.booleans(), st.sampled_from(["child", "sibling"]), st.integers(1, 350)),
               min_size=1, max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, mode=st.sampled_from(["soft", "hard"]), warn=st.sampled_from(["40", "70"]),
       block=st.sampled_from(["60", "90", "100"]))
def test_random_histories_are_decided_as_live_control_decides_them(
        sqlite_template: Path, tmp_path_factory: Any, ops: list[tuple[bool, str, int]], mode: str, warn: str,
        block: str) -> None:
    history = history_of(ops)
    proposed = {"mode": "hard", "thresholds": [{"percent": warn, "action": "warn"},
                                               {"percent": block, "action": "block"}]}
    folder = tmp_path_factory.mktemp("random")
    written, live_db = fresh(sqlite_template, folder, "written"), fresh(sqlite_template, folder, "live")
    try:
        org = org_in(written)
        with written.unit_of_work() as s:
            setup.set_rule(s, org.child_line, mode=mode, actor="cfo")
        happened_as = play(written, org, history)
        happened = {k for k, (blocked, _) in happened_as.items() if not blocked}
        with written.unit_of_work(readonly=True) as s:
            result = simulate(s, org.parent_line, proposed, every_request=True)

        live_org = org_in(live_db)
        with live_db.unit_of_work() as s:
            setup.set_rule(s, live_org.child_line, mode=mode, actor="cfo")
            setup.set_rule(s, live_org.parent_line, actor="cfo", **proposed)
        live = play(live_db, live_org, history, only=happened)
    finally:
        written.dispose()
        live_db.dispose()

    assert result["requests"] == len(happened)
    assert simulated(result, "proposed") == live
    assert simulated(result, "current") == {k: happened_as[k] for k in happened}
    assert result["proposed"]["refused"] == sum(1 for blocked, _ in live.values() if blocked)
