"""The yardstick: pgbench on the same server, in the same run.

Ratios to pgbench make figures comparable across machines: whatever the disk and
CPU, "0.6 of TPC-B" means the same thing. pgbench runs in its own scratch database
(``pgbench -i -s 1``), dropped afterwards.

Run it alone with ``python -m bench.baseline [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from .common import (
    Context,
    Figure,
    Report,
    Settings,
    add_common_arguments,
    emit,
    machine_header,
    progress,
    scratch_database,
    settings_from,
)

DESCRIPTION = "pgbench TPC-B and simple-update on the same server (the yardstick)"

# PostgreSQL 14+ prints "(without initial connection time)"; older releases print
# "(excluding connections establishing)". Both are the figure we want.
_TPS = re.compile(r"^tps = ([0-9.]+) \((?:without initial connection time|excluding)", re.M)


@dataclass(frozen=True)
class Baseline:
    """pgbench tps with ``clients`` clients and ``threads`` threads for ``seconds`` each."""

    tpcb: float
    simple_update: float
    clients: int
    threads: int
    seconds: float
    scale: int = 1


def parse_tps(output: str) -> float:
    """The tps figure from pgbench's report; raises ValueError if there is none."""
    match = _TPS.search(output)
    if match is None:
        raise ValueError("no tps line in pgbench output:\n" + output[-2000:])
    return float(match.group(1))


def _pg_command(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments and environment for a libpq client (pgbench)."""
    u = make_url(url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return [*args, str(u.database)], env


def _pgbench(url: str, *options: str, timeout: float) -> str:
    exe = shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench not found: install the PostgreSQL client tools "
                         "(Debian: apt-get install postgresql-client)")
    conn, env = _pg_command(url)
    done = subprocess.run(
        [exe, *options, *conn], env=env, capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(options)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def run_pgbench(settings: Settings, scale: int = 1) -> Baseline:
    """Initialise a scratch database and run TPC-B and simple-update (``-N``)."""
    with scratch_database(settings.pg_url, "yinfin_bench_pgbench") as url:
        progress(f"pgbench -i -s {scale}")
        _pgbench(url, "-i", "-q", "-s", str(scale), timeout=600)
        common = ["-c", str(settings.clients), "-j", str(settings.threads),
                  "-T", str(max(1, round(settings.duration)))]
        limit = settings.duration + 120
        progress(f"pgbench TPC-B ({' '.join(common)})")
        tpcb = parse_tps(_pgbench(url, *common, timeout=limit))
        progress(f"pgbench simple-update ({' '.join(common)} -N)")
        simple = parse_tps(_pgbench(url, *common, "-N", timeout=limit))
    return Baseline(tpcb, simple, settings.clients, settings.threads,
                    max(1, round(settings.duration)), scale)


def run(ctx: Context) -> Report:
    base = ctx.baseline()
    report = Report("baseline", f"pgbench on this server (-s {base.scale}, -c {base.clients} "
                                f"-j {base.threads}, -T {base.seconds:g})")
    figures = report.section("tps")
    figures.append(Figure("TPC-B", base.tpcb, "tps"))
    figures.append(Figure("simple-update (-N)", base.simple_update, "tps"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=DESCRIPTION)
    add_common_arguments(parser)
    settings = settings_from(parser.parse_args(argv))
    ctx = Context(settings)
    report = run(ctx)
    emit(settings, [report], machine_header(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
