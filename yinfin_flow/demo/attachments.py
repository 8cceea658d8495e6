"""Demo attachments: receipts (a small PNG or PDF made in code) on the demo's expense
and procurement requests, most of them invoices with 发票代码 / 发票号码.

Runs after the requests loader. The files go to the configured attachment storage
(``YINFIN_ATTACHMENTS_DIR``, else ``instance/attachments``); content addressing makes a
second load store nothing new.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.attachments import samples, service
from yinfin_flow.attachments.storage import Storage, storage_from
from yinfin_flow.config import Settings
from yinfin_flow.db.models.engine import ApprovalRequest

#: 12-digit code of an electronic ordinary invoice (增值税电子普通发票), Shenzhen
INVOICE_CODE = "044031900111"


def load(session: Session, storage: Storage | None = None) -> None:
    """Attach receipts in ``session`` (the caller commits)."""
    storage = storage or storage_from(Settings.from_env())
    requests = session.scalars(
        select(ApprovalRequest).where(ApprovalRequest.workflow.in_(("expense", "procurement")),
                                      ApprovalRequest.state.not_in(service.RELEASING_STATES),
                                      ApprovalRequest.state != "draft")
        .order_by(ApprovalRequest.id))
    for n, req in enumerate(requests):
        line = (req.form.get("lines") or [{}])[0]
        if n % 2 == 0:
            data = samples.receipt_png(seed=n)
            name, kind = f"发票-{req.id}.png", "image/png"
        else:
            data = samples.receipt_pdf([f"Receipt for request {req.id}", req.title,
                                        f"Total {line.get('amount', '')} {line.get('currency', '')}"])
            name, kind = f"receipt-{req.id}.pdf", "application/pdf"
        invoice = {} if n % 3 == 2 else {  # every third one a plain receipt
            "invoice_code": INVOICE_CODE if n % 2 == 0 else None,
            "invoice_number": f"{10000000 + req.id:08d}" if n % 2 == 0 else f"2644200000{req.id:010d}"}
        service.add(session, storage, request_id=req.id, actor=req.requester, filename=name,
                    content_type=kind, data=data, line_ref=line.get("ref"), **invoice)
