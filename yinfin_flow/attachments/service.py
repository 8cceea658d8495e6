"""Attach, list and read receipts and invoices; one place for each.

Who may do what (object-level, after the API's gate in
:mod:`yinfin_flow.security.policy`):

- **add**: the request's requester, and :data:`~yinfin_flow.security.policy.ATTACHMENTS_ANY`
  (finance), while the request has not ended rejected, withdrawn or cancelled
  (``409 request_ended``). Anyone else who may see the request gets ``403 forbidden``.
- **list** (metadata): whoever may see the request (:mod:`yinfin_flow.engine.visibility`:
  the requester, anyone with a task on it or holding one by delegation, finance, admins),
  as the request detail lists them.
- **read** the file: the requester, anyone with a task on the request (delegates
  included) and finance; admins do not read receipts.

Anyone else gets ``404`` (an id is not confirmed to exist).

``actor`` is a user id (their roles are read from the directory) or any object with
``id`` and ``roles`` (the API's :class:`~yinfin_flow.api.identity.Identity`, whose roles
are used as they are).

**One claim per invoice.** An invoice (发票代码 + 发票号码) is claimed by the first request
it is attached to; attaching it to any request again is ``409 duplicate_invoice`` naming
the request that holds it. The database decides races: a partial unique index over the
claimed invoices (:class:`~yinfin_flow.db.models.attachments.Attachment`), so of two
requests attaching one invoice at once exactly one succeeds on PostgreSQL (the second
insert waits for the first to commit, then fails) and on SQLite (writers are serialised
by ``BEGIN IMMEDIATE``). When a request ends rejected, withdrawn or cancelled its claims
are released in the same transaction (:mod:`.handlers`); the invoice may then be
reimbursed on another request. An approved, paid or closed request keeps its claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yinfin_flow.db.models.attachments import Attachment
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain import attachments as rules
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.engine import visibility
from yinfin_flow.engine.errors import Forbidden
from yinfin_flow.security.policy import ATTACHMENTS_ANY

from .storage import Storage

#: A request that ends in one of these states frees its invoices.
RELEASING_STATES = frozenset({"rejected", "withdrawn", "cancelled"})


def _who(session: Session, actor: Any) -> tuple[str, frozenset[str]]:
    if isinstance(actor, str):
        from yinfin_flow.engine.directory import roles_of

        return actor, frozenset(g.role for g in roles_of(session, actor))
    return str(actor.id), frozenset(actor.roles)


def _visible(session: Session, user: str, roles: Iterable[str], request_id: int,
             *, lock: bool = False) -> ApprovalRequest:
    stmt = select(ApprovalRequest).where(ApprovalRequest.id == request_id)
    if lock:  # the request row first, as every writer locks (README, "Locking")
        stmt = stmt.with_for_update()
    req = session.scalar(stmt)
    if req is None or not visibility.may_see(session, user, roles, req):
        raise NotFound(f"no request {request_id}", field="request_id")
    return req


def as_dict(a: Attachment) -> dict[str, Any]:
    """An attachment's metadata, JSON-ready (the API's ``AttachmentSchema`` dumped form)."""
    claimed = a.invoice_key is not None
    return {
        "id": a.id, "request_id": a.request_id, "line_ref": a.line_ref, "filename": a.filename,
        "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
        "invoice_code": a.invoice_code, "invoice_number": a.invoice_number,
        "invoice_status": None if not claimed else ("released" if a.invoice_released_at else "claimed"),
        "uploaded_by": a.uploaded_by,
        "created_at": a.created_at.isoformat() if a.created_at else None,
    }


def _line_refs(req: ApprovalRequest) -> list[str]:
    lines = (req.form or {}).get("lines") or []
    return [str(ln.get("ref")) for ln in lines if isinstance(ln, dict) and ln.get("ref") is not None]


def _holder(session: Session, key: str) -> Attachment | None:
    return session.scalar(select(Attachment).where(
        Attachment.invoice_key == key, Attachment.invoice_released_at.is_(None)))


def add(session: Session, storage: Storage, *, request_id: int, actor: Any, filename: str | None,
        content_type: str | None, data: bytes, line_ref: str | None = None,
        invoice_code: str | None = None, invoice_number: str | None = None,
        max_bytes: int | None = None) -> dict[str, Any]:
    """Attach ``data`` to the request (``line_ref``: to one of its lines) and return its
    metadata (:func:`as_dict`).

    ``max_bytes``: the size limit; by default the store's ``max_bytes`` (the configured
    ``YINFIN_ATTACHMENT_MAX_BYTES`` for a store from
    :func:`~yinfin_flow.attachments.storage.storage_from`), else 10 MiB.

    Refuses, before anything is written: a file over the limit (413
    ``attachment_too_large``), empty, not PDF/JPEG/PNG/OFD by content or contradicting its
    declared type (422, ``field: file``), a ``line_ref`` the form has no line for, a
    malformed invoice code or number (422 naming the field); a caller who may not add
    (403/404); a request that ended rejected, withdrawn or cancelled (409
    ``request_ended``); an invoice another request (or this one) already claims (409
    ``duplicate_invoice`` with that ``request_id``).
    """
    limit = max_bytes if max_bytes is not None else getattr(storage, "max_bytes", rules.DEFAULT_MAX_BYTES)
    content_type = rules.check_content(data, content_type, max_bytes=limit)
    invoice = rules.parse_invoice(invoice_code, invoice_number)
    ref = (line_ref or "").strip() or None
    user, roles = _who(session, actor)
    req = _visible(session, user, roles, request_id, lock=True)
    if req.requester != user and not ATTACHMENTS_ANY & roles:
        raise Forbidden("only the requester (or finance) attaches files to a request",
                        request_id=request_id)
    if req.state in RELEASING_STATES:
        raise rules.RequestEnded(f"request {req.id} is {req.state}; nothing can be attached to it",
                                 request_id=req.id, state=req.state)
    if ref is not None and ref not in _line_refs(req):
        raise ValidationError("line_ref", f"request {req.id} has no line {ref[:64]!r}",
                              lines=_line_refs(req))
    if invoice is not None:
        held = _holder(session, invoice.key)
        if held is not None:
            raise rules.DuplicateInvoice(invoice, held.request_id, held.id)
    sha = storage.put(data)  # before the row: a committed row never points at nothing
    row = Attachment(
        request_id=req.id, line_ref=ref, filename=rules.clean_filename(filename, content_type),
        content_type=content_type, size=len(data), sha256=sha,
        invoice_code=invoice.code if invoice else None,
        invoice_number=invoice.number if invoice else None,
        invoice_key=invoice.key if invoice else None, uploaded_by=user, created_at=utcnow(),
    )
    try:
        with session.begin_nested():  # a lost race rolls back to here, not the whole call
            session.add(row)
            session.flush()
    except IntegrityError:
        if invoice is None:
            raise
        held = _holder(session, invoice.key)  # the winner has committed: it is visible now
        if held is None:
            raise
        raise rules.DuplicateInvoice(invoice, held.request_id, held.id) from None
    return as_dict(row)


def summaries(session: Session, request_id: int) -> list[dict[str, Any]]:
    """The request's attachments, oldest first, with no access check (for callers that
    already decided the caller sees the request: the request detail)."""
    rows = session.scalars(select(Attachment).where(Attachment.request_id == request_id)
                           .order_by(Attachment.id))
    return [as_dict(a) for a in rows]


def list_for_request(session: Session, request_id: int, actor: Any) -> list[dict[str, Any]]:
    """The request's attachments (metadata), for whoever may see the request (else 404)."""
    user, roles = _who(session, actor)
    _visible(session, user, roles, request_id)
    return summaries(session, request_id)


