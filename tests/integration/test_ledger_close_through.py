"""Closing through a month: every earlier open month closes, oldest first, in one action;
all or nothing, naming every month and voucher that blocks. Both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from yinfin_flow.db.models.ledger import AccountingPeriod, JournalSync
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.ledger import periods, sync
from yinfin_flow.ledger.manual import post_manual
from yinfin_flow.ledger.periods import CloseBlocked, PeriodOutOfOrder

from .test_ledger_posting import books

ACCRUAL = [{"account": "6602", "debit": "10.00", "cost_centre": "RD"}, {"account": "2202", "credit": "10.00",
                                                                         "partner": "V001"}]


def status(db) -> dict[str, str]:
    with db.unit_of_work(readonly=True) as s:
        return {p.code: p.status for p in s.scalars(select(AccountingPeriod).order_by(AccountingPeriod.start_date))}


def close_through(db, through: str) -> list[str]:
    with db.unit_of_work() as s:
        return [p.code for p in periods.close_through(s, "ACME", through, actor="fiona")]


def test_close_through_closes_every_earlier_open_month_in_order(db):
    books(db)
    before = status(db)
    assert list(before)[:3] == ["2026-01", "2026-02", "2026-03"] and set(before.values()) == {"open"}
    with db.unit_of_work() as s:  # two vouchers queued for the ERP, one given up on
        for key, on, state in (("m-feb", date(2026, 2, 3), "pending"), ("m-apr", date(2026, 4, 9), "failed")):
            posted = post_manual(s, key=key, company="ACME", posting_date=on, actor="kim", summary="accrual",
                                 lines=ACCRUAL)
            sync.mark(s, posted.entry_id, state)
    with pytest.raises(CloseBlocked) as info:
        close_through(db, "2026-05")
    assert info.value.http_status == 409 and info.value.code == "period_close_blocked"
    blocking = info.value.details["blocking"]
    assert [(b["period"], [v["voucher"] for v in b["unsynced"]]) for b in blocking] == [
        ("2026-02", ["记-2026-02-0001"]), ("2026-04", ["记-2026-04-0001"])]
    assert "2026-02: 记-2026-02-0001 (pending); 2026-04: 记-2026-04-0001 (failed)" in info.value.message
    assert status(db) == before  # nothing closed

    with db.unit_of_work() as s:
        for entry_id in s.scalars(select(JournalSync.entry_id)):
            sync.mark(s, entry_id, "synced", erp_voucher_id=f"K3-{entry_id}")
    assert close_through(db, "2026-05") == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
    after = status(db)
    assert [c for c, st in after.items() if st == "closed"] == ["2026-01", "2026-02", "2026-03", "2026-04",
                                                                "2026-05"]
    with db.unit_of_work(readonly=True) as s:
        assert set(s.scalars(select(AccountingPeriod.closed_by).where(AccountingPeriod.status == "closed"))) == {
            "fiona"}
    assert close_through(db, "2026-03") == []  # already closed: nothing to do
    assert close_through(db, "2026-06") == ["2026-06"]

    # reopen stays one month at a time, from the latest back
    with pytest.raises(PeriodOutOfOrder), db.unit_of_work() as s:
        periods.open_period(s, "ACME", "2026-04")
    with db.unit_of_work() as s:
        periods.open_period(s, "ACME", "2026-06")
    assert status(db)["2026-06"] == "open"


def test_close_through_a_month_that_does_not_exist_is_refused(db):
    books(db)
    for bad, kind in (("2031-01", ValidationError), ("2026-13", ValidationError)):
        with pytest.raises(kind) as info, db.unit_of_work() as s:
            periods.close_through(s, "ACME", bad, actor="fiona")
        assert info.value.details["field"] == "through"
