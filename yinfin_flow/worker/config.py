"""Delivery settings, read from the environment (``YINFIN_*``).

=============================  ========  ===================================================
variable                       default   meaning
=============================  ========  ===================================================
YINFIN_ERP_CONNECTOR           (none)    ERP that receives vouchers, e.g. ``kingdee``
                                         (comma-separated for several)
YINFIN_OA_CONNECTOR            (none)    OA(s) that receive request status and tasks,
                                         e.g. ``dingtalk``
YINFIN_OUTBOX_MAX_ATTEMPTS     10        tries before a message becomes a dead letter
YINFIN_OUTBOX_BACKOFF          2         first retry delay in seconds (doubles each try)
YINFIN_OUTBOX_BACKOFF_MAX      3600      longest retry delay in seconds
YINFIN_OUTBOX_LEASE            300       seconds a claimed message stays ``in_flight``
                                         before another worker may take it over
YINFIN_OUTBOX_BATCH            50        messages one dispatcher pass claims at once
YINFIN_OUTBOX_CONCURRENCY      1         connector calls one dispatcher makes at once
                                         (threads; a batch never holds two messages
                                         of one document, so order is kept)
YINFIN_SYNC_COMPANY            (only)    company master data is synced into (needed only
                                         when there is more than one)
=============================  ========  ===================================================

With neither connector variable set, no outbox rows are written at all: an
installation without an OA or ERP keeps working and owes nobody anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from yinfin_flow.domain.errors import ValidationError


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip().lower() for n in (value or "").split(",") if n.strip())


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, f"{raw!r} is not a number") from None
    if value < minimum:
        raise ValidationError(name, f"must be at least {minimum:g}")
    return value


@dataclass(frozen=True)
class DeliverySettings:
    erp: tuple[str, ...] = ()
    oa: tuple[str, ...] = ()
    max_attempts: int = 10
    backoff: float = 2.0
    backoff_max: float = 3600.0
    lease: float = 300.0
    batch: int = 50
    concurrency: int = 1
    sync_company: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """Settings from ``env`` (default ``os.environ``); a bad value names its variable."""
        e = os.environ if env is None else env
        return cls(
            erp=_names(e.get("YINFIN_ERP_CONNECTOR")),
            oa=_names(e.get("YINFIN_OA_CONNECTOR")),
            max_attempts=int(_number(e, "YINFIN_OUTBOX_MAX_ATTEMPTS", 10, 1)),
            backoff=_number(e, "YINFIN_OUTBOX_BACKOFF", 2.0, 0),
            backoff_max=_number(e, "YINFIN_OUTBOX_BACKOFF_MAX", 3600.0, 0),
            lease=_number(e, "YINFIN_OUTBOX_LEASE", 300.0, 1),
            batch=int(_number(e, "YINFIN_OUTBOX_BATCH", 50, 1)),
            concurrency=int(_number(e, "YINFIN_OUTBOX_CONCURRENCY", 1, 1)),
            sync_company=e.get("YINFIN_SYNC_COMPANY") or None,
        )

    @property
    def targets(self) -> tuple[str, ...]:
        return self.erp + self.oa
