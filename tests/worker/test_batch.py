"""A pass's batch look-up (``prepare_vouchers``): fewer calls, the same outcomes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.base import Voucher
from yinfin_flow.db.types import utcnow
from yinfin_flow.worker import dispatcher
from yinfin_flow.worker.config import DeliverySettings

from .conftest import REFUSED, RETRY, FakeERP
from .helpers import books, post, rows
from .test_outbox import _status


class BatchERP(FakeERP):
    """A fake ERP with a batch look-up step, as ERPNext has."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[list[str]] = []
        self.prepare_failures: list[Exception] = []
        self.got: dict[str, Any] = {}

    def prepare_vouchers(self, items: list[tuple[Voucher, str]]) -> dict[str, Any]:
        if self.prepare_failures:
            raise self.prepare_failures.pop(0)
        keys = [k for _, k in items]
        self.prepared.append(keys)
        return {"keys": keys, "known": {k for k in keys if k in self.vouchers}}

    def post_voucher(self, voucher: Voucher, idempotency_key: str, prepared: Any = None) -> str:
        self.got[idempotency_key] = prepared
        return super().post_voucher(voucher, idempotency_key)


def test_a_pass_prepares_each_targets_vouchers_once(db, erp_env, settings) -> None:
    erp = BatchERP()
    books(db)
    post(db, 4)
    keys = [m.idempotency_key for m in rows(db)]
    r = dispatcher.run_once(db, settings, lookup=lambda name: erp)
    assert len(r.delivered) == 4 and erp.prepared == [keys]
    assert all(erp.got[k] == {"keys": keys, "known": set()} for k in keys)
    assert {m.status for m in rows(db)} == {"delivered"}
    assert sorted(erp.order) == sorted(keys)


def test_a_failed_batch_look_up_leaves_each_message_to_look_up_on_its_own(db, erp_env,
                                                                       settings) -> None:
    erp = BatchERP()
    erp.prepare_failures.append(RETRY)
    books(db)
    post(db, 3)
    r = dispatcher.run_once(db, settings, lookup=lambda name: erp)
    assert len(r.delivered) == 3 and erp.prepared == []
    assert set(erp.got.values()) == {None}  # posted the one-by-one way


def test_a_single_message_is_not_prepared(db, erp_env) -> None:
    erp = BatchERP()
    books(db)
    post(db, 1)
    r = dispatcher.run_once(db, DeliverySettings(erp=("fake",)), lookup=lambda name: erp)
    assert len(r.delivered) == 1 and erp.prepared == [] and set(erp.got.values()) == {None}


def test_a_connector_is_looked_up_once_per_pass(db, erp_env, settings) -> None:
    erp, asked = BatchERP(), []

    def lookup(name: str) -> BatchERP:
        asked.append(name)
        return erp

    books(db)
    post(db, 5)
    dispatcher.run_once(db, settings, lookup=lookup)
    assert asked == ["fake"]


def _status_messages(db, n: int) -> None:
    from yinfin_flow.worker import outbox

    with db.unit_of_work() as s:
        for i in range(n):
            outbox.enqueue(s, target="fake", kind="oa_status", document_key=f"request:{i}",
                           payload={"message": _status(i)}, idempotency_key=f"s{i:03d}")


