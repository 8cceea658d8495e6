"""A voucher's ERP sync state: the one thing about a voucher that changes.

The integration area calls :func:`mark` as its outbox message for a voucher is
queued (``pending``), delivered (``synced`` with the ERP's voucher id) or given up
on (``failed``). Closing a period is refused while any of its vouchers is
``pending`` or ``failed``; vouchers never queued for an ERP do not block.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow.db.models.ledger import JournalEntry, JournalSync
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError


def mark(
    session: Session, entry_id: int, status: str, *, erp_voucher_id: str | None = None,
    message: str | None = None, target: str = "erp",
) -> JournalSync:
    if status not in ("pending", "synced", "failed"):
        raise ValidationError("status", "must be pending, synced or failed")
    if session.get(JournalEntry, entry_id) is None:
        raise NotFound(f"no journal entry {entry_id}", field="entry_id")
    if status == "synced" and not erp_voucher_id:
        raise ValidationError("erp_voucher_id", "a synced voucher needs the ERP's voucher id")
    row = session.get(JournalSync, entry_id, with_for_update=True)
    if row is None:
        row = JournalSync(entry_id=entry_id, target=target)
        session.add(row)
    row.status, row.message, row.updated_at = status, message, utcnow()
    if erp_voucher_id is not None:
        row.erp_voucher_id = erp_voucher_id
    session.flush()
    return row
