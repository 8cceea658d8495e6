"""What every benchmark shares: settings, scratch databases, client processes, reports.

A benchmark module (see :mod:`bench`) gets a :class:`Context` and returns a
:class:`Report`. The context carries the settings from the command line and the
pgbench baseline, measured at most once per run so every benchmark that compares
against it sees the same figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from .baseline import Baseline

#: The server the benchmarks run on; the same variable names the tests use.
DEFAULT_PG_URL = os.environ.get(
    "YINFIN_BENCH_PG_URL",
    os.environ.get("YINFIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)

#: Seconds per timed run: default (stable figures) and --quick (a smoke check).
DEFAULT_DURATION = 20.0
QUICK_DURATION = 5.0


@dataclass(frozen=True)
class Settings:
    """What the command line chose; benchmarks scale their own sizes from ``quick``."""

    pg_url: str = DEFAULT_PG_URL
    clients: int = 8
    threads: int = 2  # pgbench -j
    duration: float = DEFAULT_DURATION
    quick: bool = False
    json_path: str | None = None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"short runs and small data: a ~1 minute smoke check "
                             f"({QUICK_DURATION:g} s per timed run)")
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds per timed run (default {DEFAULT_DURATION:g}, "
                             f"--quick {QUICK_DURATION:g})")
    parser.add_argument("--clients", type=int, default=8,
                        help="concurrent clients (processes; pgbench -c) (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="pgbench -j (default 2)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="an existing database on the server to benchmark; scratch "
                             "databases are created beside it and dropped "
                             "(env YINFIN_BENCH_PG_URL)")
    parser.add_argument("--json", dest="json_path", default=None,
                        help="also write the figures as JSON to this file")


def settings_from(args: argparse.Namespace) -> Settings:
    duration = args.duration
    if duration is None:
        duration = QUICK_DURATION if args.quick else DEFAULT_DURATION
    if duration <= 0:
        raise SystemExit("--duration must be positive")
    if args.clients < 1 or args.threads < 1:
        raise SystemExit("--clients and --threads must be at least 1")
    return Settings(pg_url=args.pg_url, clients=args.clients, threads=args.threads,
                    duration=duration, quick=args.quick, json_path=args.json_path)


class Context:
    """Settings plus the figures benchmarks share within one run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._baseline: Baseline | None = None

    def baseline(self) -> Baseline:
        """pgbench TPC-B and simple-update on this server, measured on first use only."""
        if self._baseline is None:
            from .baseline import run_pgbench

            self._baseline = run_pgbench(self.settings)
        return self._baseline


# -- scratch databases ----------------------------------------------------------------


def admin_url(pg_url: str) -> str:
    url = make_url(pg_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"benchmarks run on PostgreSQL; {url.get_backend_name()} given")
    if url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@contextmanager
