"""Connectors: one module per outside system, all behind the small interface in
:mod:`connectors.base` (read its docstring first) and found by name through
:func:`connectors.registry.get`.

OA (events in, status out): ``dingtalk``, ``feishu``, ``wecom``, ``generic`` (signed
webhook for Weaver e-cology, Seeyon and any other OA).
ERP (vouchers out, master data in): ``kingdee``, ``odoo``, ``erpnext``, ``file``.
``connectors.ledger.voucher_from_entry`` turns a posted journal entry into a voucher.
Setup per connector: connectors/README.md.
"""

from .base import (
    ConnectorError,
    ERPConnector,
    InboundEvent,
    InboundResult,
    OAConnector,
    PermanentError,
    RetryableError,
    SignatureError,
    StatusMessage,
    Voucher,
    VoucherLine,
)

__all__ = [
    "ConnectorError", "ERPConnector", "InboundEvent", "InboundResult", "OAConnector",
    "PermanentError", "RetryableError", "SignatureError", "StatusMessage", "Voucher",
    "VoucherLine",
]
