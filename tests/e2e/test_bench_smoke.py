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
