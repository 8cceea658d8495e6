"""Accounting months close in order and reopen in reverse order, on both databases;
on PostgreSQL a close and a reopen of neighbouring months cannot interleave."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from yinfin_flow.db.models.ledger import AccountingPeriod
from yinfin_flow.domain.errors import Conflict
from yinfin_flow.ledger import periods
from yinfin_flow.ledger.periods import PeriodOutOfOrder

from ..factories import org_in


def status(db) -> dict[str, str]:
    with db.unit_of_work(readonly=True) as s:
        return {p.code: p.status for p in s.scalars(select(AccountingPeriod).order_by(AccountingPeriod.start_date))}


def act(db, what: str, code: str) -> None:
    with db.unit_of_work() as s:
        if what == "close":
            periods.close_period(s, "ACME", code, actor="cfo")
        else:
            periods.open_period(s, "ACME", code)


@pytest.fixture
def year(db):
    org_in(db)
    with db.unit_of_work() as s:
        periods.open_year(s, "ACME", 2026)
    return db


def test_closing_past_an_open_month_is_refused_naming_the_earliest_open_one(year):
    db = year
    act(db, "close", "2026-01")
    with pytest.raises(PeriodOutOfOrder) as err:
        act(db, "close", "2026-04")
    assert isinstance(err.value, Conflict) and err.value.http_status == 409
    assert err.value.details == {"field": "period", "period": "2026-04", "blocking": "2026-02"}
    assert "close 2026-02 first" in err.value.message
    assert status(db)["2026-04"] == "open"  # nothing written


def test_months_close_in_order_and_the_first_month_has_no_predecessor(year):
    db = year
    for m in ("01", "02", "03"):
        act(db, "close", f"2026-{m}")
    act(db, "close", "2026-03")  # closing a closed month again changes nothing
    assert [c for c, st in status(db).items() if st == "closed"] == ["2026-01", "2026-02", "2026-03"]
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(AccountingPeriod.closed_by).where(AccountingPeriod.code == "2026-03")) == "cfo"


def test_reopen_under_a_closed_month_is_refused_naming_the_latest_closed_one(year):
    db = year
    for m in ("01", "02", "03"):
        act(db, "close", f"2026-{m}")
    with pytest.raises(PeriodOutOfOrder) as err:
        act(db, "open", "2026-02")
    assert err.value.details == {"field": "period", "period": "2026-02", "blocking": "2026-03"}
    assert "reopen 2026-03 first" in err.value.message
    assert status(db)["2026-02"] == "closed"
    act(db, "open", "2026-03")  # the latest closed month reopens
    act(db, "open", "2026-02")
    st = status(db)
    assert (st["2026-01"], st["2026-02"], st["2026-03"]) == ("closed", "open", "open")
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(AccountingPeriod.closed_by).where(AccountingPeriod.code == "2026-02")) is None


def test_order_spans_years_and_new_months_and_open_year_reopens_backwards(year):
    db = year
    act(db, "close", "2026-01")
    act(db, "close", "2026-02")
    act(db, "open", "2027-01")  # a new later month: fine
    with pytest.raises(PeriodOutOfOrder) as err:
        act(db, "close", "2027-01")
    assert err.value.details["blocking"] == "2026-03"
    with pytest.raises(PeriodOutOfOrder) as err:
        act(db, "open", "2025-12")  # a new month under a closed one would be an open month before it
    assert err.value.details["blocking"] == "2026-02"
    assert "2025-12" not in status(db)
    with db.unit_of_work() as s:  # `period open 2026` reopens the year from December back
        opened = periods.open_year(s, "ACME", 2026)
    assert [p.code for p in opened] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert set(status(db).values()) == {"open"}


def test_a_close_and_a_reopen_of_neighbouring_months_queue_on_postgres(pg_db):
    """Reopening February holds the company's periods; closing March waits, then sees February open.

    Had the close only locked March, it would read February as still closed and commit,
    leaving March closed above an open February.
    """
    db = pg_db
    org_in(db)
    with db.unit_of_work() as s:
        periods.open_year(s, "ACME", 2026)
    act(db, "close", "2026-01")
    act(db, "close", "2026-02")
    outcome: list[BaseException | None] = []

    def close_march() -> None:
        try:
            act(db, "close", "2026-03")
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome.append(err)

    with db.unit_of_work() as s:
        periods.open_period(s, "ACME", "2026-02")
        t = threading.Thread(target=close_march)
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "closing March must wait for the reopen of February"
    t.join(10)
    [err] = outcome
    assert isinstance(err, PeriodOutOfOrder) and err.details["blocking"] == "2026-02"
    st = status(db)
    assert (st["2026-02"], st["2026-03"]) == ("open", "open")


def test_concurrent_closes_never_leave_a_later_month_closed_above_an_open_one(pg_db):
    db = pg_db
    org_in(db)
    with db.unit_of_work() as s:
        periods.open_year(s, "ACME", 2026)
    act(db, "close", "2026-01")
    for rnd in range(6):
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def run(what: str, code: str, barrier: threading.Barrier = barrier,
                errors: list[BaseException] = errors) -> None:
            barrier.wait()
            try:
                act(db, what, code)
            except PeriodOutOfOrder as err:
                errors.append(err)

        # Alternate rounds: close Feb + Mar together, then reopen Mar + Feb together.
        jobs = [("close", "2026-02"), ("close", "2026-03")] if rnd % 2 == 0 else \
               [("open", "2026-03"), ("open", "2026-02")]
        threads = [threading.Thread(target=run, args=j) for j in jobs]
        for t in threads:
            t.start()
        barrier.wait()
        for t in threads:
            t.join(10)
        st = status(db)
        assert not (st["2026-03"] == "closed" and st["2026-02"] == "open"), (rnd, st, errors)
        for what, code in jobs if errors else []:  # finish the round so the next starts alike
            act(db, what, code)
