"""As an integrator gets it: the released sdist and wheel, installed outside the repository.

One build per run (``python -m build``: the sdist, then the wheel built from that sdist,
so the wheel proves the sdist is complete). Then:

- both carry the migrations, the shipped workflows and posting templates; ``twine check``
  passes;
- the wheel goes into a fresh virtualenv in a temporary folder (no path back to the
  repository) and the host example (``examples/host_app``, copied out) runs there against
  one new PostgreSQL database: the host migrates with its own Alembic, yinfin-flow with
  ``yinfin-flow db upgrade``; logged in to the HOST, an employee submits an expense under
  ``/finance``, the manager and finance approve, the voucher posts; the host's tables are
  as they were; ``yinfin-flow db downgrade base`` leaves only the host's tables.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect, text

from ..conftest import PG_ADMIN_URL, START_PG, _missing

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.packaging, pytest.mark.slow]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 240) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the dev extras bring the build backend (no download per run)
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=ROOT, timeout=400)
    [wheel] = out.glob("yinfin_flow-*.whl")
    [sdist] = out.glob("yinfin_flow-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_wheel_and_sdist_carry_what_runs_and_pass_twine_check(dist: dict[str, Path]) -> None:
    import yinfin_flow

    assert dist["wheel"].name.startswith(f"yinfin_flow-{yinfin_flow.__version__}-")
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    migrations = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert migrations and {f"yinfin_flow/migrations/versions/{m}" for m in migrations} <= names
    assert {"yinfin_flow/migrations/env.py", "yinfin_flow/migrations/script.py.mako"} <= names
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "workflows").rglob("*.yaml")}
    assert any("/postings/" in s for s in shipped)
    assert {f"yinfin_flow/{s}" for s in shipped} <= names
    web = {p.relative_to(ROOT).as_posix() for sub in ("templates", "static", "translations")
           for p in (ROOT / "yinfin_flow" / "web" / sub).rglob("*") if p.is_file()}
    assert web <= names, "the console's templates and static files"
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)

    with tarfile.open(dist["sdist"]) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"CHANGELOG.md", "README.md", "setup.py", "pyproject.toml",
            "migrations/versions/0001_foundation.py", "examples/host_app/hostapp/__init__.py"} <= members
    assert {f"migrations/versions/{m}" for m in migrations} <= members

    checked = run(sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"], cwd=ROOT)
    assert checked.count("PASSED") == 2


@pytest.fixture
def shared_pg_url() -> Iterator[str]:
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to connect means "absent"
        _missing("PostgreSQL", START_PG, err)
    name = f"yinfin_host_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _all_tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).scalars())
    finally:
        engine.dispose()


def _host_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: list(conn.execute(text(f"SELECT * FROM public.{t} ORDER BY 1")))
                    for t in inspect(conn).get_table_names(schema="public")}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_integrator_installs_the_wheel_and_a_host_app_posts_an_approved_request(
        dist: dict[str, Path], shared_pg_url: str, tmp_path: Path) -> None:
    venv, host = tmp_path / "venv", tmp_path / "host_app"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_ = venv / "bin"
    run(bin_ / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--find-links", dist["wheel"].parent, dist["wheel"], "flask-login>=0.6", cwd=tmp_path, timeout=400)
    shutil.copytree(ROOT / "examples" / "host_app", host,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {"PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path),
           "DATABASE_URL": shared_pg_url, "YINFIN_DATABASE_URL": shared_pg_url,
           "FLASK_APP": "hostapp", "SECRET_KEY": "host-secret", "LANG": "C.UTF-8"}
    where = run(bin_ / "python", "-c", "import yinfin_flow; print(yinfin_flow.__file__)", cwd=host, env=env)
    assert where.strip().startswith(str(venv)), "yinfin-flow comes from the installed wheel"

    # The host's own schema and people, as the host has them before yinfin-flow arrives.
    run(bin_ / "alembic", "upgrade", "head", cwd=host, env=env)
    for user, projects in (("amy", ["Apollo"]), ("wang.app", []), ("fiona", ["Ledger clean-up"])):
        run(bin_ / "flask", "add-user", user, "--password", f"{user}-pw",
            *[a for p in projects for a in ("--project", p)], cwd=host, env=env)
    host_before = _host_rows(shared_pg_url)
    assert set(host_before) == {"users", "projects", "alembic_version"}

    # yinfin-flow beside it, in the same database; the demo organisation as its directory.
    run(bin_ / "yinfin-flow", "db", "upgrade", cwd=host, env=env)
    run(bin_ / "yinfin-flow", "demo", "load", cwd=host, env=env)
    assert {t for t in _all_tables(shared_pg_url) if t.startswith("public.")} == {
        "public.users", "public.projects", "public.alembic_version"}
    assert {"yinfin.users", "yinfin.projects", "yinfin.yinfin_alembic_version"} <= _all_tables(shared_pg_url)

    port = _free_port()
    server = subprocess.Popen([str(bin_ / "flask"), "run", "--port", str(port)], cwd=host, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # the first start compiles the installed package
            assert server.poll() is None, server.communicate()[0]
            try:
                requests.get(base + "/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        def logged_in(user: str) -> requests.Session:
            s = requests.Session()
            assert s.get(base + "/finance/api/v1/tasks", timeout=10).status_code == 401
            resp = s.post(base + "/login", data={"username": user, "password": f"{user}-pw"}, timeout=10)
            assert resp.status_code == 200 and "Hello" in resp.text, resp.text
            return s

        amy = logged_in("amy")
        today = date.today()
        submitted = amy.post(base + "/finance/api/v1/requests", timeout=30, json={
            "workflow": "expense", "company": "ACME", "title": "Team offsite train tickets",
            "form": {"lines": [{"ref": "1", "line_code": f"ACME/{today:%Y-%m}/RD-APP/TRAVEL",
                                "amount": "380.00", "currency": "CNY", "budget_date": str(today)}]}})
        assert submitted.status_code == 201, submitted.text
        request_id = submitted.json()["id"]
        assert submitted.json()["requester"] == "amy"

        for approver in ("wang.app", "fiona"):
            s = logged_in(approver)
            tasks = s.get(base + "/finance/api/v1/tasks", params={"page_size": 100}, timeout=30).json()
            [task] = [t for t in tasks["items"] if t["request_id"] == request_id]
            done = s.post(base + f"/finance/api/v1/tasks/{task['id']}/approve",
                          json={"comment": "ok"}, timeout=30)
            assert done.status_code == 200, done.text

        after = amy.get(base + f"/finance/api/v1/requests/{request_id}", timeout=30).json()
        assert after["state"] == "approved"
        trail = amy.get(base + f"/finance/api/v1/requests/{request_id}/trail", timeout=30).json()["trail"]
        [voucher] = trail["vouchers"]
        assert voucher["template"] == "expense.approved"
        assert sum(Decimal(x["debit"]) for x in voucher["lines"]) == Decimal("380.00")
        assert sum(Decimal(x["credit"]) for x in voucher["lines"]) == Decimal("380.00")
        assert [m["actor"] for m in trail["budget_movements"]][0] == "amy"
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert _host_rows(shared_pg_url) == host_before, "the host's tables are untouched"
    run(bin_ / "yinfin-flow", "db", "downgrade", "--yes", cwd=host, env=env)
    assert _all_tables(shared_pg_url) == {"public.users", "public.projects", "public.alembic_version"}
    assert _host_rows(shared_pg_url) == host_before
