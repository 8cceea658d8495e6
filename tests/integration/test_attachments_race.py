"""Requests racing with one invoice: exactly one claims it, on PostgreSQL and SQLite.

Each thread attaches the same invoice to its own request at the same moment (a
barrier); the others must get ``duplicate_invoice`` naming the winner's request, and
the database must hold exactly one claim. On PostgreSQL the service's own check sees
nothing committed, so the partial unique index is what decides.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from yinfin_flow.attachments import samples, service
from yinfin_flow.attachments.storage import DirectoryStorage
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.attachments import Attachment
from yinfin_flow.domain.attachments import DuplicateInvoice
from yinfin_flow.engine import service as engine

from .test_engine_support import expense_form, world

THREADS = 8


def test_one_invoice_racing_on_many_requests_is_claimed_once(db: Database, tmp_path: Path) -> None:
    org = world(db)
    with db.unit_of_work() as s:
        requests = [engine.submit(s, "expense", requester="amy", company="ACME", title=f"Taxi {n}",
                                  form=expense_form(org.child_line, "10.00")).id for n in range(THREADS)]
    store = DirectoryStorage(tmp_path)
    barrier = threading.Barrier(THREADS)
    won: list[int] = []
    lost: list[int] = []
    failed: list[BaseException] = []

    def attach(rid: int, n: int) -> None:
        try:
            barrier.wait()
            with db.unit_of_work() as s:
                service.add(s, store, request_id=rid, actor="amy", filename=f"{n}.png",
                            content_type="image/png", data=samples.receipt_png(seed=n),
                            invoice_code="044031900111", invoice_number="00054321")
            won.append(rid)
        except DuplicateInvoice as err:
            lost.append(err.details["request_id"])
        except BaseException as err:  # noqa: BLE001 - reported below
            failed.append(err)

    threads = [threading.Thread(target=attach, args=(rid, n)) for n, rid in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failed == []
    assert len(won) == 1 and len(lost) == THREADS - 1
    assert set(lost) == set(won)  # every refusal names the request that holds it
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Attachment)) == 1
        assert s.scalar(select(Attachment.request_id)) == won[0]
