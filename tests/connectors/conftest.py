"""Stub servers start per test (cheap: a thread and an ephemeral port) and always stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from .stubs.server import StubServer

#: A fixed "now" for inbound tests; deliveries are stamped relative to it.
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def start_stub() -> Iterator[Callable[[StubServer], StubServer]]:
    started: list[StubServer] = []

    def start(stub: StubServer) -> StubServer:
        started.append(stub.start())
        return stub

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def org(request, start_stub):
    """``(stub, connector)``: the sample organisation of :mod:`.org_cases`, which the
    test module's ``build(start_stub)`` puts into its vendor's stub."""
    return request.module.build(start_stub)


def sample_voucher(debit_account: str = "6602.01", amount: str = "1234.56"):
    """A two-line expense voucher: travel expense against other payables."""
    from datetime import date
    from decimal import Decimal

    from connectors.base import Voucher, VoucherLine

    a = Decimal(amount)
    return Voucher(company="C01", date=date(2026, 11, 25), memo="差旅报销 EXP-1", lines=(
        VoucherLine(account=debit_account, debit=a, credit=Decimal(0), currency="CNY", amount=a,
                    memo="差旅费", cost_centre="CC-01", account_name="差旅费",
                    account_type="expense"),
        VoucherLine(account="2241.01", debit=Decimal(0), credit=a, currency="CNY", amount=a,
                    memo="应付员工", partner="E001", account_name="其他应付款",
                    account_type="liability"),
    ), number="记-2026-11-0001", key="je:1")
