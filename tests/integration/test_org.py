"""The organisation directory on both databases: CSV import, roles, deactivation, CLI, demo."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from yinfin_flow.budget import setup
from yinfin_flow.cli import main
from yinfin_flow.db.models.org import Delegation, User, UserRole
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.org import RoleGrant, UserSpec
from yinfin_flow.engine import directory
from yinfin_flow.engine.approvers import resolve
from yinfin_flow.engine.directory import ImportRejected

GOOD = """id,name,email,company,department,manager,roles,active,dingtalk_userid
gina,Gina,gina@acme.example,ACME,HQ,,employee;gm,1,dt-001
rick,Rick,,ACME,RD,gina,employee;finance_reviewer@RD,yes,
amy,Amy,amy@acme.example,ACME,RD,rick,employee,,dt-003
"""


@pytest.fixture
def acme(db):
    with db.unit_of_work() as s:
        setup.create_company(s, "ACME", "Acme Ltd", "CNY")
        setup.create_company(s, "BETA", "Beta Ltd", "CNY")
        setup.create_cost_centre(s, "ACME", "HQ", "Head office", manager="gina")
        setup.create_cost_centre(s, "ACME", "RD", "R&D", parent="HQ", manager="rick")
        old = setup.create_cost_centre(s, "ACME", "OLD", "Closed department", parent="HQ")
        old.active = False
    return db


def count(db, model):
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_import_creates_users_managers_roles_and_external_ids(acme):
    with acme.unit_of_work() as s:
        result = directory.import_users_csv(s, GOOD, actor="hr")
    assert result.created == ["gina", "rick", "amy"] and result.updated == []
    with acme.unit_of_work(readonly=True) as s:
        amy = directory.user_context(s, "amy")
        assert amy == {
            "id": "amy", "name": "Amy", "email": "amy@acme.example", "company": "ACME",
            "department": "RD", "manager": "rick", "active": True, "roles": ["employee"],
            "role_grants": ["employee"],
        }
        assert directory.roles_of(s, "rick") == [RoleGrant("employee"), RoleGrant("finance_reviewer", "RD")]
        assert directory.user_by_external_id(s, "dingtalk", "dt-003").id == "amy"
        assert directory.user_by_external_id(s, "dingtalk", "nope") is None
        assert [r["id"] for r in directory.listing(s, "ACME")] == ["amy", "gina", "rick"]
        assert directory.listing(s, "BETA") == []


def test_reimport_updates_replaces_roles_and_can_deactivate_the_missing(acme):
    with acme.unit_of_work() as s:
        directory.import_users_csv(s, GOOD, actor="hr")
    second = """id,name,company,department,manager,roles
gina,Gina Chen,ACME,HQ,,gm;cfo
rick,Rick,ACME,RD,gina,employee
"""
    with acme.unit_of_work() as s:
        result = directory.import_users_csv(s, second, actor="hr", deactivate_missing=True)
    assert result.updated == ["gina", "rick"]
    assert result.deactivated == ["amy"]
    with acme.unit_of_work(readonly=True) as s:
        assert s.get(User, "gina").name == "Gina Chen"
        assert [str(g) for g in directory.roles_of(s, "gina")] == ["cfo", "gm"]
        assert [str(g) for g in directory.roles_of(s, "rick")] == ["employee"]
        amy = s.get(User, "amy")
        assert amy is not None and amy.active is False  # deactivated, never deleted
        assert amy.dingtalk_userid == "dt-003"  # columns absent from the file are kept


def test_every_bad_row_is_reported_at_once_and_nothing_is_imported(acme):
    bad = """id,name,email,company,department,manager,roles,active,dingtalk_userid
