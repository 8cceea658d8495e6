"""The benchmark harness works end to end (tiny sizes; no timing is asserted).

``python -m bench.budget`` is run as a user runs it, against the test server: it
must measure pgbench, reserve with concurrent client processes, load a history,
time the checks, verify clean, print every figure and exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


def test_budget_benchmark_runs_end_to_end(pg_url: str, tmp_path: Path) -> None:
    if shutil.which("pgbench") is None:
        message = "pgbench is not installed (apt-get install postgresql-client)"
        if os.environ.get("YINFIN_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.budget", "--quick", "--duration", "1", "--clients", "2",
         "--lines", "12", "--history-small", "500", "--history-large", "2500", "--checks", "5",
         "--pg-url", pg_url, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    for expected in ("TPC-B", "simple-update", "(a) spread over 12 lines", "(b) one hot line",
                     "x TPC-B", "ratio (large / small)", "problems found"):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    # Targets are reported, never enforced: each prints a verdict.
    assert text.count("PASS") + text.count("FAIL") == 3

    figures = json.loads(out.read_text())
    budget = next(r for r in figures["reports"] if r["name"] == "budget")
    rates = next(f for h, f in budget["sections"].items() if h.startswith("reservations/s"))
    assert [f["label"] for f in rates] == ["(a) spread over 12 lines", "(b) one hot line"]
    assert all(f["value"] > 0 for f in rates), rates
    assert "refused 0, errors 0" in rates[0]["detail"]
    checks = next(f for h, f in budget["sections"].items() if h.startswith("availability check"))
    # The line also holds its budget journal's entry, hence the +1.
    assert [f["label"] for f in checks[:2]] == ["501 entries on the line", "2,501 entries on the line"]
    assert all(f["value"] > 0 for f in checks)
    problems = budget["sections"]["verify over everything this run wrote"][0]
    assert problems["value"] == 0, problems
    assert budget["notes"] == []  # the clients' counts matched what the database holds
    base = next(r for r in figures["reports"] if r["name"] == "baseline")
    assert all(f["value"] > 0 for f in base["sections"]["tps"])


def _first_row_seen(index: int, payload: dict[str, object]):  # type: ignore[no-untyped-def]
    """A client whose first transaction records what ``before_start`` left in the table."""
    from sqlalchemy import text

    from yinfin_flow.db.engine import make_engine

    engine = make_engine(str(payload["url"]))  # in yinfin-flow's schema, where the test made the tables

    def transaction(n: int) -> str:
        if n == 0:
            with engine.begin() as conn:
                seen = conn.execute(text("SELECT count(*) FROM bench_marks")).scalar_one()
                conn.execute(text("INSERT INTO bench_client_saw VALUES (:n)"), {"n": seen})
        return "ok"

    return transaction


def test_before_start_runs_once_before_any_client_starts_the_clock(pg_db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from bench.common import analyze, run_clients

    url = pg_db.engine.url.render_as_string(hide_password=False)
    with pg_db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_marks (id serial PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE bench_client_saw (n int)"))
        conn.execute(text("INSERT INTO bench_marks DEFAULT VALUES"))
        never = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'bench_marks'")).scalar_one()
    assert never < 0  # never analysed

    def mark_and_analyze() -> None:
        from yinfin_flow.db.engine import make_engine

        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_marks DEFAULT VALUES"))
        engine.dispose()
        analyze(url)

    pg_db.engine.dispose()  # the clients are forked
    totals = run_clients(_first_row_seen, {"url": url}, 3, 0.2, before_start=mark_and_analyze)
    assert totals.outcomes["ok"] > 0
    with pg_db.engine.begin() as conn:
        assert conn.execute(text("SELECT array_agg(n) FROM bench_client_saw")).scalar_one() == [2, 2, 2]
        analysed = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'bench_marks'")).scalar_one()
    assert analysed == 2  # ANALYZE ran: the planner has statistics
