"""Approver resolution on both databases: manager chains, role scopes, heads, delegation."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from yinfin_flow.budget import setup
from yinfin_flow.db.models.org import Delegation
from yinfin_flow.domain.errors import Conflict, NotFound, ValidationError
from yinfin_flow.engine import directory
from yinfin_flow.engine.approvers import (
    delegate_for,
    holds_role,
    managers_of,
    resolve,
    validate_rule,
)

ON = date(2026, 3, 10)

# HQ (head: gina) ← RD (head: rick) ← RD-APP (head: none) ; RD ← RD-WEB (head: walt, inactive)
# HQ ← FIN (head: cfo)
USERS = """id,name,email,company,department,manager,roles,active
gina,Gina GM,gina@acme.example,ACME,HQ,,employee;gm,1
rick,Rick RD,,ACME,RD,gina,employee;finance_reviewer@RD,1
walt,Walt Web,,ACME,RD-WEB,rick,employee,0
tess,Tess Team lead,,ACME,RD-APP,rick,employee,1
amy,Amy,,ACME,RD-APP,tess,employee,1
bob,Bob,,ACME,RD-WEB,walt,employee;finance_reviewer@RD-WEB,1
cfo,Clara CFO,,ACME,FIN,gina,cfo;finance_reviewer,1
fiona,Fiona,,ACME,FIN,cfo,finance_reviewer;finance_reviewer@FIN,1
frank,Frank,,ACME,FIN,cfo,finance_reviewer@FIN,1
olga,Olga (left),,ACME,FIN,cfo,finance_reviewer@FIN;finance_reviewer,0
"""


@pytest.fixture
def org(db):
    with db.unit_of_work() as s:
        setup.create_company(s, "ACME", "Acme Ltd", "CNY")
        setup.create_cost_centre(s, "ACME", "HQ", "Head office", manager="gina")
        setup.create_cost_centre(s, "ACME", "RD", "R&D", parent="HQ", manager="rick")
        setup.create_cost_centre(s, "ACME", "RD-APP", "R&D Apps", parent="RD")
        setup.create_cost_centre(s, "ACME", "RD-WEB", "R&D Web", parent="RD", manager="walt")
        setup.create_cost_centre(s, "ACME", "FIN", "Finance", parent="HQ", manager="cfo")
        directory.import_users_csv(s, USERS, actor="hr")
    return db


def run(db, rule, requester="amy", department="RD-APP", form=None, company="ACME"):
    with db.unit_of_work(readonly=True) as s:
        return resolve(s, rule, requester=requester, company=company, department=department,
                       form=form or {}, on=ON)


# --------------------------------------------------------------------------- manager chain


def test_manager_chain_levels_in_order(org):
    assert run(org, {"type": "manager"}) == ["tess"]
    assert run(org, {"type": "manager", "levels": 1}) == ["tess"]
    assert run(org, {"type": "manager", "levels": 2}) == ["tess", "rick"]
    assert run(org, {"type": "manager", "levels": 3}) == ["tess", "rick", "gina"]


def test_levels_beyond_the_top_stop_at_the_top(org):
    assert run(org, {"type": "manager", "levels": 10}) == ["tess", "rick", "gina"]
    assert run(org, {"type": "manager", "levels": 3}, requester="gina", department="HQ") == []


def test_inactive_manager_is_passed_over_without_using_a_level(org):
    # bob's manager walt has left: rick and gina are asked instead.
    assert run(org, {"type": "manager", "levels": 2}, requester="bob", department="RD-WEB") == ["rick", "gina"]


def test_unknown_requester_has_no_managers(org):
    assert run(org, {"type": "manager", "levels": 2}, requester="stranger") == []


def test_managers_of_for_escalation(org):
    with org.unit_of_work(readonly=True) as s:
        assert managers_of(s, "amy", 1) == ["tess"]
        assert managers_of(s, "tess", 5) == ["rick", "gina"]
        assert managers_of(s, "gina", 1) == []


# --------------------------------------------------------------------------- roles


def test_role_in_requester_department_only(org):
    rule = {"type": "role", "role": "finance_reviewer", "scope": "requester_department"}
    # bob holds the role for RD-WEB but is the requester: never returned.
    assert run(org, rule, requester="bob", department="RD-WEB") == []
    assert run(org, rule, requester="amy", department="RD-WEB") == ["bob"]
    assert run(org, rule, requester="amy", department="RD-APP") == []


def test_role_department_tree_walks_up_to_the_nearest_department_with_a_holder(org):
    rule = {"type": "role", "role": "finance_reviewer", "scope": "department_tree"}
    assert run(org, rule, department="RD-APP") == ["rick"]  # RD-APP has none, RD has rick
    assert run(org, rule, department="RD-WEB") == ["bob"]
    # FIN: fiona and frank (olga is inactive), sorted by id
    assert run(org, rule, department="FIN") == ["fiona", "frank"]
    # default scope is department_tree
    assert run(org, {"type": "role", "role": "finance_reviewer"}, department="RD-APP") == ["rick"]


def test_role_department_tree_falls_back_to_company_wide_holders(org):
    rule = {"type": "role", "role": "gm", "scope": "department_tree"}
    assert run(org, rule) == ["gina"]
    assert run(org, {"type": "role", "role": "nobody_has_this"}) == []


def test_role_company_scope_means_company_wide_holders(org):
    rule = {"type": "role", "role": "finance_reviewer", "scope": "company"}
    assert run(org, rule) == ["cfo", "fiona"]  # olga inactive; frank holds it for FIN only
    assert run(org, rule, requester="fiona", department="FIN") == ["cfo"]


def test_role_in_an_unknown_company_or_department(org):
    assert run(org, {"type": "role", "role": "gm", "scope": "company"}, company="NOPE") == []
    assert run(org, {"type": "role", "role": "finance_reviewer", "scope": "requester_department"},
               department="NOPE") == []


# --------------------------------------------------------------------------- named users, form fields


def test_named_user(org):
    assert run(org, {"type": "user", "user": "cfo"}) == ["cfo"]
    assert run(org, {"type": "user", "user": "walt"}) == []  # inactive
    assert run(org, {"type": "user", "user": "ghost"}) == []
    assert run(org, {"type": "user", "user": "amy"}) == []  # the requester


def test_form_field(org):
    rule = {"type": "form_field", "field": "project_manager"}
    assert run(org, rule, form={"project_manager": "rick"}) == ["rick"]
    assert run(org, rule, form={"project_manager": ["rick", "cfo", "rick", "walt", "amy", 7]}) == ["rick", "cfo"]
    assert run(org, rule, form={}) == []
    assert run(org, rule, form={"project_manager": "ghost"}) == []
    nested = {"type": "form_field", "field": "project.owner"}
    assert run(org, nested, form={"project": {"owner": "gina"}}) == ["gina"]
    assert run(org, nested, form={"project": "flat"}) == []


# --------------------------------------------------------------------------- department head


def test_department_head_walks_up_when_empty_inactive_or_the_requester(org):
    head = {"type": "department_head"}
    assert run(org, head, department="RD-APP") == ["rick"]  # RD-APP has no head
    assert run(org, head, requester="bob", department="RD-WEB") == ["rick"]  # walt inactive
    assert run(org, head, requester="rick", department="RD") == ["gina"]  # rick heads RD himself
    assert run(org, head, requester="gina", department="HQ") == []  # nobody above the GM
    assert run(org, head, requester="fiona", department="FIN") == ["cfo"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("rule", "field", "fragment"),
    [
        ({"type": "boss"}, "p.type", "must be one of"),
        ({}, "p.type", "must be one of"),
        ({"type": "manager", "level": 2}, "p.level", "unknown key"),
        ({"type": "manager", "levels": 0}, "p.levels", "1 to 20"),
        ({"type": "manager", "levels": True}, "p.levels", "whole number"),
        ({"type": "manager", "levels": "2"}, "p.levels", "whole number"),
        ({"type": "role"}, "p.role", "is required"),
        ({"type": "role", "role": "Finance Team"}, "p.role", "role name"),
        ({"type": "role", "role": "finance", "scope": "planet"}, "p.scope", "requester_department"),
        ({"type": "user"}, "p.user", "is required"),
        ({"type": "user", "user": "a b"}, "p.user", "user id"),
        ({"type": "form_field", "field": ""}, "p.field", "form field"),
        ({"type": "form_field", "field": "a..b"}, "p.field", "form field"),
        ({"type": "department_head", "levels": 1}, "p.levels", "unknown key"),
    ],
)
def test_validate_rule_names_the_path(rule, field, fragment):
    with pytest.raises(ValidationError) as err:
        validate_rule(rule, "p")
    assert err.value.details["field"] == field
    assert fragment in err.value.message


def test_validate_rule_accepts_every_documented_shape():
    for rule in [
        {"type": "manager", "levels": 2}, {"type": "manager"},
        {"type": "role", "role": "finance_reviewer", "scope": "requester_department"},
        {"type": "role", "role": "cfo", "scope": "company"}, {"type": "user", "user": "carol"},
        {"type": "form_field", "field": "project_manager"}, {"type": "department_head"},
    ]:
        validate_rule(rule, "states.review.approvers[0]")
    with pytest.raises(ValidationError, match="mapping"):
        validate_rule(["manager"], "x")  # type: ignore[arg-type]


def test_resolve_refuses_a_bad_rule(org):
    with pytest.raises(ValidationError) as err:
        run(org, {"type": "manager", "levels": 99})
    assert err.value.details["field"] == "rule.levels"


# --------------------------------------------------------------------------- delegation


def test_delegation_applies_within_its_dates_inclusive(org):
    with org.unit_of_work() as s:
        directory.delegate(s, "tess", "rick", date(2026, 3, 1), date(2026, 3, 10), actor="tess")
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "tess", date(2026, 2, 28)) is None
        assert delegate_for(s, "tess", date(2026, 3, 1)) == "rick"
        assert delegate_for(s, "tess", date(2026, 3, 10), "expense") == "rick"
        assert delegate_for(s, "tess", date(2026, 3, 11)) is None
        assert delegate_for(s, "amy", date(2026, 3, 5)) is None


def test_workflow_specific_delegation_wins_and_only_for_its_workflow(org):
    with org.unit_of_work() as s:
        directory.delegate(s, "cfo", "fiona", date(2026, 3, 1), date(2026, 3, 31))
        directory.delegate(s, "cfo", "frank", date(2026, 4, 1), date(2026, 4, 30), workflow="expense")
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "cfo", date(2026, 3, 5), "procurement") == "fiona"
        assert delegate_for(s, "cfo", date(2026, 4, 5), "expense") == "frank"
        assert delegate_for(s, "cfo", date(2026, 4, 5), "procurement") is None
        assert delegate_for(s, "cfo", date(2026, 4, 5)) is None


def test_delegation_chains_are_not_followed_and_inactive_deputies_do_not_count(org):
    with org.unit_of_work() as s:
        directory.delegate(s, "tess", "rick", date(2026, 3, 1), date(2026, 3, 31))
        directory.delegate(s, "rick", "gina", date(2026, 3, 1), date(2026, 3, 31))
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "tess", ON) == "rick"
    with org.unit_of_work() as s:
        directory.set_active(s, "rick", False)
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "tess", ON) is None


def test_revoked_delegation_stops_applying(org):
    with org.unit_of_work() as s:
        d = directory.delegate(s, "tess", "rick", date(2026, 3, 1), date(2026, 3, 31))
    with org.unit_of_work() as s:
        directory.revoke_delegation(s, d.id)
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "tess", ON) is None
    with org.unit_of_work() as s:  # and the dates are free again
        directory.delegate(s, "tess", "gina", date(2026, 3, 1), date(2026, 3, 31))


@pytest.mark.parametrize(
    ("start", "end", "workflow"),
    [
        (date(2026, 3, 31), date(2026, 4, 5), None),  # touches the last day
        (date(2026, 2, 1), date(2026, 3, 1), "expense"),  # touches the first day, one workflow
        (date(2026, 3, 10), date(2026, 3, 12), None),  # inside
    ],
)
def test_overlapping_delegations_of_the_same_user_are_refused(org, start, end, workflow):
    with org.unit_of_work() as s:
        directory.delegate(s, "tess", "rick", date(2026, 3, 1), date(2026, 3, 31))
    with pytest.raises(Conflict) as err, org.unit_of_work() as s:
        directory.delegate(s, "tess", "gina", start, end, workflow=workflow)
    assert "already delegates to rick" in err.value.message


def test_delegations_for_different_workflows_may_overlap(org):
    with org.unit_of_work() as s:
        directory.delegate(s, "tess", "rick", date(2026, 3, 1), date(2026, 3, 31), workflow="expense")
        directory.delegate(s, "tess", "gina", date(2026, 3, 1), date(2026, 3, 31), workflow="procurement")
    with org.unit_of_work(readonly=True) as s:
        assert delegate_for(s, "tess", ON, "expense") == "rick"
        assert delegate_for(s, "tess", ON, "procurement") == "gina"
    with pytest.raises(Conflict), org.unit_of_work() as s:  # "all workflows" overlaps both
        directory.delegate(s, "tess", "cfo", date(2026, 3, 20), date(2026, 4, 2))


@pytest.mark.parametrize(
    ("user", "deputy", "start", "end", "field", "error"),
    [
        ("tess", "tess", date(2026, 3, 1), date(2026, 3, 2), "deputy", ValidationError),
        ("tess", "walt", date(2026, 3, 1), date(2026, 3, 2), "deputy", ValidationError),
        ("tess", "rick", date(2026, 3, 2), date(2026, 3, 1), "end", ValidationError),
        ("tess", "ghost", date(2026, 3, 1), date(2026, 3, 2), "deputy", NotFound),
        ("ghost", "rick", date(2026, 3, 1), date(2026, 3, 2), "user", NotFound),
    ],
)
def test_bad_delegations_are_refused(org, user, deputy, start, end, field, error):
    with pytest.raises(error) as err, org.unit_of_work() as s:
        directory.delegate(s, user, deputy, start, end)
    assert err.value.details["field"] == field


def test_holds_role_counts_company_wide_and_departments_above(org):
    with org.unit_of_work(readonly=True) as s:
        assert holds_role(s, "gina", "gm", company="ACME") is True
        assert holds_role(s, "gina", "gm", company="ACME", department="RD-APP") is True
        assert holds_role(s, "rick", "finance_reviewer", company="ACME", department="RD-APP") is True
        assert holds_role(s, "rick", "finance_reviewer", company="ACME", department="FIN") is False
        assert holds_role(s, "rick", "finance_reviewer", company="ACME") is False
        assert holds_role(s, "olga", "finance_reviewer", company="ACME") is False  # inactive
        assert holds_role(s, "gina", "gm", company="BETA") is False
        assert holds_role(s, "ghost", "gm", company="ACME") is False


def test_concurrent_overlapping_delegations_make_exactly_one(db):
    """Two deputies named at the same moment for the same dates: one wins, one conflicts.

    Several rounds, because a race that is not guarded only shows up some of the time.
    """
    rounds = 5
    people = "".join(f"boss{i},Boss {i},ACME\n" for i in range(rounds))
    with db.unit_of_work() as s:
        setup.create_company(s, "ACME", "Acme Ltd", "CNY")
        directory.import_users_csv(
            s, f"id,name,company\n{people}d1,Deputy 1,ACME\nd2,Deputy 2,ACME\n", actor="hr"
        )
    for i in range(rounds):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def name_deputy(deputy: str, boss: str, barrier: threading.Barrier = barrier,
                        outcomes: list[str] = outcomes) -> None:
            barrier.wait()
            try:
                with db.unit_of_work() as s:
                    directory.delegate(s, boss, deputy, date(2026, 3, 1), date(2026, 3, 31))
                outcomes.append("ok")
            except Conflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=name_deputy, args=(d, f"boss{i}")) for d in ("d1", "d2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict", "ok"], f"round {i}"
    with db.unit_of_work(readonly=True) as s:
        assert len(s.query(Delegation).all()) == rounds