def get(session: Session, attachment_id: int, actor: Any) -> dict[str, Any]:
    """One attachment's metadata, for whoever may see its request (else 404)."""
    user, roles = _who(session, actor)
    row = session.get(Attachment, attachment_id)
    if row is None:
        raise NotFound(f"no attachment {attachment_id}", field="attachment_id")
    try:
        _visible(session, user, roles, row.request_id)
    except NotFound:
        raise NotFound(f"no attachment {attachment_id}", field="attachment_id") from None
    return as_dict(row)


def read(session: Session, storage: Storage, attachment_id: int, actor: Any) -> tuple[dict[str, Any], bytes]:
    """The attachment's metadata and bytes, for the requester, anyone with a task on the
    request (delegates included) and finance; 404 for anyone else."""
    user, roles = _who(session, actor)
    row = session.get(Attachment, attachment_id)
    req = session.get(ApprovalRequest, row.request_id) if row is not None else None
    if row is None or req is None or not (req.requester == user or ATTACHMENTS_ANY & roles
                                          or visibility.has_task(session, user, req.id)):
        raise NotFound(f"no attachment {attachment_id}", field="attachment_id")
    return as_dict(row), storage.get(row.sha256)


def release_invoices(session: Session, request_id: int) -> int:
    """Release the invoices the request claims (it ended without being carried out);
    returns how many."""
    result = session.execute(
        update(Attachment)
        .where(Attachment.request_id == request_id, Attachment.invoice_key.is_not(None),
               Attachment.invoice_released_at.is_(None))
        .values(invoice_released_at=utcnow())
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
