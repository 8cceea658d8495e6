"""Exactly once whatever the ERP's speed: dispatchers on PostgreSQL, the real ERPNext
connector, a local ERPNext stub that is slow, fails, or stores and then answers 500.

Every test counts the Journal Entries the stub stored per key and fails on any key
stored twice.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from yinfin_flow.db.types import utcnow
from yinfin_flow.worker import dispatcher
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.messages import voucher_from_json

from .celery_harness import erp_stub
from .erp_faults import FaultyERP, connector, erp_keys, twice
from .helpers import books, post, rows

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


@pytest.fixture
def stub():
    s = erp_stub().start()
    yield s
    s.stop()


@pytest.fixture
def vouchers(pg_db, monkeypatch):
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "erpnext")
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    books(pg_db)

    def make(n: int) -> list[int]:
        return post(pg_db, n)
    return make


def settings(**kw) -> DeliverySettings:
    base = {"erp": ("erpnext",), "lease": timedelta(seconds=14), "batch": 50,
            "backoff": timedelta(seconds=1), "backoff_max": timedelta(minutes=1),
            "max_attempts": 10}
    return DeliverySettings(**{**base, **kw})


def test_the_lease_covers_one_message_of_the_connector(stub) -> None:
    # 3 look-ups (3 tries of 0.6 s, 2 pauses of 1 s) and one insert (0.6 s) = 12 s
    assert connector(stub).message_budget() == pytest.approx(12.0)


def test_a_batch_slower_than_the_lease_is_sent_once_while_another_dispatcher_races(
        pg_db, stub, vouchers) -> None:
    # 80 inserts of 0.2 s: the pass takes 16 s, longer than the 14 s lease. The lease
    # used to be taken once per batch: the second dispatcher took the rest of the
    # batch over and posted it too, while the first was still posting it.
    FaultyERP(stub, insert_delay=0.2)
    vouchers(80)
    erp = connector(stub)
    s = settings(batch=80)
    first_done = threading.Event()
    results: dict[str, list] = {"first": [], "second": []}

    def first() -> None:
        results["first"].append(dispatcher.run_once(pg_db, s, lookup=lambda n: erp))
        first_done.set()

    def second() -> None:
        while not first_done.is_set():
            results["second"].append(dispatcher.run_once(pg_db, s, lookup=lambda n: erp))
            time.sleep(0.2)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    time.sleep(0.5)  # the first has claimed the whole batch
    threads[1].start()
    for t in threads:
        t.join(120)
    assert twice(stub) == {} and len(erp_keys(stub)) == 80
    [one] = results["first"]
    assert len(one.delivered) == 80 and not one.lost
    assert sum(len(r.delivered) for r in results["second"]) == 0  # nothing to take over
    assert all(r.status == "delivered" and r.attempts == 1 for r in rows(pg_db))


def test_two_dispatchers_racing_on_a_batch_send_each_voucher_once(pg_db, stub, vouchers) -> None:
    FaultyERP(stub, insert_delay=0.01)
    vouchers(120)
    erp = connector(stub)
    s = settings(batch=20, concurrency=4)
    done: dict[str, int] = {}

    def run(name: str) -> None:
        done[name] = len(dispatcher.drain(pg_db, s, lookup=lambda n: erp).delivered)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert done["a"] + done["b"] == 120 and done["a"] and done["b"]  # they raced
    assert twice(stub) == {} and len(erp_keys(stub)) == 120
    names = [r.external_id for r in rows(pg_db)]
    assert len(set(names)) == 120


def test_a_taken_over_message_is_looked_up_again_before_its_insert(pg_db, stub, vouchers) -> None:
    # A dispatcher stalled past its lease (not crashed): another takes the message over.
    # The first posted it meanwhile; the second's batch look-up would say "not there",
    # so a message tried before is looked up again, on its own, right before the insert.
    vouchers(3)
    erp = connector(stub)
    s = settings()
    stale = dispatcher.claim(pg_db, s)
    batch_look_up = stub.get

    def look_up_then_the_stalled_insert_lands(req):
        out = batch_look_up(req)
        if "or_filters" in req.query and not erp_keys(stub):
            # the stalled dispatcher's insert of the last voucher lands right after
            # the takeover's batch look-up answered "not there"
            c = stale[2]
            connector(stub).post_voucher(voucher_from_json(c.payload["voucher"]),
                                         c.idempotency_key)
        return out

    stub.routes[("GET", "/api/resource/*")] = look_up_then_the_stalled_insert_lands
    later = utcnow() + timedelta(minutes=5)
    r = dispatcher.run_once(pg_db, s, lookup=lambda n: erp, now=later)
    assert len(r.delivered) == 3
    assert twice(stub) == {} and len(erp_keys(stub)) == 3
    # and the stalled dispatcher's outcome cannot undo the takeover's delivery
    late = dispatcher.record(pg_db, [dispatcher.Outcome(stale[1], error="late")], s)
    assert late.retried == [] and all(x.status == "delivered" for x in rows(pg_db))


def test_a_stalled_dispatcher_does_not_call_for_messages_taken_over(pg_db, stub, vouchers) -> None:
    from yinfin_flow.worker.hold import Hold

    vouchers(2)
    erp = connector(stub)
    s = settings()
    mine = dispatcher.claim(pg_db, s)
    # our lease ran out (we stalled) and another dispatcher took both over
    theirs = dispatcher.claim(pg_db, s, now=utcnow() + timedelta(minutes=5))
    assert [c.id for c in theirs] == [c.id for c in mine]
    hold = Hold(pg_db, s, mine, budget=lambda t: erp.message_budget(),
                now=utcnow() + timedelta(minutes=1))
    assert not hold.before_call(mine[0]) and not hold.before_call(mine[1])
    assert hold.finish().lost == [c.id for c in mine]
    assert all(r.claim_token == theirs[0].token for r in rows(pg_db))  # untouched
    assert erp_keys(stub) == {}


def test_a_pass_over_its_time_limit_gives_the_rest_back_untried(pg_db, stub, vouchers) -> None:
    FaultyERP(stub, insert_delay=0.3)
    vouchers(20)
    erp = connector(stub)
    s = settings(batch=20, pass_limit=timedelta(seconds=1))
    started = time.monotonic()
    r = dispatcher.run_once(pg_db, s, lookup=lambda n: erp)
    assert time.monotonic() - started < 5  # not 20 × 0.3 s
    assert r.delivered and r.given_back and len(r.delivered) + len(r.given_back) == 20
    back = {m.id: m for m in rows(pg_db) if m.id in r.given_back}
    assert all(m.status == "pending" and m.attempts == 0 and m.claim_token is None
               and m.next_attempt_at <= utcnow() for m in back.values())
    total = dispatcher.drain(pg_db, settings(batch=20), lookup=lambda n: erp)
    assert len(total.delivered) == len(back)
    assert twice(stub) == {} and len(erp_keys(stub)) == 20


def test_flaky_erp_dead_fraction_stays_near_zero_in_ten_attempts(pg_db, stub, vouchers) -> None:
    # 30 % of calls fail (half of the failed inserts store the voucher first), 10 %
    # answer 429 + Retry-After. A message on its own needs up to three calls that must
    # all succeed (key look-up, account look-up, insert); with every failed look-up
    # costing a whole attempt, 9 % went dead in 10 tries. Retries come due one by one
    # (their backoff is jittered), so six dispatchers take one message per pass.
    erp_faults = FaultyERP(stub, fail=0.30, throttle=0.10, seed=20261207)
    n = 100
    vouchers(n)
    erp = connector(stub)
    s = settings(batch=1, max_attempts=10)

    def until_nothing_due(at) -> None:
        while dispatcher.run_once(pg_db, s, lookup=lambda name: erp, now=at).attempted:
            pass

    at = utcnow()
    for _ in range(30):
        threads = [threading.Thread(target=until_nothing_due, args=(at,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if all(m.status in ("delivered", "dead") for m in rows(pg_db)):
            break
        at += timedelta(minutes=10)  # every backoff (at most a minute) has run out
    final = rows(pg_db)
    dead = [m for m in final if m.status == "dead"]
    assert all(m.status in ("delivered", "dead") for m in final)
    assert twice(stub) == {}
    fraction = len(dead) / n
    print(f"flaky ERP: {len(dead)} of {n} dead ({fraction:.1%}) after at most 10 attempts; "
          f"faults {dict(erp_faults.faults)}; attempts {sum(m.attempts for m in final)}")
    assert erp_faults.faults["insert 500 after storing"] > 5  # the nasty case did happen
    assert fraction <= 0.01, [m.last_error for m in dead]
    delivered = {m.idempotency_key for m in final if m.status == "delivered"}
    assert set(erp_keys(stub)) >= delivered