def scratch_database(pg_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the same server (unique name); dropped afterwards.

    Yields its URL. The drop uses ``WITH (FORCE)`` so a client left behind by a
    crashed benchmark cannot keep the database alive.
    """
    base = admin_url(pg_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def server_version(pg_url: str) -> str:
    engine = create_engine(admin_url(pg_url))
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


# -- concurrent clients -------------------------------------------------------------

#: ``setup(index, payload)`` runs in the client process before timing starts (open
#: connections there) and returns ``transaction(n) -> outcome``: one whole
#: transaction, returning a label such as "ok" or "refused". An exception counts
#: as an error of its class name.
ClientSetup = Callable[[int, Any], Callable[[int], str]]


@dataclass
class ClientTotals:
    """What all clients did inside the timed window."""

    outcomes: Counter[str]
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    errors: list[str] = field(default_factory=list)

    def rate(self, outcome: str = "ok") -> float:
        return self.outcomes[outcome] / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def _client(setup: ClientSetup, index: int, payload: Any, duration: float,
            barrier: Any, results: Any) -> None:
    try:
        transaction = setup(index, payload)
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run
        barrier.abort()
        results.put((index, None, [], 0.0, traceback.format_exc()))
        return
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001 - another client failed its setup
        results.put((index, None, [], 0.0, "aborted: another client failed to start"))
        return
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    first_error = ""
    start = time.perf_counter()
    deadline = start + duration
    n = 0
    now = start
    while now < deadline:
        try:
            outcome = transaction(n)
        except Exception as err:  # noqa: BLE001 - counted, the first one is reported
            outcome = f"error:{type(err).__name__}"
            first_error = first_error or traceback.format_exc()
        after = time.perf_counter()
        latencies.append((after - now) * 1000)
        outcomes[outcome] += 1
        now = after
        n += 1
    results.put((index, dict(outcomes), latencies, now - start, first_error))


def run_clients(setup: ClientSetup, payload: Any, clients: int, duration: float,
                before_start: Callable[[], None] | None = None) -> ClientTotals:
    """Run ``clients`` separate processes doing transactions for ``duration`` seconds.

    Processes, not threads: the GIL would otherwise cap throughput at one core of
    Python. Every client finishes its setup before any starts the clock (a barrier),
    and the rate is transactions finished / the longest client's elapsed time, as
    pgbench counts it. ``before_start`` runs once, in the last client to finish its
    setup, before any client starts the clock (e.g. :func:`analyze`). The caller must
    hold no open database connections (children are forked).
    """
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients, action=before_start)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(setup, i, payload, duration, barrier, results),
                    name=f"bench-client-{i}")
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    totals: Counter[str] = Counter()
    latencies: list[float] = []
    errors: list[str] = []
    failed: list[str] = []
    seconds = 0.0
    try:
        for _ in procs:
            # Generous: setup plus the run plus a slow last transaction.
            _i, outcomes, lat, elapsed, err = results.get(timeout=duration + 300)
            if outcomes is None:
                failed.append(err)
                continue
            totals.update(outcomes)
            latencies.extend(lat)
            seconds = max(seconds, elapsed)
            if err:
                errors.append(err)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    if failed:
        first = next((e for e in failed if e.startswith("Traceback")), failed[0])
        raise RuntimeError("a benchmark client failed to start:\n" + first)
    return ClientTotals(totals, seconds, latencies, errors)


def analyze(url: str) -> None:
    """``ANALYZE`` the whole database at ``url`` (PostgreSQL), as ``pgbench -i`` ends its load.

    The benchmarks load their data seconds before the clock starts, before autovacuum
    has analysed anything; without statistics the planner guesses, and psycopg's
    prepared statements keep the generic plans made from those guesses (measured: the
    budget re-check scanned every reservation of the line, 0.64 ms, instead of 0.17 ms
    after ``ANALYZE``). A site's tables have statistics; a benchmark's should too.
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


# -- reports ----------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured number, e.g. ("(a) spread over 1,000 lines", 812.3, "tps")."""

    label: str
    value: float
    unit: str
    detail: str = ""


@dataclass
class Target:
    """A target from an issue: ``measured <op> wanted``. Informs; never fails the run."""

    label: str
    measured: float
    wanted: float
    op: str  # ">=" or "<="

    @property
    def met(self) -> bool:
        return self.measured >= self.wanted if self.op == ">=" else self.measured <= self.wanted

    def __str__(self) -> str:
        verdict = "PASS" if self.met else "FAIL"
        return f"{verdict}  {self.label}: {self.measured:.2f} (target {self.op} {self.wanted:g})"


@dataclass
class Report:
    """What one benchmark measured: sections of figures, then targets."""

    name: str
    title: str
    sections: list[tuple[str, list[Figure]]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, heading: str) -> list[Figure]:
        figures: list[Figure] = []
        self.sections.append((heading, figures))
        return figures

    def render(self) -> str:
        lines = [f"== {self.title}"]
        for heading, figures in self.sections:
            lines.append(f"  {heading}")
            width = max((len(f.label) for f in figures), default=0)
            for f in figures:
                lines.append(f"    {f.label:<{width}}  {_fmt(f.value):>10} {f.unit:<4} {f.detail}".rstrip())
        for note in self.notes:
            lines.append(f"  note: {note}")
        for t in self.targets:
            lines.append(f"  {t}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "sections": {h: [asdict(f) for f in figs] for h, figs in self.sections},
            "targets": [asdict(t) | {"met": t.met} for t in self.targets],
            "notes": self.notes,
        }


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine_header(settings: Settings) -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            total_kb = int(fh.readline().split()[1])
        mem = f", {total_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.node()} · "
        f"{os.cpu_count()} CPUs{mem} · PostgreSQL {server_version(settings.pg_url)} · "
        f"{settings.clients} clients · {settings.duration:g} s per timed run"
        + (" · QUICK (smoke check, figures not comparable)" if settings.quick else "")
    )


def emit(settings: Settings, reports: list[Report], header: str) -> None:
    """Print the reports (and write JSON if asked)."""
    print(f"\n{header}\n")
    for report in reports:
        print(report.render())
        print()
    if settings.json_path:
        shown = asdict(settings) | {"pg_url": make_url(settings.pg_url).render_as_string()}
        with open(settings.json_path, "w") as fh:
            json.dump({"header": header, "settings": shown,
                       "reports": [r.to_dict() for r in reports]}, fh, indent=2)
    sys.stdout.flush()


def progress(message: str) -> None:
    """A line on stderr while long steps run, so a watcher knows what is happening."""
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)
