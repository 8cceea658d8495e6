"""Worker fixtures: an in-memory ERP/OA double for dispatcher tests, and books to post in.

``FakeERP`` is an outside system, not a database: it keeps vouchers by idempotency key
(like every real connector, a second post with the same key returns the first
number) and can be told to fail the next calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.base import PermanentError, RetryableError, StatusMessage, Voucher
from yinfin_flow.worker import outbox
from yinfin_flow.worker.config import DeliverySettings


class FakeERP:
    name = "fake"
    master_data_kinds = ("accounts", "partners")

    def __init__(self, delay: float = 0.0) -> None:
        self.vouchers: dict[str, Voucher] = {}
        self.order: list[str] = []
        self.calls: list[str] = []
        self.failures: list[Exception] = []
        self.statuses: list[tuple[str, StatusMessage]] = []
        self.delay = delay
        self.lock = threading.Lock()
        self.master: dict[str, list[dict[str, Any]]] = {}

    def fail_next(self, *errors: Exception) -> None:
        self.failures.extend(errors)

    def post_voucher(self, voucher: Voucher, idempotency_key: str) -> str:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.calls.append(idempotency_key)
            if self.failures:
                raise self.failures.pop(0)
            if idempotency_key not in self.vouchers:
                self.vouchers[idempotency_key] = voucher
                self.order.append(idempotency_key)
            return f"ERP-{self.order.index(idempotency_key) + 1:05d}"

    def read_voucher(self, number_or_key: str) -> Voucher | None:
        if number_or_key.startswith("ERP-"):
            i = int(number_or_key[4:]) - 1
            return self.vouchers[self.order[i]] if i < len(self.order) else None
        return self.vouchers.get(number_or_key)

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        with self.lock:
            self.calls.append(idempotency_key)
            if self.failures:
                raise self.failures.pop(0)
            self.statuses.append((idempotency_key, message))
        return {"id": f"OA-{len(self.statuses)}"}

    def changed_master_data(self, kind: str, watermark: str | None):
        rows = sorted(self.master.get(kind, []), key=lambda r: r["modified"])
        new = [r for r in rows if watermark is None or r["modified"] > watermark]
        return new, (new[-1]["modified"] if new else watermark)


RETRY = RetryableError("HTTP 503 Service Unavailable", connector="fake", status=503)
REFUSED = PermanentError("科目 9999 不存在 (account 9999 does not exist)", connector="fake")


@pytest.fixture
def erp() -> FakeERP:
    return FakeERP()


@pytest.fixture
def lookup(erp: FakeERP):
    def find(name: str) -> FakeERP:
        if name != "fake":
            raise LookupError(f"connector {name!r}: unknown connector")
        return erp
    return find


@pytest.fixture
def settings() -> DeliverySettings:
    return DeliverySettings(erp=("fake",), oa=(), max_attempts=3, backoff=timedelta(seconds=1),
                            backoff_max=timedelta(minutes=1), lease=timedelta(seconds=30), batch=50)


@pytest.fixture
def erp_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Handlers queue vouchers for the ``fake`` ERP (they read the environment per event)."""
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "fake")
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    yield
    outbox.forget_kickers()
