"""Outbox delivery speed (issue 6, "Speed"): messages delivered per second to a local
stub ERP through Celery with 2 workers, and the backlog drains in order.

Set-up: a scratch PostgreSQL database migrated to head; a local ERPNext-compatible
stub (a separate process: ``/api/resource/Journal Entry`` lookup by the
``[yinfin:<key>]`` marker, account lookup, insert; HTTP/1.1 keep-alive) driven by the
real :class:`connectors.erpnext.ERPNextConnector`; Redis as the broker (a Redis
database and queue of the run's own, flushed afterwards); two
``celery -A yinfin_flow.worker.celery_app worker --pool solo`` processes.

Timed run: a backlog of N ``erp_voucher`` messages (two-line vouchers, five messages
per document so the per-document order matters) is written in one transaction,
then four ``yinfin.deliver`` tasks are sent; the clock stops when the database says
every message is delivered. Rate = N / elapsed. Checks: every voucher reached the
stub exactly once, and within each document in the order the rows were written.

For comparison, the same backlog is drained by one in-process dispatcher (no
Celery), which is what ``make run`` without Redis uses.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade

from . import baseline, erpnext_stub
from .common import (
    Context,
    Figure,
    Report,
    Target,
    add_common_arguments,
    emit,
    machine_header,
    progress,
    scratch_database,
    settings_from,
)

DESCRIPTION = "outbox messages delivered/s to a local stub ERP through Celery (2 workers), in order"
TARGET_RATE = 500.0
PER_DOCUMENT = 5
REDIS = os.environ.get("YINFIN_BENCH_REDIS_URL", os.environ.get("YINFIN_TEST_REDIS_URL",
                                                                  "redis://127.0.0.1:6379/0"))


# -- the stub ERP (its own process: bench/erpnext_stub.py) ------------------------------


def start_stub() -> tuple[Any, str]:
    return erpnext_stub.start()


def arrivals(url: str) -> dict[str, Any]:
    import requests

    return dict(requests.get(f"{url}/_arrivals", timeout=30).json())


# -- the backlog --------------------------------------------------------------------------


def _voucher(i: int) -> dict[str, Any]:
    from connectors.base import Voucher, VoucherLine
    from yinfin_flow.worker.messages import voucher_to_json

    a = Decimal(100 + i % 900) + Decimal("0.25")
    return voucher_to_json(Voucher(company="BENCH", date=date(2026, 6, 15), memo=f"bench {i}", lines=(
        VoucherLine(account="6602", debit=a, credit=Decimal(0), currency="CNY", amount=a),
        VoucherLine(account="2202", debit=Decimal(0), credit=a, currency="CNY", amount=a))))


def write_backlog(db: Database, n: int, tag: str, target: str = "erpnext") -> None:
    from yinfin_flow.db.models.outbox import OutboxMessage
    from yinfin_flow.db.types import utcnow

    now = utcnow()
    with db.unit_of_work() as s:
        s.bulk_insert_mappings(OutboxMessage, [{  # type: ignore[arg-type]
            "target": target, "kind": "erp_voucher",
            "document_key": f"voucher:{tag}-{i // PER_DOCUMENT}",
            "payload": {"voucher": _voucher(i)}, "idempotency_key": f"{tag}-{i:07d}",
            "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
            "updated_at": now} for i in range(n)])


def delivered(db: Database, tag: str) -> int:
    """Delivered messages of one run (``tag`` starts their keys)."""
    from yinfin_flow.db.models.outbox import OutboxMessage

    with db.unit_of_work(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMessage)
                            .where(OutboxMessage.status == "delivered",
                                   OutboxMessage.idempotency_key.like(f"{tag}-%"))) or 0)


def check_order(got: dict[str, Any], tag: str, n: int) -> tuple[int, int]:
    """(keys not delivered exactly once, documents whose messages arrived out of order)."""
    mine = [k for k in got["arrivals"] if k.startswith(f"{tag}-")]
    posts = got["posts"]
    wrong = sum(1 for i in range(n) if posts.get(f"{tag}-{i:07d}") != 1)
    seen: dict[int, int] = {}
    disorder = set()
    for k in mine:
        i = int(k.rsplit("-", 1)[1])
        doc = i // PER_DOCUMENT
        if seen.get(doc, -1) > i:
            disorder.add(doc)
        seen[doc] = max(seen.get(doc, -1), i)
    return wrong, len(disorder)


# -- runs -----------------------------------------------------------------------------------


def _env(url: str, stub: str, redis_url: str, queue: str, concurrency: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINFIN_")}
    env.update({"YINFIN_DATABASE_URL": url, "YINFIN_REDIS_URL": redis_url, "YINFIN_CELERY_QUEUE": queue,
                "YINFIN_ERP_CONNECTOR": "erpnext", "YINFIN_ERPNEXT_URL": stub,
                "YINFIN_ERPNEXT_API_KEY": "k", "YINFIN_ERPNEXT_API_SECRET": "s",
                "YINFIN_ERPNEXT_COMPANY": "Bench Ltd", "YINFIN_OUTBOX_BATCH": "100",
                "YINFIN_OUTBOX_CONCURRENCY": str(concurrency),
                "YINFIN_LOG_LEVEL": "WARNING", "YINFIN_LOG_FORMAT": "json"})
    return env


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_note(cpu: dict[str, float], n: int) -> str:
    """Client CPU per message (load-independent, unlike the rate)."""
    return ", ".join(f"{k} {1000 * v / n:.2f} ms CPU/msg" for k, v in cpu.items())


def celery_run(url: str, stub: str, n: int, workers: int, tmp: Path, *, concurrency: int = 1,
               target: str = "erpnext", stub_pid: int | None = None
               ) -> tuple[float, str, dict[str, float]]:
    """(messages/s, the run's key prefix, CPU seconds of the workers and the stub)."""
    import redis

    db_number = 1 + uuid.uuid4().int % 15
    redis_url = f"{REDIS.rsplit('/', 1)[0]}/{db_number}"
    queue = f"yinfin-bench-{uuid.uuid4().hex[:8]}"
    env = _env(url, stub, redis_url, queue, concurrency)
    if target == "file":
        env.update({"YINFIN_ERP_CONNECTOR": "file", "YINFIN_FILE_DIR": str(tmp / "drop"),
                    "YINFIN_FILE_FORMATS": "csv"})
    celery = str(Path(sys.executable).with_name("celery"))
    procs = []
    try:
        for w in range(workers):
            log = open(tmp / f"worker{w}.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [celery, "-A", "yinfin_flow.worker.celery_app", "worker", "--pool", "solo",
                 "-Q", queue, "-n", f"bench{w}-{queue}@%h", "--without-heartbeat",
                 "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        db = Database(url)
        tag = uuid.uuid4().hex[:6]
        write_backlog(db, n, tag, target)
        time.sleep(3)  # the workers connect (the clock has not started)
        from celery import Celery

        sender = Celery("bench", broker=redis_url)
        pids = {"workers": [p.pid for p in procs], "stub": [stub_pid] if stub_pid else []}
        cpu0 = {k: sum(proc_cpu(p) for p in v) for k, v in pids.items()}
        start = time.perf_counter()
        for _ in range(2 * workers):
            sender.send_task("yinfin.deliver", queue=queue)
        deadline = start + max(120.0, n / 20)
        while delivered(db, tag) < n and time.perf_counter() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu = {k: sum(proc_cpu(p) for p in v) - cpu0[k] for k, v in pids.items() if v}
        done = delivered(db, tag)
        db.dispose()
        sender.close()
        if done < n:  # a stall: say so, with what the workers said last
            tails = [b"\n".join((tmp / f"worker{w}.log").read_bytes().splitlines()[-5:])
                     for w in range(workers)]
            progress(f"outbox: STALLED at {done:,} of {n:,} after {elapsed:.0f} s; worker logs end: "
                     + " | ".join(t.decode(errors="replace") for t in tails))
        return (done / elapsed if elapsed else 0.0), tag, cpu
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 9)
            p.wait(10)
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(redis_url).flushdb()


class NullERP:
    """Answers at once: what is left is the outbox's own cost (claim, record)."""

    name = "null"

    def post_voucher(self, voucher: Any, key: str) -> str:
        return f"N-{key}"


def inprocess_run(url: str, stub: str, n: int, target: str = "erpnext") -> tuple[float, str]:
    from yinfin_flow.worker import dispatcher
    from yinfin_flow.worker.config import DeliverySettings

    os.environ.update({k: v for k, v in _env(url, stub, "", "").items() if k.startswith("YINFIN_ERPNEXT")})
    db = Database(url)
    tag = uuid.uuid4().hex[:6]
    write_backlog(db, n, tag, target)
    settings = DeliverySettings(erp=(target,), batch=100)
    null = NullERP()
    lookup = (lambda name: null) if target == "null" else dispatcher.registry_lookup
    start = time.perf_counter()
    dispatcher.drain(db, settings, lookup=lookup, max_passes=100_000)
    elapsed = time.perf_counter() - start
    done = delivered(db, tag)
    db.dispose()
    return done / elapsed, tag


def run(ctx: Context, messages: int | None = None, concurrency: int = 8) -> Report:
    import tempfile

    st = ctx.settings
    n = messages or (2000 if st.quick else 10_000)
    report = Report("outbox", f"outbox delivery: {n:,} vouchers to a local stub ERP "
                              f"(ERPNext REST, real connector), {PER_DOCUMENT} per document")
    figures = report.section("messages delivered/s (backlog written first, clock stops at the last delivery)")
    stub_proc, stub = start_stub()
    try:
        with scratch_database(st.pg_url, "yinfin_bench_outbox") as url, \
                tempfile.TemporaryDirectory() as tmp:
            progress("outbox: migrating")
            upgrade(url)
            progress(f"outbox: {n:,} messages through Celery, 2 workers x {concurrency} calls")
            rate, tag, cpu = celery_run(url, stub, n, 2, Path(tmp), concurrency=concurrency,
                                        stub_pid=stub_proc.pid)
            wrong, disorder = check_order(arrivals(stub), tag, n)
            figures.append(Figure(f"(a) ERPNext stub: 2 Celery workers x {concurrency} concurrent calls",
                                  rate, "msg/s", f"not exactly once: {wrong}, "
                                  f"documents out of order: {disorder}; {cpu_note(cpu, n)}"))
            report.targets.append(Target("messages/s through Celery with 2 workers (a)", rate,
                                         TARGET_RATE, ">="))
            if wrong or disorder:
                report.notes.append(f"{wrong} vouchers not delivered exactly once, "
                                    f"{disorder} documents out of order")
            progress(f"outbox: {n:,} messages through Celery, 2 workers, one call at a time")
            rate_1, tag_1, cpu_1 = celery_run(url, stub, n, 2, Path(tmp), stub_pid=stub_proc.pid)
            wrong_1, disorder_1 = check_order(arrivals(stub), tag_1, n)
            figures.append(Figure("(b) ERPNext stub: 2 Celery workers, one call at a time", rate_1,
                                  "msg/s", f"not exactly once: {wrong_1}, documents out of order: "
                                  f"{disorder_1}; {cpu_note(cpu_1, n)}"))
            progress(f"outbox: {n:,} messages through Celery to the file-drop ERP")
            rate_f, _, cpu_f = celery_run(url, stub, n, 2, Path(tmp), target="file")
            files = len(list((Path(tmp) / "drop").glob("*.csv")))
            figures.append(Figure("(c) file-drop ERP (CSV per voucher): 2 Celery workers", rate_f,
                                  "msg/s", f"{files:,} files for {n:,} messages; {cpu_note(cpu_f, n)}"))
            progress(f"outbox: {n:,} messages, one in-process dispatcher")
            rate1, tag1 = inprocess_run(url, stub, n)
            wrong1, disorder1 = check_order(arrivals(stub), tag1, n)
            figures.append(Figure("(d) ERPNext stub: in-process dispatcher, one thread (no Redis)", rate1, "msg/s",
                                  f"not exactly once: {wrong1}, documents out of order: {disorder1}"))
            progress(f"outbox: {n:,} messages, one in-process dispatcher, null ERP")
            rate0, _ = inprocess_run(url, stub, n, "null")
            figures.append(Figure("(e) null ERP: in-process dispatcher, one thread", rate0, "msg/s",
                                  "(claim + record only: the outbox's own ceiling per thread)"))
    finally:
        stub_proc.kill()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--messages", type=int, default=None,
                        help="backlog size (default 10,000; --quick 2,000)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="YINFIN_OUTBOX_CONCURRENCY of each worker in run (a) (default 8)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx, args.messages, args.concurrency)
    emit(settings, [baseline.run(ctx), report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