gina,Gina,gina@acme.example,ACME,HQ,,employee,1,dt-1
,No id,,ACME,HQ,,,,
bad id!,Bad,,ACME,HQ,,,,
zed,,not-an-email,NOPE,HQ,,,,
yan,Yan,,ACME,MARS,ghost,,maybe,
gina,Gina again,,ACME,HQ,,,,
ola,Ola,,ACME,OLD,ola,Finance Team;gm@MARS,,dt-1
"""
    with pytest.raises(ImportRejected) as err, acme.unit_of_work() as s:
        directory.import_users_csv(s, bad, actor="hr")
    problems = {(e["row"], e["column"]) for e in err.value.errors}
    assert problems == {
        (3, "id"), (4, "id"),
        (5, "name"), (5, "email"),
        (6, "active"),
        (7, "id"),
        (8, "roles"),
    }
    assert err.value.code == "import_rejected"
    assert "nothing was imported" in err.value.message
    assert count(acme, User) == 0


def test_checks_against_the_directory_are_reported_together(acme):
    bad = """id,name,company,department,manager,roles,dingtalk_userid
gina,Gina,ACME,HQ,,,dt-1
zed,Zed,NOPE,HQ,,,
yan,Yan,ACME,MARS,ghost,,
ola,Ola,ACME,OLD,ola,gm@MARS,dt-1
"""
    with pytest.raises(ImportRejected) as err, acme.unit_of_work() as s:
        directory.import_users_csv(s, bad, actor="hr")
    problems = {(e["row"], e["column"]) for e in err.value.errors}
    assert problems == {
        (3, "company"), (4, "department"), (4, "manager"),
        (5, "department"), (5, "manager"), (5, "roles"), (5, "dingtalk_userid"),
    }
    assert count(acme, User) == 0


def test_manager_loops_are_refused(acme):
    with acme.unit_of_work() as s:
        directory.import_users_csv(s, GOOD, actor="hr")
    loop = "id,name,company,department,manager\ngina,Gina,ACME,HQ,amy\n"
    with pytest.raises(ImportRejected) as err, acme.unit_of_work() as s:
        directory.import_users_csv(s, loop, actor="hr")
    assert err.value.errors[0]["column"] == "manager"
    assert "amy -> gina -> rick" in err.value.errors[0]["problem"]
    with acme.unit_of_work(readonly=True) as s:
        assert s.get(User, "gina").manager_id is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name,company\nGina,ACME\n", "missing column(s): id"),
        ("id,name,company,shoe_size\ngina,Gina,ACME,42\n", "unknown column(s): shoe_size"),
        ("id,name,company\n", "no users"),
        ("id,name,company\ngina,Gina,ACME,extra\n", "more values than columns"),
    ],
)
def test_file_level_problems(acme, text, fragment):
    with pytest.raises(ImportRejected) as err, acme.unit_of_work() as s:
        directory.import_users_csv(s, text, actor="hr")
    assert any(fragment in e["problem"] for e in err.value.errors)


def test_roles_can_be_granted_and_revoked_one_by_one(acme):
    with acme.unit_of_work() as s:
        directory.import_users_csv(s, GOOD, actor="hr")
        directory.grant_role(s, "amy", "finance_reviewer", department="RD", actor="admin")
        directory.grant_role(s, "amy", "finance_reviewer", department="RD", actor="admin")  # idempotent
    with acme.unit_of_work(readonly=True) as s:
        rule = {"type": "role", "role": "finance_reviewer", "scope": "requester_department"}
        found = resolve(s, rule, requester="gina", company="ACME", department="RD", form={}, on=date(2026, 1, 5))
        assert found == ["amy", "rick"]
    with acme.unit_of_work() as s:
        assert directory.revoke_role(s, "amy", "finance_reviewer", department="RD") is True
        assert directory.revoke_role(s, "amy", "finance_reviewer", department="RD") is False
    with acme.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(UserRole).where(UserRole.user_id == "amy")) == 1
    with pytest.raises(ValidationError) as err, acme.unit_of_work() as s:
        directory.grant_role(s, "amy", "Bad Role", actor="admin")
    assert err.value.details["field"] == "role"


def test_upsert_user_reports_the_first_problem_by_field(acme):
    with pytest.raises(ValidationError) as err, acme.unit_of_work() as s:
        directory.upsert_user(s, UserSpec(id="amy", name="Amy", company="ACME", department="MARS"), actor="api")
    assert err.value.details["field"] == "department"
    with acme.unit_of_work() as s:
        directory.upsert_user(s, UserSpec(id="amy", name="Amy", company="ACME", department="RD"), actor="api")
        directory.upsert_user(s, UserSpec(id="bo", name="Bo", company="ACME", manager="amy",
                                          roles=[RoleGrant("employee")]), actor="api")
    with acme.unit_of_work(readonly=True) as s:
        assert directory.user_context(s, "bo")["manager"] == "amy"
        assert directory.user_context(s, "bo")["department"] is None
        assert directory.user_context(s, "nobody") == {"id": "nobody"}


def test_deactivation_keeps_the_user_and_their_delegations(acme):
    with acme.unit_of_work() as s:
        directory.import_users_csv(s, GOOD, actor="hr")
        directory.delegate(s, "rick", "gina", date(2026, 1, 1), date(2026, 1, 31))
    with acme.unit_of_work() as s:
        directory.set_active(s, "rick", False)
    assert count(acme, User) == 3
    assert count(acme, Delegation) == 1
    with acme.unit_of_work(readonly=True) as s:
        found = resolve(s, {"type": "manager", "levels": 2}, requester="amy", company="ACME",
                        department="RD", form={}, on=date(2026, 1, 5))
        assert found == ["gina"]
    with pytest.raises(NotFound), acme.unit_of_work() as s:
        directory.set_active(s, "ghost", False)


def test_cli_import_and_show(acme, tmp_path, monkeypatch):
    monkeypatch.setenv("YINFIN_DATABASE_URL", acme.url)
    good = tmp_path / "users.csv"
    good.write_text(GOOD, encoding="utf-8-sig")
    runner = CliRunner()
    out = runner.invoke(main, ["org", "import", str(good), "--actor", "hr"])
    assert out.exit_code == 1 and "'hr' is not an active person" in out.stderr  # nobody in the directory
    with acme.unit_of_work(readonly=True) as s:
        assert s.get(User, "gina") is None  # refused: nothing imported
    out = runner.invoke(main, ["org", "import", str(good), "--actor", "gina"])  # a person of the file
    assert out.exit_code == 0, out.output
    assert "3 created, 0 updated, 0 deactivated" in out.output
    shown = runner.invoke(main, ["org", "show"])
    assert shown.exit_code == 0
    assert "finance_reviewer@RD" in shown.output and "gina" in shown.output
    one = runner.invoke(main, ["org", "show", "amy"])
    assert re.search(r"^manager +rick$", one.output, re.M)
    assert json.loads(runner.invoke(main, ["org", "show", "amy", "--format", "json"]).output)["manager"] == "rick"
    missing = runner.invoke(main, ["org", "show", "nobody"])
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.stderr and missing.stdout == ""
    delegated = runner.invoke(main, ["org", "delegate", "amy", "gina", "--start", "2026-02-01",
                                     "--end", "2026-02-10", "--actor", "amy"])
    assert delegated.exit_code == 0, delegated.output
    assert "to gina 2026-02-01..2026-02-10" in runner.invoke(main, ["org", "show", "amy"]).output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,company\nx y,,NOPE\n", encoding="utf-8")
    failed = runner.invoke(main, ["org", "import", str(bad), "--actor", "gina"])
    assert failed.exit_code == 1
    assert "row 2, id" in failed.output and "row 2, name" in failed.output
    assert runner.invoke(main, ["org", "deactivate", "amy"]).exit_code == 0
    with acme.unit_of_work(readonly=True) as s:
        assert s.get(User, "amy").active is False


def test_gbk_files_from_excel_import_with_an_encoding_option(acme, tmp_path, monkeypatch):
    monkeypatch.setenv("YINFIN_DATABASE_URL", acme.url)
    path = tmp_path / "users.csv"
    path.write_bytes("id,name,company,department\nwei,张伟,ACME,RD\n".encode("gb18030"))
    runner = CliRunner()
    assert runner.invoke(main, ["org", "import", str(path), "--actor", "wei"]).exit_code != 0
    ok = runner.invoke(main, ["org", "import", str(path), "--encoding", "gb18030", "--actor", "wei"])
    assert ok.exit_code == 0, ok.output
    with acme.unit_of_work(readonly=True) as s:
        assert s.get(User, "wei").name == "张伟"


def test_demo_people_fit_the_demo_budgets_and_shipped_workflows(db):
    from yinfin_flow.demo import budgets, org

    with db.unit_of_work() as s:
        budgets.load(s)
        org.load(s)
        org.load(s)  # loading twice changes nothing
    with db.unit_of_work(readonly=True) as s:
        def who(rule, requester="amy", department="RD-APP"):
            return resolve(s, rule, requester=requester, company="ACME", department=department,
                           form={}, on=date(2026, 1, 5))

        assert who({"type": "manager", "levels": 3}) == ["wang.app", "li.rd", "chen.ceo"]
        assert who({"type": "department_head"}, "carol", "SALES-EAST") == ["sun.east"]
        assert who({"type": "role", "role": "finance", "scope": "company"}) == ["fiona", "frank", "zhou.cfo"]
        assert who({"type": "role", "role": "gm", "scope": "company"}) == ["chen.ceo"]
        assert who({"type": "role", "role": "cfo", "scope": "company"}) == ["zhou.cfo"]
        assert len(who({"type": "role", "role": "pmo", "scope": "company"})) >= 2  # project.yaml quorum 2
        assert who({"type": "role", "role": "override_authority", "scope": "company"})
        assert who({"type": "user", "user": "admin"}) == ["admin"]
        for code, _name, _parent, manager in budgets.COST_CENTRES:
            assert s.get(User, manager) is not None, f"head of {code} missing from the demo people"


def test_oa_directory_sync_imports_specs_all_or_nothing(acme):
    synced = [
        (0, UserSpec(id="gina", name="Gina", company="ACME", department="HQ",
                     external={"feishu_open_id": "ou_gina"})),
        (1, UserSpec(id="amy", name="Amy", company="ACME", department="RD", manager="gina",
                     external={"feishu_open_id": "ou_amy"})),
    ]
    with acme.unit_of_work() as s:
        assert directory.import_users(s, synced, actor="feishu").created == ["gina", "amy"]
    broken = [(0, UserSpec(id="zoe", name="Zoe", company="ACME", external={"feishu_open_id": "ou_amy"})),
              (1, UserSpec(id="yan", name="Yan", company="ACME", manager="nobody"))]
    with pytest.raises(ImportRejected) as err, acme.unit_of_work() as s:
        directory.import_users(s, broken, actor="feishu")
    assert [(e["row"], e["column"]) for e in err.value.errors] == [(0, "feishu_open_id"), (1, "manager")]
    with acme.unit_of_work(readonly=True) as s:
        assert directory.user_by_external_id(s, "feishu", "ou_amy").id == "amy"
        assert s.get(User, "zoe") is None


def test_migration_0005_goes_down_and_up(tmp_path):
    from sqlalchemy import create_engine, inspect

    from yinfin_flow.db.migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url)
    engine = create_engine(url)
    assert {"users", "user_roles", "delegations"} <= set(inspect(engine).get_table_names())
    downgrade(url, "0004")
    assert not {"users", "user_roles", "delegations"} & set(inspect(engine).get_table_names())
    upgrade(url)
    assert "delegations" in inspect(engine).get_table_names()
    engine.dispose()
