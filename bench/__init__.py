"""yinfin-flow benchmarks: ``python -m bench`` runs them all, ``python -m bench.NAME`` one.

Benchmarks inform; tests decide. Every benchmark prints its figures and, where an
issue set a target, PASS or FAIL beside it, and the run still exits 0. A crash
(a benchmark that could not measure) exits non-zero.

Adding a benchmark (engine throughput, HTTP approvals, outbox delivery…):

1. Write ``bench/NAME.py`` with ``DESCRIPTION: str``, ``run(ctx: Context) -> Report``
   and ``main(argv) -> int`` (copy :mod:`bench.budget`'s ``main``; its own options,
   e.g. sizes, go there). Use :func:`bench.common.scratch_database` for a database
   of its own, :func:`bench.common.run_clients` for concurrent client processes,
   and ``ctx.baseline()`` for pgbench figures measured once per run.
2. Add it to :data:`BENCHMARKS` below, and its figures to ``bench/README.md``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: name -> module, in the order ``python -m bench`` runs them. The pgbench baseline
#: comes first: it is the yardstick the others are read against.
BENCHMARKS: dict[str, str] = {
    "baseline": "bench.baseline",
    "budget": "bench.budget",
    "engine": "bench.engine",
    "http": "bench.http",
    "outbox": "bench.outbox",
    "simulate": "bench.simulate",
    "console": "bench.console",
    "finance": "bench.finance",
}


def load(name: str) -> ModuleType:
    """The module of a registered benchmark; an unknown name lists the known ones."""
    try:
        return importlib.import_module(BENCHMARKS[name])
    except KeyError:
        raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None
