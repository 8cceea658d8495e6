"""Organisation rules without a database: ids, roles, delegation periods, manager loops, CSV rows."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.org import (
    Period,
    RoleGrant,
    check_user_id,
    manager_cycles,
    parse_active,
    parse_roles,
    parse_users_csv,
)


def test_user_ids():
    assert check_user_id(" zhang.wei ") == "zhang.wei"
    for bad in ["", "  ", "a b", "-lead", "x" * 65, "名字", None]:
        with pytest.raises(ValidationError) as err:
            check_user_id(bad, "manager")
        assert err.value.details["field"] == "manager"


def test_roles_cell():
    assert parse_roles("employee; finance_reviewer@FIN ;gm;;employee") == [
        RoleGrant("employee"), RoleGrant("finance_reviewer", "FIN"), RoleGrant("gm"),
    ]
    assert parse_roles(None) == [] and parse_roles("") == []
    assert str(RoleGrant("dept_head", "RD")) == "dept_head@RD"
    for bad in ["Finance", "gm@", "a", "9lives", "fin-review"]:
        with pytest.raises(ValidationError):
            parse_roles(bad)


def test_active_flags():
    assert [parse_active(v) for v in ["", "1", "TRUE", "yes", None]] == [True] * 5
    assert [parse_active(v) for v in ["0", "false", "No", "inactive"]] == [False] * 4
    with pytest.raises(ValidationError, match="maybe"):
        parse_active("maybe")


def test_delegation_periods_overlap_by_dates_and_workflow():
    march = Period(date(2026, 3, 1), date(2026, 3, 31))
    assert march.overlaps(Period(date(2026, 3, 31), date(2026, 4, 2)))  # ends inclusive
    assert not march.overlaps(Period(date(2026, 4, 1), date(2026, 4, 2)))
    expense = Period(date(2026, 3, 1), date(2026, 3, 31), "expense")
    assert expense.overlaps(march) and march.overlaps(expense)  # "all" meets any workflow
    assert not expense.overlaps(Period(date(2026, 3, 1), date(2026, 3, 31), "procurement"))
    assert expense.covers(date(2026, 3, 31), "expense")
    assert not expense.covers(date(2026, 3, 15), None)
    assert march.covers(date(2026, 3, 15), "anything")


@given(st.dates(), st.integers(0, 60), st.dates(), st.integers(0, 60))
def test_overlap_is_symmetric_and_matches_day_sets(s1, n1, s2, n2):
    from datetime import timedelta

    try:
        a = Period(s1, s1 + timedelta(days=n1))
        b = Period(s2, s2 + timedelta(days=n2))
    except OverflowError:
        return
    days_a = {a.start + timedelta(days=i) for i in range(n1 + 1)}
    days_b = {b.start + timedelta(days=i) for i in range(n2 + 1)}
    assert a.overlaps(b) == b.overlaps(a) == bool(days_a & days_b)


def test_manager_cycles():
    assert manager_cycles({"amy": "tess", "tess": "rick", "rick": None}) == []
    assert manager_cycles({"a": "b", "b": "c", "c": "a", "d": "a"}) == [["a", "b", "c"]]
    assert manager_cycles({"x": "y", "y": "x", "p": "q", "q": "p"}) == [["p", "q"], ["x", "y"]]
    assert manager_cycles({"solo": "solo"}) == [["solo"]]
    assert manager_cycles({"a": "ghost"}) == []


def test_csv_rows_are_parsed_with_spreadsheet_row_numbers():
    specs, errors = parse_users_csv(
        "\ufeffid,name,company,roles,active\r\namy,Amy,ACME,employee,1\r\n,,,,\r\nbob,Bob,ACME,BAD,1\r\n"
    )
    assert errors == [{"row": 4, "column": "roles", "problem": errors[0]["problem"]}]
    assert [(row, s.id, s.roles) for row, s in specs] == [(2, "amy", [RoleGrant("employee")])]
