"""What each outbox ``kind`` carries and how it is sent.

Payloads are plain JSON (money as strings, dates ISO 8601), written when the change
commits, so the message is exactly what the change meant even if master data moves
on before delivery.

=============  =======  ===========================================================
kind           target   sent with
=============  =======  ===========================================================
erp_voucher    ERP      ``post_voucher(Voucher, key)``; the ERP's number is kept as
                        the message's ``external_id`` and in the ledger's sync state
oa_status      OA       ``push_status(StatusMessage(kind="status"), key)``
oa_task        OA       ``push_status(StatusMessage(kind="task"), key)``
notify         OA       ``push_status(StatusMessage(kind="status"), key)`` to cc'd people
=============  =======  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.base import StatusMessage, Voucher, VoucherLine

ERP_KINDS = ("erp_voucher",)
OA_KINDS = ("oa_status", "oa_task", "notify")


def voucher_to_json(v: Voucher) -> dict[str, Any]:
    data = asdict(v)
    data["date"] = v.date.isoformat()
    data["lines"] = [{k: (str(x) if isinstance(x, Decimal) else x) for k, x in asdict(ln).items()}
                     for ln in v.lines]
    return data


def voucher_from_json(data: Mapping[str, Any]) -> Voucher:
    lines = tuple(VoucherLine(**{k: (Decimal(x) if k in ("debit", "credit", "amount", "rate") else x)
                                 for k, x in ln.items()}) for ln in data["lines"])
    return Voucher(company=data["company"], date=date.fromisoformat(data["date"]),
                   memo=data["memo"], lines=lines, currency=data["currency"], word=data["word"],
                   number=data.get("number"), key=data.get("key"))


_TIMES = ("occurred_at", "started_at", "task_created_at")


def status_to_json(m: StatusMessage) -> dict[str, Any]:
    data = asdict(m)
    for name in _TIMES:
        when = getattr(m, name)
        data[name] = when.isoformat() if when is not None else None
    data["user_ids"] = list(m.user_ids)
    data["applicant_ids"] = list(m.applicant_ids)
    data["form"] = {str(k): str(v) for k, v in m.form.items()}
    return data


def status_from_json(data: Mapping[str, Any]) -> StatusMessage:
    """A message written by :func:`status_to_json` (also by an older version that had
    fewer fields: those keep their defaults)."""
    d = dict(data)
    for name in _TIMES:
        if d.get(name):
            d[name] = datetime.fromisoformat(d[name])
    d["user_ids"] = tuple(d.get("user_ids") or ())
    d["applicant_ids"] = tuple(d.get("applicant_ids") or ())
    return StatusMessage(**d)


def prepare(connector: Any, kind: str, items: list[tuple[Mapping[str, Any], str]]) -> Any:
    """What the connector reads once for a whole batch of ``kind`` messages (payload,
    key), or None when it has no such step; pass it to :func:`send` as ``prepared``.

    Only ``erp_voucher`` has one (``prepare_vouchers``, e.g. ERPNext: one look-up of all
    the keys and account numbers instead of one per voucher). It changes how many calls
    are made, not what each message does: every voucher is still looked up by its key
    before it is created."""
    if kind != "erp_voucher" or not hasattr(connector, "prepare_vouchers"):
        return None
    return connector.prepare_vouchers([(voucher_from_json(p["voucher"]), key) for p, key in items])


def send(connector: Any, kind: str, payload: Mapping[str, Any], key: str,
         prepared: Any = None) -> str | None:
    """Deliver one message; returns the outside system's id for it (if any).

    Raises the connector's :class:`~connectors.base.RetryableError` /
    :class:`~connectors.base.PermanentError` unchanged; an unknown kind is permanent.
    """
    from connectors.base import PermanentError

    if kind == "erp_voucher":
        voucher = voucher_from_json(payload["voucher"])
        if prepared is not None:
            return str(connector.post_voucher(voucher, key, prepared=prepared))
        return str(connector.post_voucher(voucher, key))
    if kind in OA_KINDS:
        answer = connector.push_status(status_from_json(payload["message"]), key)
        for name in ("id", "instance_code", "taskId", "id_", "msgid"):
            if isinstance(answer, Mapping) and answer.get(name):
                return str(answer[name])[:128]
        return None
    raise PermanentError(f"unknown outbox message kind {kind!r}", connector=getattr(connector, "name", ""))
