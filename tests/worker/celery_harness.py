"""A real Celery worker process (with embedded beat) against a real Redis and PostgreSQL.

Each :class:`WorkerProcess` runs ``celery -A yinfin_flow.worker.celery_app worker -B
--pool solo`` in its own process group on a queue and Redis database of its own, and
is always killed (the whole group: worker and its beat) when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis as redis_lib

from ..connectors.stubs.erpnext import ERPNextStub

#: (connect, read) seconds of the ERPNext connector in worker tests, and the shortest
#: lease that covers one voucher with it (3 look-ups of 3 tries and 2 pauses, 1 insert)
ERP_TIMEOUT, ERP_LEASE = "0.2,0.4", "12"
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
               "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
               "--logfile", "/var/log/redis/ci.log"]


def erp_stub() -> ERPNextStub:
    """The ERPNext stub with our test chart's accounts (6602 office, 2202 payables)."""
    stub = ERPNextStub()
    stub.docs["Account"] += [
        {"name": f"{code} - {name} - YF", "account_number": code, "account_name": name,
         "company": "Yinfin Ltd", "root_type": kind, "disabled": 0,
         "modified": "2026-11-01 09:00:00.000000"}
        for code, name, kind in (("6602", "Office", "Expense"), ("2202", "Payables", "Liability"))]
    return stub


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "w") -> None:
        self.env, self.log_dir, self.name = env, log_dir, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.starts += 1
        log = open(self.log_dir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [CELERY, "-A", "yinfin_flow.worker.celery_app", "worker", "-B", "--pool", "solo",
             "-Q", self.env["YINFIN_CELERY_QUEUE"], "-n", f"{self.name}{self.starts}@%h",
             "-s", str(self.log_dir / f"beat-{self.name}-{self.starts}"),
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker and its beat (its process group), and wait for it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))


def worker_env(pg_url: str, redis_base: str, stub_url: str, **extra: str) -> dict[str, str]:
    db_number = 1 + uuid.uuid4().int % 15  # 0 is the other tests'
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINFIN_")}
    env.update({
        "YINFIN_DATABASE_URL": pg_url,
        "YINFIN_REDIS_URL": f"{redis_base.rsplit('/', 1)[0]}/{db_number}",
        "YINFIN_CELERY_QUEUE": f"yinfin-test-{uuid.uuid4().hex[:8]}",
        "YINFIN_ERP_CONNECTOR": "erpnext",
        "YINFIN_ERPNEXT_URL": stub_url, "YINFIN_ERPNEXT_API_KEY": "k1",
        "YINFIN_ERPNEXT_API_SECRET": "s1", "YINFIN_ERPNEXT_COMPANY": "Yinfin Ltd",
        "YINFIN_OUTBOX_BACKOFF": "0.2", "YINFIN_OUTBOX_BACKOFF_MAX": "1",
        # the lease must cover one message's longest time (timeouts × calls), see
        # DeliverySettings.lease_checked: short timeouts keep the takeover tests quick
        "YINFIN_ERPNEXT_TIMEOUT": ERP_TIMEOUT, "YINFIN_OUTBOX_LEASE": ERP_LEASE,
        "YINFIN_OUTBOX_MAX_ATTEMPTS": "50",
        "YINFIN_SWEEP_SECONDS": "0.5", "YINFIN_LOG_FORMAT": "json",
    })
    env.update(extra)
    return env


def wait_for(cond: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n--- worker log ---\n{logs()}")


def redis_up(url: str = "redis://127.0.0.1:6379/0") -> bool:
    try:
        return bool(redis_lib.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis_lib.RedisError:
        return False


def stop_redis() -> None:
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=10)
    wait_for(lambda: not redis_up(), 10, "Redis to stop")


def start_redis() -> None:
    if not redis_up():
        subprocess.run(REDIS_START, check=True, capture_output=True, timeout=10)
    wait_for(redis_up, 10, "Redis to start")
