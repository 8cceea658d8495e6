"""Retention on both backends: delivered outbox messages and seen OA event ids past
their age go, in batches; nothing still owed goes; ordering, exactly-once delivery,
reconciliation and replay protection hold after a purge."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from yinfin_flow.cli import main as cli
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.db.models.security import InboundSeen
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.worker import dispatcher, jobs, leases, outbox, reconcile, retention
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.runner import Runner

from .conftest import RETRY
from .helpers import books, post, rows
from .test_outbox import _status

DAY = timedelta(days=1)


def queue(db, n: int, document: str = "request:1", target: str = "fake", start: int = 0) -> list[int]:
    with db.unit_of_work() as s:
        made = [outbox.enqueue(s, target=target, kind="oa_status", document_key=document,
                               payload={"message": _status(i)}, idempotency_key=f"{document}-k{i}")
                for i in range(start, start + n)]
        s.flush()
        return [m.id for m in made]


def set_rows(db, ids, **values) -> None:
    """Test set-up: put rows in a given state and age (what months of traffic would leave)."""
    with db.unit_of_work() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(**values))


def statuses(db) -> dict[int, str]:
    return {m.id: m.status for m in rows(db)}


def test_old_delivered_messages_go_and_nothing_still_owed_does(db):
    now = utcnow()
    old = now - 31 * DAY
    delivered_old = queue(db, 5, "request:1")
    recent, pending, in_flight, dead = queue(db, 4, "request:2")
    [only_other] = queue(db, 1, "request:3", target="other")
    set_rows(db, delivered_old + [only_other], status="delivered", delivered_at=old, created_at=old)
    set_rows(db, [recent], status="delivered", delivered_at=now - 29 * DAY, created_at=old)
    set_rows(db, [pending], created_at=now - 400 * DAY, next_attempt_at=now + DAY)
    set_rows(db, [in_flight], status="in_flight", created_at=now - 400 * DAY)
    set_rows(db, [dead], status="dead", created_at=now - 400 * DAY, updated_at=now - 400 * DAY,
             last_error="refused")
    dry = retention.purge(db, DeliverySettings(), now=now, dry_run=True)
    assert (dry.outbox, dry.dry_run) == (5, True) and len(statuses(db)) == 10
    done = retention.purge(db, DeliverySettings(), now=now, batch=2)  # three batches
    assert done.outbox == 5
    # the newest delivered message of a target stays: its time is the "last success"
    assert sorted(statuses(db)) == sorted([recent, pending, in_flight, dead, only_other])
    assert statuses(db)[dead] == "dead" and statuses(db)[in_flight] == "in_flight"
    with db.unit_of_work(readonly=True) as s:
        [other] = [t for t in outbox.target_status(s) if t.target == "other"]
        assert other.last_success is not None and other.delivered == 1
    assert retention.purge(db, DeliverySettings(), now=now).outbox == 0
    # a purged message cannot be replayed, and the error says why it is gone
    with pytest.raises(NotFound, match="purged"), db.unit_of_work() as s:
        outbox.replay(s, delivered_old[0])


def test_the_next_message_of_a_purged_documents_delivers_in_order(db, erp, lookup, settings):
    queue(db, 4, "request:1")
    assert len(dispatcher.run_once(db, settings, lookup=lookup).delivered) == 1  # k0
    later = utcnow() + 31 * DAY
    assert retention.purge(db, settings, now=later).outbox == 0  # k0 is the newest delivered
    dispatcher.run_once(db, settings, lookup=lookup)                # k1
    assert retention.purge(db, settings, now=later).outbox == 1    # k0 goes, k1 stays
    erp.fail_next(RETRY)
    assert len(dispatcher.run_once(db, settings, lookup=lookup).retried) == 1  # k2 waits for a retry
    # k3 must not overtake k2, although the earlier k0 and k1 are gone or delivered
    assert dispatcher.run_once(db, settings, lookup=lookup).attempted == 0
    assert retention.purge(db, settings, now=later).outbox == 0    # k1, the newest delivered, stays
    assert dispatcher.run_once(db, settings, lookup=lookup).attempted == 0
    for _ in range(3):
        dispatcher.run_once(db, settings, lookup=lookup, now=utcnow() + timedelta(hours=2))
    assert [k for k, _ in erp.statuses] == [f"request:1-k{i}" for i in range(4)]  # once each, in order


def test_a_late_worker_whose_delivered_row_was_purged_records_nothing(db, erp, lookup, settings):
    [mid] = queue(db, 1)
    slow = dispatcher.claim(db, settings)                     # worker A claims, then stalls
    takeover = utcnow() + settings.lease + timedelta(seconds=1)
    fast = dispatcher.claim(db, settings, now=takeover)       # its lease ran out: worker B
    dispatcher.record(db, [dispatcher.call(fast[0], lookup)], settings)
    queue(db, 1, "request:9")                                 # a newer delivered message to keep
    dispatcher.drain(db, settings, lookup=lookup)
    assert retention.purge(db, settings, now=utcnow() + 31 * DAY).outbox == 1
    late = dispatcher.record(db, [dispatcher.call(slow[0], lookup)], settings)
    assert late.attempted == 0 and mid not in statuses(db)
    assert dispatcher.drain(db, settings, lookup=lookup).attempted == 0
    assert len(erp.calls) == 3  # B's call, A's late call (the key makes it no second voucher), request:9


def test_seen_event_ids_past_their_retention_go(db):
    now = utcnow()
    with db.unit_of_work() as s:
        s.add_all([InboundSeen(id="weaver:old", created_at=now - 8 * DAY),
                   InboundSeen(id="weaver:edge", created_at=now - timedelta(minutes=9)),
                   InboundSeen(id="weaver:new", created_at=now)])
    short = DeliverySettings(inbound_seen_retention=timedelta(minutes=10))
    assert retention.purge(db, DeliverySettings(), now=now).inbound_seen == 1
    assert retention.purge(db, short, now=now).inbound_seen == 0
    with db.unit_of_work(readonly=True) as s:
        assert sorted(s.scalars(select(InboundSeen.id))) == ["weaver:edge", "weaver:new"]


def test_retention_settings_default_and_bad_values_name_their_variable():
    s = DeliverySettings.from_env({})
    assert (s.outbox_retention, s.inbound_seen_retention) == (30 * DAY, 7 * DAY)
    s = DeliverySettings.from_env({"YINFIN_OUTBOX_RETENTION": "86400",
                                   "YINFIN_INBOUND_SEEN_RETENTION": "600"})
    assert (s.outbox_retention, s.inbound_seen_retention) == (DAY, timedelta(minutes=10))
    for name, raw in [("YINFIN_OUTBOX_RETENTION", "30d"), ("YINFIN_OUTBOX_RETENTION", "-1"),
                      ("YINFIN_INBOUND_SEEN_RETENTION", "nan"),
                      ("YINFIN_INBOUND_SEEN_RETENTION", "300")]:  # under twice the replay window
        with pytest.raises(ValidationError) as err:
            DeliverySettings.from_env({name: raw})
        assert err.value.details["field"] == name and name in err.value.message, (name, raw)


def test_the_cli_prints_counts_and_a_dry_run_deletes_nothing(sqlite_db, monkeypatch):
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    old = utcnow() - 40 * DAY
    ids = queue(sqlite_db, 3) + queue(sqlite_db, 1, "request:2")
    set_rows(sqlite_db, ids, status="delivered", delivered_at=old)
    with sqlite_db.unit_of_work() as s:
        s.add(InboundSeen(id="weaver:e1", created_at=old))
    run = CliRunner().invoke
    out = run(cli, ["outbox", "purge", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "would delete 3 delivered outbox message(s) older than 30 day(s)" in out.output
    assert "1 seen OA event id(s) older than 7 day(s)" in out.output and len(rows(sqlite_db)) == 4
    out = run(cli, ["outbox", "purge"])
    assert out.exit_code == 0 and "deleted 3 delivered outbox message(s)" in out.output
    assert [m.id for m in rows(sqlite_db)] == [ids[-1]]
    monkeypatch.setenv("YINFIN_OUTBOX_RETENTION", "a month")
    out = run(cli, ["outbox", "purge"])
    assert out.exit_code == 1 and "YINFIN_OUTBOX_RETENTION" in out.output


def test_the_periodic_job_runs_once_under_its_lease_and_is_scheduled(sqlite_db):
    from yinfin_flow.worker import celery_app

    ids = queue(sqlite_db, 2)
    set_rows(sqlite_db, ids, status="delivered", delivered_at=utcnow() - 40 * DAY)
    assert leases.acquire(sqlite_db, "retention-purge", 60, "another-beat")
    assert jobs.purge(sqlite_db, DeliverySettings()) == {"skipped": "another purge is running"}
    assert len(rows(sqlite_db)) == 2
    leases.release(sqlite_db, "retention-purge", "another-beat")
    assert jobs.purge(sqlite_db, DeliverySettings()) == {"outbox": 1, "inbound_seen": 0, "dry_run": False}
    entry = celery_app.app.conf.beat_schedule["retention-purge"]
    assert entry["task"] == "yinfin.purge" and entry["task"] in celery_app.app.tasks


def test_the_in_process_runner_purges_on_its_schedule(sqlite_db, lookup):
    ids = queue(sqlite_db, 2)
    set_rows(sqlite_db, ids, status="delivered", delivered_at=utcnow() - 40 * DAY)
    runner = Runner(sqlite_db, DeliverySettings(), lookup=lookup, poll=0.05,
                    schedule={"timers": 3600.0, "purge": 3600.0}).start()
    try:
        deadline = time.monotonic() + 10
        while len(rows(sqlite_db)) == 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert [m.id for m in rows(sqlite_db)] == [ids[1]]


def test_reconciliation_still_compares_vouchers_whose_messages_were_purged(sqlite_db, monkeypatch, tmp_path):
    drop = tmp_path / "drop"
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "file")
    monkeypatch.setenv("YINFIN_FILE_DIR", str(drop))
    monkeypatch.setenv("YINFIN_FILE_FORMATS", "csv")
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    books(sqlite_db)
    ids = post(sqlite_db, 3)
    dispatcher.drain(sqlite_db)
    files = {m.payload["entry_id"]: m.external_id for m in rows(sqlite_db)}
    assert retention.purge(sqlite_db, now=utcnow() + 31 * DAY).outbox == 2
    assert len(rows(sqlite_db)) == 1
    report = reconcile.reconcile(sqlite_db, "2026-01", "file")
    assert (report.checked, report.matched, report.differences) == (3, 3, [])
    (drop / f"{files[ids[0]]}.csv").unlink()  # the ERP loses a voucher whose message is gone
    report = reconcile.reconcile(sqlite_db, "2026-01", "file")
    assert [(d.entry_id, d.problem) for d in report.differences] == [(ids[0], "missing")]


def test_serve_refuses_to_start_with_a_bad_retention_naming_it(sqlite_db, monkeypatch):
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    monkeypatch.delenv("YINFIN_REDIS_URL", raising=False)
    monkeypatch.setenv("YINFIN_INBOUND_SEEN_RETENTION", "60")
    out = CliRunner().invoke(cli, ["serve", "--port", "5999"])
    assert out.exit_code == 1
    assert "YINFIN_INBOUND_SEEN_RETENTION: must be at least 600 seconds" in out.output
