"""Attachments on both databases: who may add and read, one claim per invoice across
requests, ended requests releasing their invoices, the request detail listing them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from yinfin_flow.api.identity import Identity
from yinfin_flow.attachments import samples, service
from yinfin_flow.attachments import verify as attachments_verify
from yinfin_flow.attachments.storage import DirectoryStorage
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.attachments import Attachment
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.attachments import DuplicateInvoice, RequestEnded
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.engine import directory, queries
from yinfin_flow.engine import service as engine
from yinfin_flow.engine.errors import Forbidden
from yinfin_flow.verify import verify

from .test_engine_support import expense_form, pending, world

PNG = samples.receipt_png()
CODE, NUMBER = "044031900111", "00012345"


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStorage:
    return DirectoryStorage(tmp_path / "files")


def submit(db: Database, org, requester: str = "amy", amount: str = "50.00") -> int:
    with db.unit_of_work() as s:
        return engine.submit(s, "expense", requester=requester, company="ACME", title="Taxi",
                             form=expense_form(org.child_line, amount)).id


def add(db: Database, store, request_id: int, actor, data: bytes = PNG, **kw) -> dict:
    with db.unit_of_work() as s:
        return service.add(s, store, request_id=request_id, actor=actor, filename=kw.pop("filename", "r.png"),
                           content_type=kw.pop("content_type", "image/png"), data=data, **kw)


def test_the_requester_attaches_and_the_request_shows_it(db: Database, store) -> None:
    org = world(db)
    rid = submit(db, org)
    got = add(db, store, rid, "amy", filename="../发票.png", line_ref="1",
              invoice_code=CODE, invoice_number=NUMBER)
    assert got["filename"] == "发票.png" and got["line_ref"] == "1"
    assert (got["content_type"], got["size"], got["uploaded_by"]) == ("image/png", len(PNG), "amy")
    assert (got["invoice_code"], got["invoice_number"], got["invoice_status"]) == (CODE, NUMBER, "claimed")
    with db.unit_of_work(readonly=True) as s:
        assert service.list_for_request(s, rid, "amy") == [got]
        assert queries.get_request(s, rid)["attachments"] == [got]
        meta, data = service.read(s, store, got["id"], "amy")
    assert meta == got and data == PNG


def test_the_same_bytes_are_stored_once(db: Database, store) -> None:
    org = world(db)
    a, b = submit(db, org), submit(db, org, requester="bob")
    first, second = add(db, store, a, "amy"), add(db, store, b, "bob")
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    assert len([p for p in store.root.rglob("*") if p.is_file()]) == 1


def test_who_may_add_list_and_read(db: Database, store) -> None:
    org = world(db)
    rid = submit(db, org)
    [(_task, _, approver)] = pending(db, rid)
    assert approver == "wang"
    got = add(db, store, rid, "amy")
    with pytest.raises(Forbidden):  # the approver sees the request but does not add to it
        add(db, store, rid, "wang")
    with pytest.raises(NotFound):  # a stranger learns nothing
        add(db, store, rid, "pat")
    add(db, store, rid, "fay", data=samples.receipt_pdf(["finance copy"]), content_type="application/pdf")
    admin = Identity("admin", frozenset({"admin"}))
    with db.unit_of_work(readonly=True) as s:
        assert len(service.list_for_request(s, rid, "wang")) == 2
        assert service.read(s, store, got["id"], "wang")[1] == PNG
        assert service.read(s, store, got["id"], "fay")[1] == PNG
        assert service.read(s, store, got["id"], Identity("cfo", frozenset({"finance"})))[1] == PNG
        assert len(service.list_for_request(s, rid, admin)) == 2  # the list the request shows
        with pytest.raises(NotFound):
            service.read(s, store, got["id"], admin)  # … but not the files
        for who in ("pat", "bob"):
            with pytest.raises(NotFound):
                service.list_for_request(s, rid, who)
            with pytest.raises(NotFound):
                service.read(s, store, got["id"], who)
            with pytest.raises(NotFound):
                service.get(s, got["id"], who)
    today = utcnow().date()
    with db.unit_of_work() as s:  # wang's deputy reads what wang reads
        directory.delegate(s, "wang", "pat", today - timedelta(days=1), today + timedelta(days=1), actor="wang")
    with db.unit_of_work(readonly=True) as s:
        assert service.read(s, store, got["id"], "pat")[1] == PNG
        with pytest.raises(NotFound):
            service.read(s, store, 999_999, "amy")


def test_bad_input_writes_nothing(db: Database, store) -> None:
    from yinfin_flow.domain.attachments import AttachmentTooLarge

    org = world(db)
    rid = submit(db, org)
    small = DirectoryStorage(store.root, max_bytes=len(PNG) - 1)  # the store's configured limit
    with pytest.raises(AttachmentTooLarge), db.unit_of_work() as s:
        service.add(s, small, request_id=rid, actor="amy", filename="r.png", content_type="image/png", data=PNG)
    with pytest.raises(ValidationError, match="line_ref"):
        add(db, store, rid, "amy", line_ref="9")
    with pytest.raises(ValidationError, match="invoice_code"):
        add(db, store, rid, "amy", invoice_number=NUMBER)
    with pytest.raises(ValidationError, match="file"):
        add(db, store, rid, "amy", data=b"<html></html>", content_type="text/html")
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(Attachment)) is None
    assert not store.root.exists()


def test_an_invoice_is_reimbursed_once_across_requests(db: Database, store) -> None:
    org = world(db)
    a, b = submit(db, org), submit(db, org, requester="bob")
    first = add(db, store, a, "amy", invoice_code=CODE, invoice_number=NUMBER)
    with pytest.raises(DuplicateInvoice) as err:
        add(db, store, b, "bob", data=samples.receipt_png(seed=2), invoice_code=CODE, invoice_number=NUMBER)
    assert err.value.http_status == 409
    assert err.value.details["request_id"] == a and err.value.details["attachment_id"] == first["id"]
    assert f"already on request {a}" in err.value.message
    with pytest.raises(DuplicateInvoice):  # nor twice on the same request
        add(db, store, a, "amy", invoice_code=CODE, invoice_number=NUMBER)
    # the same number under another code is another invoice; a 全电 number is its own
    add(db, store, b, "bob", invoice_code="1100182130", invoice_number=NUMBER)
    add(db, store, b, "bob", invoice_number="24442000000000012345")
    with pytest.raises(DuplicateInvoice):
        add(db, store, a, "amy", invoice_number="2444 2000 0000 0001 2345")


@pytest.mark.parametrize("ending", ["reject", "withdraw"])
def test_a_request_that_ends_releases_its_invoices(db: Database, store, ending: str) -> None:
    org = world(db)
    a, b = submit(db, org), submit(db, org, requester="bob")
    add(db, store, a, "amy", invoice_code=CODE, invoice_number=NUMBER)
    with db.unit_of_work() as s:
        if ending == "reject":
            [(task, _, who)] = pending(db, a)
            engine.act(s, task, who, "reject", comment="wrong trip")
        else:
            engine.withdraw(s, a, "amy")
    with db.unit_of_work(readonly=True) as s:
        [held] = service.list_for_request(s, a, "amy")
    assert held["invoice_status"] == "released"
    again = add(db, store, b, "bob", invoice_code=CODE, invoice_number=NUMBER)
    assert again["invoice_status"] == "claimed"
    with pytest.raises(RequestEnded):  # nothing more on an ended request
        add(db, store, a, "amy")
    with db.unit_of_work(readonly=True) as s:
        assert attachments_verify.ended_requests_claim_no_invoice(s) == []
    with db.unit_of_work() as s:  # a claim written back behind the service's back is reported
        s.execute(update(Attachment).where(Attachment.request_id == a).values(
            invoice_released_at=None, invoice_key="x:1"))
    with db.unit_of_work(readonly=True) as s:
        [problem] = verify(s)
    assert problem.check == "ended_requests_claim_no_invoice" and f"request {a}" in problem.subject


def test_an_approved_request_keeps_its_invoice(db: Database, store) -> None:
    org = world(db)
    a, b = submit(db, org), submit(db, org, requester="bob")
    add(db, store, a, "amy", invoice_code=CODE, invoice_number=NUMBER)
    for _ in range(2):  # manager, then finance
        task, _, who = pending(db, a)[0]
        with db.unit_of_work() as s:
            engine.act(s, task, who, "approve")
    with db.unit_of_work(readonly=True) as s:
        assert queries.get_request(s, a)["state"] == "approved"
    with pytest.raises(DuplicateInvoice):
        add(db, store, b, "bob", invoice_code=CODE, invoice_number=NUMBER)
    add(db, store, a, "amy", data=samples.receipt_pdf(["payment slip"]), content_type="application/pdf")


def test_the_database_refuses_a_second_claim_written_behind_the_service(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    org = world(db)
    a, b = submit(db, org), submit(db, org, requester="bob")

    def row(rid: int, released=None) -> Attachment:
        return Attachment(request_id=rid, filename="x.png", content_type="image/png", size=1, sha256="0" * 64,
                          invoice_code=CODE, invoice_number=NUMBER, invoice_key=f"{CODE}:{NUMBER}",
                          invoice_released_at=released, uploaded_by="t", created_at=utcnow())

    with db.unit_of_work() as s:
        s.add_all([row(a, released=utcnow()), row(b)])  # a released claim does not count
    with pytest.raises(IntegrityError), db.unit_of_work() as s:
        s.add(row(a))


def test_the_demo_attaches_receipts_and_invoices(sqlite_db: Database, store) -> None:
    from yinfin_flow.demo import loaders

    with sqlite_db.unit_of_work() as s:
        for name, load in loaders():
            if name == "attachments":
                load(s, storage=store)
            else:
                load(s)
    with sqlite_db.unit_of_work(readonly=True) as s:
        rows = list(s.scalars(select(Attachment)))
        assert verify(s) == []
        assert {r.content_type for r in rows} == {"image/png", "application/pdf"}
        assert any(r.invoice_code for r in rows) and any(r.invoice_number and not r.invoice_code for r in rows)
        assert any(r.invoice_number is None for r in rows)
        for r in rows:
            assert store.get(r.sha256)  # every file is there and intact
