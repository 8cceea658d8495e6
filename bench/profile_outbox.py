"""Load-independent figures for outbox delivery: CPU, SQL and HTTP per message.

Wall-clock rates on a shared machine mostly measure the other jobs. This script drains
a backlog of ``bench/outbox.py``'s vouchers (same payloads, five per document) with ONE
in-process dispatcher (one thread, ``batch`` messages per pass) against the same
ERPNext stub, and prints per message:

* the dispatcher's CPU (``time.process_time()``: the worker's Python, not the server's),
* the stub ERP's CPU (its process, read from ``/proc``): the other half of the machine
  the benchmark's workers share,
* SQL executions (a ``before_cursor_execute`` listener; add BEGIN and COMMIT for the
  round trips), the statements the server runs (an ``executemany`` is one execution,
  pipelined, but one statement per row) and transactions,
* HTTP requests and new TCP connections the connector made,
* with ``--profile FILE``, a cProfile of the drain (``python -m pstats FILE``).

Usage::

    .venv/bin/python -m bench.profile_outbox [--messages 1000] [--batch 100] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import event

from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade

from .common import DEFAULT_PG_URL, scratch_database
from .outbox import NullERP, _env, delivered, proc_cpu, start_stub, write_backlog


def run(url: str, stub: str, stub_pid: int, n: int, batch: int,
        profiler: cProfile.Profile | None, target: str = "erpnext") -> dict[str, Any]:
    import urllib3

    from yinfin_flow.worker import dispatcher
    from yinfin_flow.worker.config import DeliverySettings

    os.environ.update({k: v for k, v in _env(url, stub, "", "").items()
                       if k.startswith("YINFIN_ERPNEXT")})
    db = Database(url, pool_size=1, max_overflow=0)
    counts: Counter[str] = Counter()

    def on_sql(_c: Any, _cur: Any, _stmt: str, params: Any, _ctx: Any, many: bool) -> None:
        counts["sql"] += 1  # a round trip (an executemany is pipelined into one)
        counts["server"] += len(params) if many else 1  # statements the server runs

    event.listen(db.engine, "before_cursor_execute", on_sql)
    event.listen(db.engine, "commit", lambda *_: counts.update(["tx"]))
    requests_seen = Counter[str]()
    real_new_conn = urllib3.connectionpool.HTTPConnectionPool._new_conn
    real_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def new_conn(self: Any) -> Any:
        requests_seen["connections"] += 1
        return real_new_conn(self)

    def urlopen(self: Any, method: str, url: str, *a: Any, **kw: Any) -> Any:
        requests_seen[method] += 1
        return real_urlopen(self, method, url, *a, **kw)

    urllib3.connectionpool.HTTPConnectionPool._new_conn = new_conn  # type: ignore[method-assign]
    urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]
    settings = DeliverySettings(erp=(target,), batch=batch)
    null = NullERP()
    lookup = (lambda name: null) if target == "null" else dispatcher.registry_lookup
    try:
        # warm-up: imports, statement compilation, the first connection
        write_backlog(db, 50, "warm", target)
        dispatcher.drain(db, settings, lookup=lookup, max_passes=1000)
        tag = uuid.uuid4().hex[:6]
        write_backlog(db, n, tag, target)
        counts.clear()
        requests_seen.clear()
        stub0, cpu0, wall0 = proc_cpu(stub_pid), time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        r = dispatcher.drain(db, settings, lookup=lookup, max_passes=100_000)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stub_cpu = proc_cpu(stub_pid) - stub0
        done = delivered(db, tag)
    finally:
        urllib3.connectionpool.HTTPConnectionPool._new_conn = real_new_conn  # type: ignore[method-assign]
        urllib3.connectionpool.HTTPConnectionPool.urlopen = real_urlopen  # type: ignore[method-assign]
        db.dispose()
    if done != n or len(r.delivered) != n:
        raise SystemExit(f"only {done} of {n} delivered")
    return {"cpu": cpu, "stub": stub_cpu, "wall": wall, "sql": counts["sql"], "tx": counts["tx"],
            "server": counts["server"],
            "http": dict(requests_seen)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_outbox", description=__doc__)
    p.add_argument("--pg-url", default=os.environ.get("YINFIN_BENCH_PG_URL", DEFAULT_PG_URL))
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the drain here")
    p.add_argument("--null", action="store_true",
                   help="a null ERP that answers at once: the outbox's own cost (claim, record)")
    args = p.parse_args(argv)
    profiler = cProfile.Profile() if args.profile else None
    stub_proc, stub = start_stub()
    try:
        with scratch_database(args.pg_url, "yinfin_bench_outbox") as url:
            upgrade(url)
            f = run(url, stub, stub_proc.pid or 0, args.messages, args.batch, profiler,
                    "null" if args.null else "erpnext")
    finally:
        stub_proc.kill()
    n = args.messages
    http = f["http"]
    calls = sum(v for k, v in http.items() if k != "connections")
    print(f"{n} messages, batch {args.batch}, one in-process dispatcher, "
          f"{'null ERP' if args.null else 'ERPNext stub'}")
    print(f"  dispatcher CPU   {1000 * f['cpu'] / n:8.3f} ms/message")
    print(f"  stub ERP CPU     {1000 * f['stub'] / n:8.3f} ms/message")
    print(f"  SQL executions   {f['sql'] / n:8.3f} /message ({f['tx']} transactions, "
          f"{f['tx'] / n:.3f}/message)")
    print(f"  SQL statements   {f['server'] / n:8.3f} /message run by the server "
          "(an executemany counts each row)")
    print(f"  HTTP requests    {calls / n:8.3f} /message "
          f"({', '.join(f'{k} {v}' for k, v in sorted(http.items()) if k != 'connections')}); "
          f"new TCP connections: {http.get('connections', 0)}")
    print(f"  wall             {1000 * f['wall'] / n:8.3f} ms/message ({n / f['wall']:.0f} msg/s)")
    if profiler:
        profiler.dump_stats(args.profile)
        print(f"  profile written to {args.profile}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
