"""The outbox on both backends: rows written with the change, delivered in order,
retried with backoff, dead-lettered, replayed; SKIP LOCKED claiming on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from yinfin_flow.db.models.ledger import JournalSync
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.ledger.manual import post_manual
from yinfin_flow.worker import dispatcher, leases, outbox
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.messages import voucher_from_json

from ..factories import JAN
from .conftest import REFUSED, RETRY, FakeERP
from .helpers import books, post, rows


def sync_state(db, entry_id):
    with db.unit_of_work(readonly=True) as s:
        row = s.get(JournalSync, entry_id)
        return None if row is None else (row.status, row.erp_voucher_id)


def test_no_connector_configured_writes_nothing(db, monkeypatch):
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    books(db)
    [entry] = post(db)
    assert rows(db) == []
    assert sync_state(db, entry) is None


def test_voucher_is_queued_in_the_posting_transaction(db, erp_env):
    books(db)
    [entry] = post(db)
    [row] = rows(db)
    assert (row.target, row.kind, row.status, row.document_key) == (
        "fake", "erp_voucher", "pending", f"voucher:{entry}")
    assert row.idempotency_key == f"yf-ACME-je{entry}"
    v = voucher_from_json(row.payload["voucher"])
    assert v.key == row.idempotency_key and v.totals()[0] == v.totals()[1] > 0
    assert sync_state(db, entry) == ("pending", None)
    # a posting that rolls back leaves no message behind
    with pytest.raises(RuntimeError), db.unit_of_work() as s:
        post_manual(s, key="manual:rolled-back", company="ACME", posting_date=JAN, actor="kim",
                    summary="x", lines=[{"account": "6602", "debit": "1"},
                                        {"account": "2202", "credit": "1"}])
        raise RuntimeError("the action failed after posting")
    assert len(rows(db)) == 1


def test_delivered_once_and_synced(db, erp_env, erp, lookup, settings):
    books(db)
    entries = post(db, 3)
    r = dispatcher.drain(db, settings, lookup=lookup)
    assert len(r.delivered) == 3 and not r.retried and not r.dead
    assert [m.status for m in rows(db)] == ["delivered"] * 3
    assert [m.external_id for m in rows(db)] == ["ERP-00001", "ERP-00002", "ERP-00003"]
    assert sync_state(db, entries[0]) == ("synced", "ERP-00001")
    assert dispatcher.drain(db, settings, lookup=lookup).attempted == 0
    assert len(erp.calls) == 3 and len(erp.vouchers) == 3


def test_same_document_waits_for_the_earlier_message(db, erp, lookup, settings):
    with db.unit_of_work() as s:
        for i in range(3):
            outbox.enqueue(s, target="fake", kind="oa_status", document_key="request:1",
                           payload={"message": _status(i)}, idempotency_key=f"k{i}")
        outbox.enqueue(s, target="fake", kind="oa_status", document_key="request:2",
                       payload={"message": _status(9)}, idempotency_key="other")
    erp.fail_next(RETRY)
    r = dispatcher.run_once(db, settings, lookup=lookup)
    # k0 failed; k1/k2 must not overtake it; the other document is not held up
    assert r.retried == [1] and r.delivered == [4]
    assert dispatcher.run_once(db, settings, lookup=lookup).attempted == 0
    later = utcnow() + timedelta(hours=2)
    for _ in range(3):
        dispatcher.run_once(db, settings, lookup=lookup, now=later)
    assert [k for k, _ in erp.statuses] == ["other", "k0", "k1", "k2"]


def _status(i):
    return {"kind": "status", "request_id": "1", "title": f"t{i}", "status": "pending",
            "occurred_at": "2026-01-15T00:00:00+00:00", "user_ids": [], "form": {},
            "external_instance_id": None, "template": None, "comment": None, "url": None,
            "task_id": None}


def test_backoff_grows_with_jitter_and_respects_retry_after():
    s = DeliverySettings(backoff=timedelta(seconds=2), backoff_max=timedelta(seconds=100))
    assert dispatcher.backoff(1, s, rng=lambda: 0.0) == timedelta(seconds=1)
    assert dispatcher.backoff(1, s, rng=lambda: 1.0) == timedelta(seconds=2)
    assert dispatcher.backoff(4, s, rng=lambda: 1.0) == timedelta(seconds=16)
    assert dispatcher.backoff(20, s, rng=lambda: 1.0) == timedelta(seconds=100)
    assert dispatcher.backoff(1, s, retry_after=30, rng=lambda: 1.0) == timedelta(seconds=30)


def test_settings_durations_are_exact_and_bad_values_name_their_variable():
    s = DeliverySettings.from_env({"YINFIN_OUTBOX_BACKOFF": "0.2", "YINFIN_OUTBOX_LEASE": "3",
                                   "YINFIN_OUTBOX_BACKOFF_MAX": "1.000001",
                                   "YINFIN_OUTBOX_BATCH": "100"})
    assert s.backoff == timedelta(milliseconds=200) and s.lease == timedelta(seconds=3)
    assert s.backoff_max == timedelta(seconds=1, microseconds=1) and s.batch == 100
    assert DeliverySettings.from_env({}) == DeliverySettings()
    assert DeliverySettings(lease=60).lease == timedelta(minutes=1)  # a number is seconds
    for name, raw in [("YINFIN_OUTBOX_BACKOFF", "two"), ("YINFIN_OUTBOX_LEASE", "nan"),
                      ("YINFIN_OUTBOX_LEASE", "0.5"), ("YINFIN_OUTBOX_BACKOFF_MAX", "-1"),
                      ("YINFIN_OUTBOX_BACKOFF", "1e30"), ("YINFIN_OUTBOX_BATCH", "1.5"),
                      ("YINFIN_OUTBOX_MAX_ATTEMPTS", "0")]:
        with pytest.raises(ValidationError) as err:
            DeliverySettings.from_env({name: raw})
        assert err.value.details["field"] == name, (name, raw)


def test_retry_waits_for_its_backoff_then_dead_letters_after_max_tries(db, erp_env, erp, lookup, settings):
    books(db)
    [entry] = post(db)
    erp.fail_next(RETRY, RETRY, RETRY)
    now = utcnow()
    r = dispatcher.run_once(db, settings, lookup=lookup, now=now)
    [row] = rows(db)
    assert r.retried == [row.id] and row.attempts == 1 and row.last_error == RETRY.message
    assert now + timedelta(seconds=0.5) <= row.next_attempt_at <= now + timedelta(seconds=1.01)
    assert dispatcher.run_once(db, settings, lookup=lookup, now=now).attempted == 0
    dispatcher.run_once(db, settings, lookup=lookup, now=now + timedelta(minutes=5))
    r = dispatcher.run_once(db, settings, lookup=lookup, now=now + timedelta(minutes=10))
    [row] = rows(db)
    assert r.dead == [row.id] and row.status == "dead" and row.attempts == 3
    assert sync_state(db, entry)[0] == "failed"


def test_permanent_error_is_dead_at_once_with_the_vendors_message(db, erp_env, erp, lookup, settings):
    books(db)
    [entry] = post(db)
    erp.fail_next(REFUSED)
    r = dispatcher.run_once(db, settings, lookup=lookup)
    [row] = rows(db)
    assert r.dead == [row.id] and row.attempts == 1
    assert row.last_error == "科目 9999 不存在 (account 9999 does not exist)"
    with db.unit_of_work(readonly=True) as s:
        assert [d.id for d in outbox.dead_letters(s)] == [row.id]
    # replay: fresh tries, delivered once; replaying a delivered message is a no-op
    with db.unit_of_work() as s:
        view = outbox.replay(s, row.id)
    assert (view.status, view.attempts) == ("pending", 0)
    assert sync_state(db, entry) == ("pending", None)
    dispatcher.drain(db, settings, lookup=lookup)
    with db.unit_of_work() as s:
        assert outbox.replay(s, row.id).status == "delivered"
    assert dispatcher.drain(db, settings, lookup=lookup).attempted == 0
    assert len(erp.vouchers) == 1 and sync_state(db, entry) == ("synced", "ERP-00001")
    with pytest.raises(NotFound), db.unit_of_work() as s:
        outbox.replay(s, 999999)


def test_replay_all_and_unknown_target_dead_letters(db, erp_env, erp, lookup, settings):
    books(db)
    post(db, 2)
    erp.fail_next(REFUSED, REFUSED)
    dispatcher.drain(db, settings, lookup=lookup)
    assert [m.status for m in rows(db)] == ["dead", "dead"]
    with db.unit_of_work() as s:
        assert outbox.replay_all(s, target="fake") == 2
        assert outbox.replay_all(s) == 0
    dispatcher.drain(db, settings, lookup=lookup)
    assert [m.status for m in rows(db)] == ["delivered", "delivered"]
    with db.unit_of_work() as s:
        outbox.enqueue(s, target="nowhere", kind="erp_voucher", document_key="voucher:x",
                       payload={"entry_id": 1, "voucher": rows(db)[0].payload["voucher"]},
                       idempotency_key="nowhere-1")
    dispatcher.drain(db, settings, lookup=lookup)
    assert rows(db)[-1].status == "dead" and "nowhere" in rows(db)[-1].last_error
    with pytest.raises(ValidationError) as err, db.unit_of_work(readonly=True) as s:
        outbox.messages(s, status="lost")
    assert err.value.details["field"] == "status"


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_undo_it(db, erp, lookup, settings):
    with db.unit_of_work() as s:
        outbox.enqueue(s, target="fake", kind="oa_status", document_key="request:1",
                       payload={"message": _status(0)}, idempotency_key="k0")
    now = utcnow()
    [first] = dispatcher.claim(db, settings, now=now)  # this worker "dies" here
    assert dispatcher.claim(db, settings, now=now + timedelta(seconds=10)) == []
    [second] = dispatcher.claim(db, settings, now=now + timedelta(seconds=31))
    assert second.id == first.id and second.attempts == 2 and second.token != first.token
    # the first worker comes back with a failure: it no longer owns the row
    dispatcher.record(db, [dispatcher.Outcome(first, error="late", permanent=True)], settings)
    assert rows(db)[0].status == "in_flight"
    dispatcher.record(db, [dispatcher.call(second, lookup)], settings)
    assert rows(db)[0].status == "delivered"


def test_status_counts_per_target(db, erp_env, erp, lookup, settings):
    books(db)
    post(db, 3)
    erp.fail_next(REFUSED)
    dispatcher.run_once(db, settings, lookup=lookup, limit=2)
    with db.unit_of_work(readonly=True) as s:
        [st, empty] = outbox.target_status(s, ["fake", "kingdee"])
    assert (st.target, st.backlog, st.dead_letters, st.delivered) == ("fake", 1, 1, 1)
    assert st.last_success is not None and st.last_success.tzinfo is not None
    assert (empty.target, empty.backlog, empty.last_success) == ("kingdee", 0, None)


def test_leases_have_one_holder_until_they_expire(db):
    now = utcnow()
    assert leases.acquire(db, "sync", 60, "a", now=now)
    assert not leases.acquire(db, "sync", 60, "b", now=now + timedelta(seconds=30))
    assert leases.acquire(db, "sync", 60, "a", now=now + timedelta(seconds=30))  # renew
    assert leases.acquire(db, "sync", 60, "b", now=now + timedelta(seconds=91))
    leases.release(db, "sync", "a")  # not the holder any more: nothing happens
    assert not leases.acquire(db, "sync", 60, "c", now=now + timedelta(seconds=92))
    with leases.held(db, "other", 60) as mine:
        assert mine
        with leases.held(db, "other", 60) as again:
            assert not again


@pytest.mark.postgres
def test_concurrent_dispatchers_never_claim_the_same_row(pg_db, lookup, settings):
    slow = FakeERP(delay=0.01)

    def find(name):
        return slow

    with pg_db.unit_of_work() as s:
        for i in range(120):
            outbox.enqueue(s, target="fake", kind="oa_status", document_key=f"request:{i % 40}",
                           payload={"message": _status(i)}, idempotency_key=f"k{i:03d}")
    small = DeliverySettings(erp=("fake",), batch=7, lease=60)
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker():
        try:
            while True:
                r = dispatcher.run_once(pg_db, small, lookup=find)
                if not r.attempted:
                    if dispatcher.next_due(pg_db) is None:
                        return
                    continue
                with lock:
                    claimed.extend(r.delivered)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(claimed) == [m.id for m in rows(pg_db)]  # each once, none left out
    assert {m.status for m in rows(pg_db)} == {"delivered"}
    assert len(slow.calls) == 120
    # per document, the OA saw the messages in the order they were written
    seen = [k for k, _ in slow.statuses]
    for doc in range(40):
        keys = [f"k{i:03d}" for i in range(120) if i % 40 == doc]
        assert [k for k in seen if k in keys] == keys


def test_concurrent_calls_within_a_pass_keep_document_order(db, lookup, erp):
    with db.unit_of_work() as s:
        for i in range(12):
            outbox.enqueue(s, target="fake", kind="oa_status", document_key=f"request:{i % 3}",
                           payload={"message": _status(i)}, idempotency_key=f"k{i:02d}")
    parallel = DeliverySettings(erp=("fake",), batch=10, concurrency=4)
    r = dispatcher.run_once(db, parallel, lookup=lookup)
    assert sorted(r.delivered) == [1, 2, 3]  # one per document per pass
    dispatcher.drain(db, parallel, lookup=lookup)
    seen = [k for k, _ in erp.statuses]
    for doc in range(3):
        keys = [f"k{i:02d}" for i in range(12) if i % 3 == doc]
        assert [k for k in seen if k in keys] == keys
    assert len(seen) == 12


def test_a_message_whose_worker_always_dies_is_dead_lettered(db, erp_env, erp, lookup, settings):
    books(db)
    [entry] = post(db)
    now = utcnow()
    for i in range(settings.max_attempts):  # claimed, then the worker is lost each time
        assert len(dispatcher.claim(db, settings, now=now + timedelta(minutes=i))) == 1
    assert dispatcher.claim(db, settings, now=now + timedelta(hours=1)) == []
    [row] = rows(db)
    assert row.status == "dead" and "worker lost during delivery 3 times" in row.last_error
    assert sync_state(db, entry)[0] == "failed"
    assert erp.calls == []
