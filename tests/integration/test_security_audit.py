"""The audit log's chains: appends that do not wait on each other, and tampering found
in any chain (the HTTP side is in tests/e2e/test_api_security.py)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.security import AuditHead, AuditLog
from yinfin_flow.security import audit
from yinfin_flow.security.audit import SPAN, AuditEvent, chain_of


def _event(n: int) -> AuditEvent:
    return AuditEvent("POST", f"/x/{n}", 200, actor=f"u{n}")


def test_the_split_form_hashes_like_the_canonical_json():
    at = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)
    tricky = {"actor": '审批人 "x"\\', "method": "POST", "path": '/a"id":0', "endpoint": None,
              "status": 201, "remote_addr": "::1", "user_agent": "ua\n\u2028", "idempotency_key": None,
              "detail": '{"id":1}'}
    trickier = {**tricky, "actor": '","id":0,"', "detail": '"id":0', "user_agent": "\\\"id\\\":0"}
    for values in (tricky, trickier):
        for row_id in (1, 42, SPAN + 7):
            before, after = audit.split_canonical(at, values)
            assert before + str(row_id).encode() + after == audit._canonical(audit._content(row_id, at, values))


def test_concurrent_appends_never_fork_a_chain_on_postgres(pg_db: Database):
    def worker(n: int) -> None:
        for i in range(5):
            with pg_db.unit_of_work() as s:
                audit.append(s, _event(n * 10 + i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pg_db.unit_of_work(readonly=True) as s:
        ids = list(s.scalars(select(AuditLog.id)))
        assert len(ids) == 30 and audit.check_chain(s) == []
        # every chain is contiguous from its first id (check_chain checks the links)
        for chain in {chain_of(i) for i in ids}:
            mine = sorted(i for i in ids if chain_of(i) == chain)
            assert mine == list(range((chain - 1) * SPAN + 1, (chain - 1) * SPAN + 1 + len(mine)))


def test_an_append_does_not_wait_for_an_uncommitted_one_on_postgres(pg_db: Database):
    with pg_db.unit_of_work() as s:
        audit.append(s, _event(0))  # the heads exist from here on
    held = pg_db.session()
    held.begin()
    first = audit.append(held, _event(1))  # its head stays locked until commit
    done: list[int] = []

    def other() -> None:
        with pg_db.unit_of_work() as s:
            done.append(audit.append(s, _event(2)))

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=10)
    try:
        assert done, "the second append waited for the first transaction"
        assert chain_of(done[0]) != chain_of(first)
    finally:
        held.commit()
        held.close()
    with pg_db.unit_of_work(readonly=True) as s:
        assert audit.check_chain(s) == []


def test_with_every_head_taken_an_append_waits_its_turn_on_postgres(pg_db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(audit, "CHAINS", 1)  # one head: the second append finds none free
    _append_committed(pg_db, _event(0))  # the head exists (committed)
    held = pg_db.session()
    held.begin()
    first = audit.append(held, _event(1))
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(_append_committed(pg_db, _event(2))))
    t.start()
    t.join(timeout=1)
    assert t.is_alive() and not done  # it waits for the head, it does not fork the chain
    held.commit()
    held.close()
    t.join(timeout=10)
    assert done == [first + 1]
    with pg_db.unit_of_work(readonly=True) as s:
        assert audit.check_chain(s) == []


def _append_committed(db: Database, event: AuditEvent) -> int:
    with db.unit_of_work() as s:
        return audit.append(s, event)


def _two_chains(db: Database) -> tuple[int, int]:
    """One row on one chain and three on another; returns (the lone row, the other chain).

    The heads are made first, and the row that made them removed again (a first
    append that finds no head free makes them in its own transaction, so others wait
    for it once)."""
    with db.unit_of_work() as s:
        audit.append(s, _event(0))
    _behind_the_trigger(db, "DELETE FROM audit_log")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE audit_head SET last_id = (id - 1) * {SPAN}, "
                             f"last_hash = '{audit.GENESIS}'")
    held = db.session()
    held.begin()
    lone = audit.append(held, _event(1))
    others = []
    for n in range(3):
        with db.unit_of_work() as s:
            others.append(audit.append(s, _event(10 + n)))
    held.commit()
    held.close()
    assert {chain_of(i) for i in others} == {chain_of(others[0])} != {chain_of(lone)}
    return lone, chain_of(others[0])


def _behind_the_trigger(db: Database, sql: str) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.exec_driver_sql(sql)
        conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER USER")


def _problems(db: Database) -> list[str]:
    with db.unit_of_work(readonly=True) as s:
        return [p.subject for p in audit.check_chain(s)]


def test_an_edit_in_any_chain_is_found_on_postgres(pg_db: Database):
    _lone, chain = _two_chains(pg_db)
    base = (chain - 1) * SPAN
    assert _problems(pg_db) == []
    with pytest.raises(Exception, match="append-only"), pg_db.unit_of_work() as s:
        s.execute(text(f"UPDATE audit_log SET status = 201 WHERE id = {base + 2}"))
    _behind_the_trigger(pg_db, f"UPDATE audit_log SET status = 201 WHERE id = {base + 2}")
    assert _problems(pg_db) == [f"audit row {base + 2}"]


def test_a_removed_row_in_any_chain_is_found_on_postgres(pg_db: Database):
    lone, chain = _two_chains(pg_db)
    base = (chain - 1) * SPAN
    _behind_the_trigger(pg_db, f"DELETE FROM audit_log WHERE id = {base + 2}")  # from the middle
    assert _problems(pg_db) == [f"audit row {base + 3}"]
    _behind_the_trigger(pg_db, f"DELETE FROM audit_log WHERE id = {lone}")  # a chain's only row
    assert f"audit head {chain_of(lone)}" in _problems(pg_db)


def test_a_removed_last_row_or_a_forged_chain_is_found_on_postgres(pg_db: Database):
    _lone, chain = _two_chains(pg_db)
    base = (chain - 1) * SPAN
    _behind_the_trigger(pg_db, f"DELETE FROM audit_log WHERE id = {base + 3}")
    assert _problems(pg_db) == [f"audit head {chain}"]
    # a whole chain slipped in, hashes and all, but with no head naming it
    stranger = 40 * SPAN + 1
    content = audit._content(stranger, datetime(2026, 1, 1, tzinfo=UTC), {"method": "POST", "path": "/x",
                                                                         "status": 200})
    digest = audit.row_hash(audit.GENESIS, content)
    with pg_db.unit_of_work() as s:
        s.execute(text("INSERT INTO audit_log (id, at, method, path, status, prev_hash, hash) "
                       "VALUES (:id, '2026-01-01T00:00:00+00:00', 'POST', '/x', 200, :prev, :hash)"),
                  {"id": stranger, "prev": audit.GENESIS, "hash": digest})
    assert _problems(pg_db) == [f"audit head {chain}", "audit head 41"]


def test_sqlite_appends_to_the_first_chain(sqlite_db: Database):
    with sqlite_db.unit_of_work() as s:
        ids = [audit.append(s, _event(n)) for n in range(3)]
    assert ids == [1, 2, 3]
    with sqlite_db.unit_of_work(readonly=True) as s:
        row = s.get(AuditLog, 2)
        assert row is not None
        content = audit._content(2, row.at, {k: getattr(row, k) for k in audit.FIELDS[2:]})
        assert row.hash == hashlib.sha256(row.prev_hash.encode() + audit._canonical(content)).hexdigest()
        assert s.scalar(select(func.count()).select_from(AuditHead)) == 1
        assert audit.check_chain(s) == []


def test_an_append_alone_commits_by_itself(db: Database, monkeypatch: pytest.MonkeyPatch):
    # What a refused or replayed call writes: no transaction of the caller's.
    first = audit.append_alone(db, _event(1))
    second = audit.append_alone(db, _event(2))
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 2
        assert audit.check_chain(s) == []
    assert chain_of(first) == chain_of(second) and second == first + 1
    if db.dialect != "postgresql":
        return
    # every head busy: it waits for one, then appends (no fork)
    monkeypatch.setattr(audit, "CHAINS", 1)
    held = db.session()
    held.begin()
    audit.append(held, _event(3))
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(audit.append_alone(db, _event(4))))
    t.start()
    t.join(timeout=1)
    assert t.is_alive()
    held.commit()
    held.close()
    t.join(timeout=10)
    assert len(done) == 1
    with db.unit_of_work(readonly=True) as s:
        assert audit.check_chain(s) == []
