"""Event handlers that write outbox rows, in the publisher's transaction.

Subscribed by :func:`register` (listed in :mod:`yinfin_flow.bootstrap`):

* ``journal.posted`` → one ``erp_voucher`` per configured ERP (ordering scope
  ``voucher:<entry id>``, key ``yf-<company>-je<entry id>``), and the voucher's ledger
  sync state becomes ``pending`` (closing its period waits until it is ``synced``).
* ``request.status_changed`` → ``oa_status`` per configured OA (scope
  ``request:<id>``: the OA sees a request's statuses and tasks in the order they
  happened).
* ``task.created`` / ``task.completed`` / ``task.urged`` → ``oa_task`` (the to-do is
  created, closed, or re-sent).
* ``request.cc`` → ``notify`` to the people copied.

Which systems are targets is configuration (:mod:`yinfin_flow.worker.config`):
with no ``YINFIN_ERP_CONNECTOR`` / ``YINFIN_OA_CONNECTOR`` nothing is written.
The two are read at each event so a test or an operator can change them without
re-wiring (the worker's other settings are checked where the worker reads them).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import StatusMessage
from yinfin_flow import events, links
from yinfin_flow.db.models import Company
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.db.types import utcnow

from . import messages
from .config import DeliverySettings
from .outbox import enqueue

#: engine state names → the OA's words; anything else is still ``pending``
_FINAL = {"approved": "approved", "done": "approved", "paid": "approved", "closed": "approved",
          "completed": "approved", "rejected": "rejected", "withdrawn": "withdrawn",
          "cancelled": "cancelled", "canceled": "cancelled"}
#: task outcomes → the to-do's status (anything but ``pending`` closes it)
_TASK = {"approved": "approved", "auto_approved": "approved", "rejected": "rejected",
         "sent_back": "rejected", "transferred": "cancelled", "cancelled": "cancelled",
         "withdrawn": "withdrawn", "skipped": "cancelled"}
#: where each OA keeps its own id for one of our users
_OA_USER_COLUMN = {"dingtalk": "dingtalk_userid", "feishu": "feishu_open_id", "wecom": "wecom_userid"}


@dataclass(frozen=True)
class _Targets:
    erp: tuple[str, ...]
    oa: tuple[str, ...]


def _settings() -> _Targets:
    """The configured targets, read from the environment at each event (two look-ups;
    parsed once per value: this runs for every event of every action)."""
    return _targets(os.environ.get("YINFIN_ERP_CONNECTOR"), os.environ.get("YINFIN_OA_CONNECTOR"))


@lru_cache(maxsize=16)
def _targets(erp: str | None, oa: str | None) -> _Targets:
    found = DeliverySettings.from_env({"YINFIN_ERP_CONNECTOR": erp or "", "YINFIN_OA_CONNECTOR": oa or ""})
    return _Targets(found.erp, found.oa)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:40]


def voucher_key(company: str, entry_id: int) -> str:
    """The idempotency key a posted voucher is sent to every ERP with (reconciliation
    rebuilds it for vouchers whose message the retention purge deleted)."""
    return f"{KEY_PREFIX}{_safe(company)}-je{entry_id}"


#: every voucher key starts so: an ERP voucher carrying it came from us
KEY_PREFIX = "yf-"


# -- vouchers -------------------------------------------------------------------------


def on_journal_posted(session: Session, event: events.Event) -> None:
    targets = _settings().erp
    if not targets:
        return
    from connectors.ledger import voucher_from_rows
    from yinfin_flow.ledger import sync
    from yinfin_flow.ledger.exports import voucher_rows

    entry_id = int(event.payload["entry_id"])
    session.flush()
    entry = session.get(JournalEntry, entry_id)
    assert entry is not None  # published right after it was written
    company = session.get(Company, entry.company_id)
    assert company is not None
    v = voucher_from_rows(voucher_rows(session, company.code, entry_id=entry_id))
    key = voucher_key(company.code, entry_id)
    voucher = messages.voucher_to_json(replace(v, company=company.code, key=key))
    for target in targets:
        enqueue(session, target=target, kind="erp_voucher", document_key=f"voucher:{entry_id}",
                payload={"entry_id": entry_id, "voucher": voucher, "label": v.number},
                idempotency_key=key)
        sync.mark(session, entry_id, "pending", target=target)


# -- the OA -----------------------------------------------------------------------------


def _oa_users(session: Session, target: str, user_ids: list[str]) -> list[str]:
    column = _OA_USER_COLUMN.get(target)
    if column is None or not user_ids:
        return [u for u in user_ids if u]
    from yinfin_flow.db.models.org import User

    found = dict(session.execute(select(User.id, getattr(User, column)).where(User.id.in_(user_ids))).all())
    # someone not linked to the OA is left out: the OA cannot address them
    return [found[u] for u in user_ids if found.get(u)]


def _queue_oa(session: Session, *, kind: str, req_id: int, key: str, build: Any) -> None:
    targets = _settings().oa
    if not targets:
        return
    req = session.get(ApprovalRequest, req_id)
    if req is None:
        return
    for target in targets:
        message: StatusMessage = build(req, target)
        # the same on every message of a request: the OA shows one instance, started by
        # its requester, at one time, linked to one page
        message = replace(message, request_url=links.request_link(req.id),
                          started_at=req.submitted_at or req.created_at,
                          applicant_ids=tuple(_oa_users(session, target, [req.requester])))
        if message.url is None:
            message = replace(message, url=message.request_url)
        ext = _external_instance(session, target, req_id)
        if ext:
            message = replace(message, external_instance_id=ext)
        enqueue(session, target=target, kind=kind, document_key=f"request:{req_id}",
                payload={"message": messages.status_to_json(message)}, idempotency_key=key)


def _external_instance(session: Session, target: str, req_id: int) -> str | None:
    """The OA's own id for a request that was started in that OA (else None)."""
    try:
        from yinfin_flow.db.models.security import OAInstance
    except ImportError:  # the inbound OA endpoint is not installed
        return None
    return session.scalar(select(OAInstance.external_id).where(
        OAInstance.connector == target, OAInstance.request_id == req_id).limit(1))


