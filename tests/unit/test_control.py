"""Control decisions and liquidation plans (domain/budget.py): pure, no database."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yinfin_flow.domain.budget import (
    DEFAULT_RULE,
    DEFAULT_THRESHOLDS,
    Action,
    Bucket,
    Buckets,
    ControlRule,
    InsufficientHold,
    Mode,
    Move,
    OverBudget,
    StageHold,
    Threshold,
    apply_moves,
    check_line,
    controlling_lines,
    effective_rule,
    plan_advance,
    plan_release,
    raise_if_blocked,
)


def check(rule: ControlRule, budget: str, consumed: str, delta: str, *, self_: bool = True):
    return check_line(
        line_id=7,
        line_label="ACME/2026-01/RD/TRAVEL",
        rule=rule,
        basis_buckets=Buckets(D(budget), D(consumed), D(0), D(0)),
        delta=D(delta),
        currency="CNY",
        decided_by_self=self_,
    )


HARD = ControlRule(Mode.HARD)

# -- modes -------------------------------------------------------------------------------


def test_shipped_default_is_sap_90_warn_100_block_hard() -> None:
    assert DEFAULT_RULE.mode is Mode.HARD
    assert (
        Threshold(D(90), Action.WARN, notify=True),
        Threshold(D(100), Action.BLOCK, notify=True),
    ) == DEFAULT_THRESHOLDS
    assert check(DEFAULT_RULE, "100", "0", "89.99").level is None
    assert check(DEFAULT_RULE, "100", "0", "90").level is None  # reaching means going beyond
    warn = check(DEFAULT_RULE, "100", "0", "90.01")
    assert (warn.level, warn.blocked, warn.notify) == (Action.WARN, False, True)
    full = check(DEFAULT_RULE, "100", "0", "100")  # exactly the budget is allowed
    assert (full.level, full.blocked, full.over) == (Action.WARN, False, False)
    over = check(DEFAULT_RULE, "100", "0", "100.01")
    assert (over.level, over.blocked, over.over) == (Action.BLOCK, True, True)


@pytest.mark.parametrize(
    ("mode", "blocked"),
    [(Mode.HARD, True), (Mode.SOFT, False), (Mode.TRACK, False), (Mode.NONE, False)],
)
def test_only_hard_blocks_but_every_mode_knows_it_is_over(mode: Mode, blocked: bool) -> None:
    c = check(ControlRule(mode), "100", "60", "50")
    assert c.blocked is blocked
    assert c.over is True
    assert c.level is Action.BLOCK
    assert c.available_after == D("-10")


def test_percent_tolerance_relaxes_the_block() -> None:
    rule = ControlRule(Mode.HARD, tolerance_percent=D(10))
    assert rule.tolerance(D(200)) == D(20)
    assert not check(rule, "200", "0", "220").blocked
    assert check(rule, "200", "0", "220.01").blocked


def test_the_tolerance_in_answers_is_at_the_stored_scale() -> None:
    # 5 % of 15,000.0000 computes as 750.00000000; answers and refusals show 750.0000
    c = check(ControlRule(Mode.HARD, tolerance_percent=D(5)), "15000.0000", "0", "99999")
    assert c.to_dict()["tolerance"] == "750.0000"
    with pytest.raises(OverBudget) as err:
        raise_if_blocked([c], "ACME/2026-01/RD/TRAVEL")
    assert err.value.details["tolerance"] == "750.0000"


def test_absolute_tolerance_relaxes_the_block() -> None:
    rule = ControlRule(Mode.HARD, tolerance_amount=D("5.00"))
    assert not check(rule, "200", "0", "205").blocked
    assert check(rule, "200", "0", "205.01").blocked


@pytest.mark.parametrize(
    ("budget", "expected"),
    [("1000", D("50")), ("100", D("10")), ("0", D("0"))],  # whichever limit is hit first
)
def test_percent_and_absolute_tolerance_the_smaller_wins(budget: str, expected: D) -> None:
    rule = ControlRule(Mode.HARD, tolerance_percent=D(10), tolerance_amount=D(50))
    assert rule.tolerance(D(budget)) == expected
    assert not check(rule, budget, "0", str(D(budget) + expected)).blocked
    assert check(rule, budget, "0", str(D(budget) + expected + D("0.01"))).blocked


def test_tolerance_percent_of_a_negative_budget_is_zero() -> None:
    assert ControlRule(tolerance_percent=D(10)).tolerance(D(-50)) == 0


def test_thresholds_info_warn_block_and_notify() -> None:
    rule = ControlRule(
        Mode.HARD,
        thresholds=(
            Threshold(D(70), Action.INFO),
            Threshold(D(85), Action.WARN, notify=True),
            Threshold(D(100), Action.BLOCK),
        ),
    )
    assert check(rule, "100", "0", "70").level is None
    info = check(rule, "100", "0", "70.01")
    assert (info.level, info.notify, info.blocked) == (Action.INFO, False, False)
    warn = check(rule, "100", "50", "35.01")
    assert (warn.level, warn.notify, warn.blocked) == (Action.WARN, True, False)
    assert warn.usage_percent == D("85.01")
    assert check(rule, "100", "50", "50.01").blocked


def test_a_block_threshold_below_100_blocks_early_under_hard_only() -> None:
    rule = ControlRule(Mode.HARD, thresholds=(Threshold(D(80), Action.BLOCK),))
    assert check(rule, "100", "0", "80").level is None  # exactly 80 % does not reach it
    c = check(rule, "100", "0", "80.01")
    assert c.blocked and not c.over
    soft = check(ControlRule(Mode.SOFT, thresholds=rule.thresholds), "100", "0", "80.01")
    assert soft.level is Action.BLOCK and not soft.blocked


@pytest.mark.parametrize("percent", ["50", "80", "99.5"])
def test_every_threshold_is_reached_by_the_same_rule_going_beyond_it(percent: str) -> None:
    # One rule at every level: exactly the threshold does not reach it, a cent more does.
    p = D(percent)
    for action in Action:
        rule = ControlRule(Mode.HARD, thresholds=(Threshold(p, action),))
        at = check(rule, "1000", "0", str(p * 10))
        beyond = check(rule, "1000", "0", str(p * 10 + D("0.01")))
        assert at.level is None and not at.blocked, (percent, action)
        assert beyond.level is action and beyond.blocked is (action is Action.BLOCK), (percent, action)
    # ... and 100:block too (beyond 100 % is over budget): exactly the budget is allowed.
    full = ControlRule(Mode.HARD, thresholds=(Threshold(D(100), Action.BLOCK),))
    assert not check(full, "1000", "0", "1000").blocked
    assert check(full, "1000", "0", "1000.01").blocked


def test_a_threshold_refusal_names_the_threshold_not_the_budget() -> None:
    from yinfin_flow.domain.budget import ThresholdBlocked

    rule = ControlRule(Mode.HARD, thresholds=(Threshold(D(80), Action.BLOCK),))
    c = check(rule, "1000", "0", "850")
    with pytest.raises(ThresholdBlocked) as err:
        raise_if_blocked([c], "ACME/2026-01/RD/TRAVEL")
    e = err.value
    assert e.code == "E1_threshold_blocked"
    assert "80 % block threshold" in e.message and "over budget" not in e.message
    assert e.details["threshold"] == {"percent": "80", "action": "block", "notify": False}
    assert e.details["usage_percent"] == "85.00"
    # Over the budget itself, the refusal stays an over-budget one.
    with pytest.raises(OverBudget) as over:
        raise_if_blocked([check(rule, "1000", "0", "1000.01")], "x")
    assert over.value.code == "E1_over_budget"


def test_over_blocks_under_hard_even_without_a_block_threshold() -> None:
    rule = ControlRule(Mode.HARD, thresholds=(Threshold(D(50), Action.INFO),))
    c = check(rule, "100", "0", "101")
    assert c.level is Action.BLOCK and c.blocked


def test_zero_budget_any_consumption_beyond_tolerance_blocks() -> None:
    assert check(HARD, "0", "0", "0.01").blocked
    assert check(HARD, "0", "0", "0.01").usage_percent is None
    assert not check(ControlRule(Mode.HARD, tolerance_amount=D(5)), "0", "0", "5").blocked


def test_zero_delta_recheck_blocks_only_a_real_overrun() -> None:
    # An approval step re-checks what is already held: at 100 % it still passes.
    assert not check(HARD, "100", "100", "0").blocked
    assert check(HARD, "100", "100.01", "0").blocked
    # ... even when a block threshold below 100 % has been reached.
    early = ControlRule(Mode.HARD, thresholds=(Threshold(D(80), Action.BLOCK),))
    assert not check(early, "100", "90", "0").blocked


def test_reductions_are_never_blocked() -> None:
    c = check(HARD, "100", "150", "-10")
    assert c.over and not c.blocked


def test_raise_if_blocked_names_the_deciding_line_and_breakdown() -> None:
    ok = check(HARD, "100", "0", "10")
    parent = check(HARD, "100", "95", "10", self_=False)
    raise_if_blocked([ok], "child")  # nothing blocked: no error
    with pytest.raises(OverBudget) as err:
        raise_if_blocked([ok, parent], "ACME/2026-01/RD-APP/TRAVEL")
    e = err.value
    assert e.code == "E1_over_budget"
    assert e.details["line_id"] == 7
    assert e.details["requested_line"] == "ACME/2026-01/RD-APP/TRAVEL"
    assert e.details["asked"] == "10" and e.details["available"] == "5"
    assert e.details["breakdown"] == {
        "budget": "100", "pre_encumbered": "95", "encumbered": "0", "actual": "0", "available": "5",
    }
    assert "controlling line" in e.message
    with pytest.raises(OverBudget, match="the line itself"):
        raise_if_blocked([check(HARD, "1", "0", "2")], "x")


def test_check_to_dict_is_strings_not_floats() -> None:
    d = check(HARD, "100", "0", "10").to_dict()
    assert d["asked"] == "10" and d["available_after"] == "90"
    assert d["usage_percent"] == "10.00"
    assert all(not isinstance(v, float) for v in d.values())


@given(
    budget=st.decimals(min_value=1, max_value=10**6, places=2),
    consumed=st.decimals(min_value=0, max_value=10**6, places=2),
    delta=st.decimals(min_value=D("0.01"), max_value=10**6, places=2),
    tol=st.decimals(min_value=0, max_value=100, places=2),
)
def test_hard_blocks_exactly_when_the_result_would_pass_the_tolerance(budget, consumed, delta, tol) -> None:
    rule = ControlRule(Mode.HARD, tolerance_percent=tol)
    c = check_line(
        line_id=1, line_label="L", rule=rule, basis_buckets=Buckets(budget, consumed),
        delta=delta, currency="CNY", decided_by_self=True,
    )
    assert c.blocked == (budget - consumed - delta < -(budget * tol / 100))


# -- rule inheritance ---------------------------------------------------------------------

ROOT, MID, LEAF = 1, 2, 3
SOFT_ROOT = ControlRule(Mode.SOFT, line_id=ROOT)


def test_effective_rule_own_then_nearest_subtree_ancestor_then_default() -> None:
    assert effective_rule([ROOT, MID, LEAF], {}) is DEFAULT_RULE
    assert effective_rule([ROOT, MID, LEAF], {ROOT: SOFT_ROOT}) is SOFT_ROOT
    mid = ControlRule(Mode.TRACK, line_id=MID)
    assert effective_rule([ROOT, MID, LEAF], {ROOT: SOFT_ROOT, MID: mid}) is mid
    own = ControlRule(Mode.NONE, line_id=LEAF)
    assert effective_rule([ROOT, MID, LEAF], {ROOT: SOFT_ROOT, MID: mid, LEAF: own}) is own


def test_a_rule_not_for_the_subtree_stops_at_its_line() -> None:
    only_root = ControlRule(Mode.SOFT, subtree=False, line_id=ROOT)
    assert effective_rule([ROOT], {ROOT: only_root}) is only_root
    assert effective_rule([ROOT, LEAF], {ROOT: only_root}) is DEFAULT_RULE
    # ... but a subtree rule further up still reaches past it
    top = ControlRule(Mode.TRACK, line_id=0)
    assert effective_rule([0, ROOT, LEAF], {0: top, ROOT: only_root}) is top


def test_controlling_lines_are_self_first_then_every_ancestor_with_its_effective_rule() -> None:
    only_root = ControlRule(Mode.SOFT, subtree=False, line_id=ROOT)
    mid = ControlRule(Mode.TRACK, line_id=MID)
    got = controlling_lines([ROOT, MID, LEAF], {ROOT: only_root, MID: mid})
    assert got == [(LEAF, mid), (MID, mid), (ROOT, only_root)]
    # A middle line that only inherits hard control is still checked (roll-up control).
    got = controlling_lines([ROOT, MID, LEAF], {ROOT: HARD})
    assert got == [(LEAF, HARD), (MID, HARD), (ROOT, HARD)]
    assert controlling_lines([LEAF], {}) == [(LEAF, DEFAULT_RULE)]


# -- liquidation -------------------------------------------------------------------------


def test_advance_to_encumbered_liquidates_pre_encumbered() -> None:
    plan = plan_advance(StageHold(D(100)), Bucket.ENCUMBERED, D(100))
    assert plan.moves == [Move(Bucket.PRE_ENCUMBERED, D(-100)), Move(Bucket.ENCUMBERED, D(100))]
    assert plan.extra_consumption == 0


def test_partial_advance_leaves_the_rest_held() -> None:
    hold = StageHold(D(100))
    plan = plan_advance(hold, Bucket.ENCUMBERED, D(30))
    assert plan.extra_consumption == 0
    assert apply_moves(hold, plan.moves) == StageHold(D(70), D(30), D(0))


def test_advance_to_actual_liquidates_encumbered_before_pre_encumbered() -> None:
    hold = StageHold(D(40), D(50), D(0))
    plan = plan_advance(hold, Bucket.ACTUAL, D(60))
    assert plan.moves == [
        Move(Bucket.ENCUMBERED, D(-50)),
        Move(Bucket.PRE_ENCUMBERED, D(-10)),
        Move(Bucket.ACTUAL, D(60)),
    ]
    assert apply_moves(hold, plan.moves) == StageHold(D(30), D(0), D(60))


def test_advancing_more_than_held_is_extra_consumption() -> None:
    hold = StageHold(D(10), D(20), D(5))
    plan = plan_advance(hold, Bucket.ACTUAL, D(50))
    assert plan.extra_consumption == D(20)
    assert apply_moves(hold, plan.moves) == StageHold(D(0), D(0), D(55))
    # to encumbered only pre-encumbered is liquidated; encumbered stays
    plan = plan_advance(hold, Bucket.ENCUMBERED, D(15))
    assert plan.extra_consumption == D(5)
    assert apply_moves(hold, plan.moves) == StageHold(D(0), D(35), D(5))


def test_advance_only_to_later_stages() -> None:
    for target in (Bucket.BUDGET, Bucket.PRE_ENCUMBERED):
        with pytest.raises(ValueError):
            plan_advance(StageHold(D(1)), target, D(1))


def test_release_latest_first_partial_and_full() -> None:
    hold = StageHold(D(30), D(20), D(7))
    assert plan_release(hold, D(10)) == [Move(Bucket.PRE_ENCUMBERED, D(-10))]
    assert plan_release(hold, D(40)) == [
        Move(Bucket.PRE_ENCUMBERED, D(-30)), Move(Bucket.ENCUMBERED, D(-10)),
    ]
    full = plan_release(hold)
    assert apply_moves(hold, full) == StageHold(D(0), D(0), D(7))  # actual is never released
    assert plan_release(StageHold(actual=D(5))) == []


def test_releasing_more_than_held_is_refused() -> None:
    with pytest.raises(InsufficientHold) as err:
        plan_release(StageHold(D(5), D(5)), D("10.01"))
    assert err.value.details == {"asked": "10.01", "held": "10"}


def test_apply_moves_ignores_budget_moves_and_does_not_mutate() -> None:
    hold = StageHold(D(5))
    out = apply_moves(hold, [Move(Bucket.BUDGET, D(100)), Move(Bucket.PRE_ENCUMBERED, D(-5))])
    assert out == StageHold() and hold == StageHold(D(5))


amounts = st.decimals(min_value=0, max_value=10**6, places=2)


@given(pre=amounts, enc=amounts, act=amounts, amount=st.decimals(min_value=D("0.01"), max_value=10**6, places=2),
       target=st.sampled_from([Bucket.ENCUMBERED, Bucket.ACTUAL]))
def test_advance_never_leaves_negative_stages_and_conserves_money(pre, enc, act, amount, target) -> None:
    hold = StageHold(pre, enc, act)
    plan = plan_advance(hold, target, amount)
    after = apply_moves(hold, plan.moves)
    assert min(after.pre_encumbered, after.encumbered, after.actual) >= 0
    assert plan.extra_consumption >= 0
    total = lambda h: h.pre_encumbered + h.encumbered + h.actual  # noqa: E731
    # the move itself nets to zero; only what was not held is new consumption
    assert total(after) - total(hold) == plan.extra_consumption
    assert getattr(after, target.value) == getattr(hold, target.value) + amount


@given(pre=amounts, enc=amounts, act=amounts, part=st.one_of(st.none(), amounts))
def test_release_released_plus_kept_equals_held(pre, enc, act, part) -> None:
    hold = StageHold(pre, enc, act)
    if part is not None and part > hold.open_amount:
        with pytest.raises(InsufficientHold):
            plan_release(hold, part)
        return
    moves = plan_release(hold, part)
    after = apply_moves(hold, moves)
    released = -sum((m.amount for m in moves), D(0))
    assert all(m.amount < 0 for m in moves)
    assert min(after.pre_encumbered, after.encumbered) >= 0
    assert released == (hold.open_amount if part is None else part)
    assert released + after.open_amount == hold.open_amount
    assert after.actual == hold.actual