def test_claim_and_record_take_two_statements_each_whatever_the_batch(db) -> None:
    from sqlalchemy import event

    erp, seen = BatchERP(), []
    _status_messages(db, 30)

    def count(_c, _cur, statement, params, _ctx, many):
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE is sent as SQL
            seen.append(len(params) if many else 1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        claimed = dispatcher.claim(db, DeliverySettings(erp=("fake",), batch=30))
        assert len(claimed) == 30 and sum(seen) == 2
        seen.clear()
        r = dispatcher.record(db, [dispatcher.call(c, lambda n: erp) for c in claimed],
                              DeliverySettings())
        assert len(r.delivered) == 30 and sum(seen) == 2
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_one_pass_records_each_outcome_on_its_own_row(db) -> None:
    erp = BatchERP()
    _status_messages(db, 5)
    erp.fail_next(RETRY, REFUSED)  # the first two calls (the pass goes in id order)
    settings = DeliverySettings(erp=("fake",), batch=10, max_attempts=3)
    claimed = dispatcher.claim(db, settings)
    outcomes = [dispatcher.call(c, lambda n: erp) for c in claimed]
    # the fourth message's lease ran out and another worker took it over meanwhile
    [taken] = dispatcher.claim(db, settings, now=utcnow() + timedelta(hours=1), ids=[claimed[3].id])
    r = dispatcher.record(db, outcomes, settings)
    assert (r.retried, r.dead) == ([claimed[0].id], [claimed[1].id])
    assert r.delivered == [claimed[2].id, claimed[3].id, claimed[4].id]  # a delivery counts
    by_id = {m.id: m for m in rows(db)}
    assert [by_id[c.id].status for c in claimed] == ["pending", "dead", "delivered",
                                                    "delivered", "delivered"]
    # each delivered row keeps the answer to its own call
    answers = {o.claimed.id: o.external_id for o in outcomes if o.ok}
    assert {i: by_id[i].external_id for i in answers} == answers
    assert len(set(answers.values())) == 3
    assert all(by_id[i].claim_token is None and by_id[i].delivered_at for i in answers)
    assert by_id[claimed[0].id].last_error == RETRY.message
    assert by_id[claimed[0].id].next_attempt_at > utcnow()
    assert taken.token != claimed[3].token


class TimedERP(BatchERP):
    """Says one message can take ``budget`` seconds (as the HTTP connectors do)."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget = budget

    def message_budget(self) -> float:
        return self.budget


def _statements(db, erp, settings, **kw) -> int:
    from sqlalchemy import event

    seen: list[int] = []

    def count(_c, _cur, statement, params, _ctx, many):
        if not statement.startswith("BEGIN"):
            seen.append(len(params) if many else 1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        r = dispatcher.run_once(db, settings, lookup=lambda n: erp, **kw)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(r.delivered) == 30
    return sum(seen)


def test_a_pass_of_quick_calls_never_renews_its_lease(db) -> None:
    # the fence costs nothing on the fast path: claim (2 statements) and record (2)
    _status_messages(db, 30)
    assert _statements(db, TimedERP(5.0), DeliverySettings(erp=("fake",), batch=30,
                                                           lease=timedelta(seconds=20))) == 4


def test_a_lease_shorter_than_one_message_is_not_renewed_before_every_call(db) -> None:
    # settings made in code are not checked against the connector: renewing before
    # every call could not make such a lease cover a message, so it is renewed at
    # half-time only (a quick pass: never)
    _status_messages(db, 30)
    assert _statements(db, TimedERP(600.0), DeliverySettings(erp=("fake",), batch=30,
                                                             lease=timedelta(seconds=20))) == 4


def test_a_lease_about_to_run_out_is_renewed_and_outcomes_written_first(db) -> None:
    # 20 s lease, 15 s per message: after 5 s the pass renews before its next call,
    # writing the outcomes it has (the clock is moved by starting the pass "later")
    erp = TimedERP(15.0)
    _status_messages(db, 30)
    settings = DeliverySettings(erp=("fake",), batch=30, lease=timedelta(seconds=20))
    claimed = dispatcher.claim(db, settings)
    from yinfin_flow.worker.hold import Hold

    hold = Hold(db, settings, claimed, budget=lambda t: erp.budget,
                now=utcnow() + timedelta(seconds=6))
    assert hold.before_call(claimed[0]) and hold.renewals == 1
    hold.done(dispatcher.call(claimed[0], lambda n: erp))
    assert hold.before_call(claimed[1]) and hold.renewals == 1  # 20 s ahead again
    by_id = {m.id: m for m in rows(db)}
    assert all(by_id[c.id].next_attempt_at > utcnow() + timedelta(seconds=19) for c in claimed)
    r = hold.finish()
    assert r.delivered == [claimed[0].id] and r.given_back == [c.id for c in claimed[2:]]
