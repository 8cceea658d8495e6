"""``yinfin-flow sync`` reads an OA directory (departments, then users) as the scheduled
sync does: the real DingTalk connector against its stub, the real CLI, SQLite."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from yinfin_flow.cli import main as cli
from yinfin_flow.worker.masterdata import KINDS

from . import org_cases, test_dingtalk_org
from .test_dingtalk import AES


@pytest.fixture
def ding(sqlite_db, start_stub, monkeypatch):
    stub, _ = test_dingtalk_org.build(start_stub)
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    for key, value in {"APP_KEY": "dingappkey", "APP_SECRET": "s3cret", "TOKEN": "tok",
                       "AES_KEY": AES, "API_URL": stub.url, "OAPI_URL": stub.url}.items():
        monkeypatch.setenv(f"YINFIN_DINGTALK_{key}", value)
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    org_cases.org_in(sqlite_db)
    return stub


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["sync", *args], env=env)


def test_the_cli_offers_every_kind_the_sync_knows():
    choices = next(p for p in cli.commands["sync"].params if p.name == "kinds").type.choices
    assert tuple(choices) == KINDS
    assert set(KINDS) >= {"accounts", "cost_centres", "projects", "partners", "budgets", "users"}


def test_sync_kind_users_reads_the_oa_directory_departments_first(ding, sqlite_db):
    out = run("--connector", "dingtalk", "--kind", "users", "--kind", "cost_centres")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("dingtalk cost_centres: records 4") and "created 4" in lines[0]
    assert lines[1].startswith("dingtalk users: records 4") and "created 4" in lines[1]
    users = org_cases.users(sqlite_db)
    assert users["amy"][2:] == ("11", "boss", "amy")  # department, manager, DingTalk id
    # the OA named in YINFIN_OA_CONNECTOR is the default, as for the scheduled sync
    ding.people["amy"]["name"] = "Amy Wang"
    out = run("--kind", "users", env={"YINFIN_OA_CONNECTOR": "dingtalk"})
    assert out.exit_code == 0, out.output
    assert out.output.startswith("dingtalk users: records 4, created 0, updated 4")  # a snapshot, whole
    assert "cost_centres" not in out.output
    assert org_cases.users(sqlite_db)["amy"][0] == "Amy Wang"


def test_users_before_their_departments_name_each_problem_and_exit_1(ding, sqlite_db):
    out = run("--connector", "dingtalk", "--kind", "users")
    assert out.exit_code == 1
    assert "dingtalk users: records 0" in out.output and "nothing was imported" in out.output
    assert "amy, department: unknown department '11'" in out.output
    assert "error sync: dingtalk users not applied" in out.output
    assert org_cases.users(sqlite_db) == {}
    out = run("--connector", "dingtalk")  # both kinds, departments first
    assert out.exit_code == 0 and len(org_cases.users(sqlite_db)) == 4


def test_bad_kinds_and_connectors_are_clear_errors(ding):
    out = run("--connector", "dingtalk", "--kind", "accounts")
    assert out.exit_code == 1
    assert "kind: dingtalk offers cost_centres, users, not accounts" in out.output
    out = run("--connector", "nope")
    assert out.exit_code == 1 and "error validation_error: connector:" in out.output
    out = run("--kind", "departments")  # they sync as cost_centres
    assert out.exit_code == 2 and "'departments' is not one of" in out.output
    out = run()
    assert out.exit_code == 1 and "YINFIN_OA_CONNECTOR" in out.output
    out = run("--kind", "accounts", env={"YINFIN_OA_CONNECTOR": "dingtalk"})
    assert out.exit_code == 1 and "no configured connector offers accounts" in out.output