def _now() -> datetime:
    return utcnow()


def on_status_changed(session: Session, event: events.Event) -> None:
    p = event.payload
    state = str(p.get("new_state"))

    def build(req: ApprovalRequest, target: str) -> StatusMessage:
        return StatusMessage(kind="status", request_id=str(req.id), title=req.title,
                             status=_FINAL.get(state, "pending"), occurred_at=_now(),
                             user_ids=tuple(_oa_users(session, target, [req.requester])),
                             comment=f"{p.get('event')}: {p.get('old_state')} → {state}")

    _queue_oa(session, kind="oa_status", req_id=int(p["request_id"]), build=build,
              key=f"yf-req{p['request_id']}-{p.get('event')}-{state}-{uuid.uuid4().hex[:12]}")


def _task_message(session: Session, event: events.Event, status: str, suffix: str) -> None:
    p = event.payload

    task = session.get(ApprovalTask, int(p["task_id"]))

    def build(req: ApprovalRequest, target: str) -> StatusMessage:
        return StatusMessage(kind="task", request_id=str(req.id), title=req.title, status=status,
                             occurred_at=_now(), task_id=str(p["task_id"]),
                             user_ids=tuple(_oa_users(session, target, [str(p.get("assignee") or "")])),
                             comment=str(p.get("step") or "") or None,
                             url=links.task_link(p["task_id"], req.id),
                             task_created_at=task.created_at if task is not None else None,
                             request_status=_FINAL.get(req.state, "pending"))

    _queue_oa(session, kind="oa_task", req_id=int(p["request_id"]), build=build,
              key=f"yf-task{p['task_id']}-{suffix}")


def on_task_created(session: Session, event: events.Event) -> None:
    _task_message(session, event, "pending", "created")


def on_task_completed(session: Session, event: events.Event) -> None:
    outcome = str(event.payload.get("outcome") or "")
    _task_message(session, event, _TASK.get(outcome, "approved"), f"done-{outcome}")


def on_task_urged(session: Session, event: events.Event) -> None:
    # each reminder is its own message (same to-do, pushed again)
    _task_message(session, event, "pending", f"urged-{uuid.uuid4().hex[:12]}")


def on_cc(session: Session, event: events.Event) -> None:
    p = event.payload

    def build(req: ApprovalRequest, target: str) -> StatusMessage:
        return StatusMessage(kind="status", request_id=str(req.id), title=req.title,
                             status=_FINAL.get(req.state, "pending"), occurred_at=_now(),
                             user_ids=tuple(_oa_users(session, target, list(p.get("users") or []))),
                             comment=f"cc ({p.get('at')})")

    _queue_oa(session, kind="notify", req_id=int(p["request_id"]), build=build,
              key=f"yf-req{p['request_id']}-cc-{p.get('at')}-{uuid.uuid4().hex[:12]}")


def register() -> None:
    events.subscribe("journal.posted", on_journal_posted)
    events.subscribe("request.status_changed", on_status_changed)
    events.subscribe("task.created", on_task_created)
    events.subscribe("task.completed", on_task_completed)
    events.subscribe("task.urged", on_task_urged)
    events.subscribe("request.cc", on_cc)
