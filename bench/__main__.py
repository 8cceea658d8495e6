"""``python -m bench``: run every registered benchmark (or ``--only`` some) and print them.

The pgbench baseline is measured once and shared, so every ratio in one run is
against the same figures.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from . import BENCHMARKS, load
from .common import Context, Report, add_common_arguments, emit, machine_header, settings_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run yinfin-flow's benchmarks on PostgreSQL beside pgbench "
                    "(see bench/README.md). Targets print PASS/FAIL; the exit code is 0 "
                    "unless a benchmark could not run.",
    )
    add_common_arguments(parser)
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in BENCHMARKS:
            print(f"{name:<12} {load(name).DESCRIPTION}")
        return 0
    settings = settings_from(args)
    ctx = Context(settings)
    header = machine_header(settings)
    reports: list[Report] = []
    failed: list[str] = []
    for name in args.only or BENCHMARKS:
        try:
            reports.append(load(name).run(ctx))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed.append(name)
            print(f"benchmark {name} could not run:\n{traceback.format_exc()}", file=sys.stderr)
    emit(settings, reports, header)
    met = [t.met for r in reports for t in r.targets]
    print(f"targets met: {sum(met)} of {len(met)}" + (f"; could not run: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
