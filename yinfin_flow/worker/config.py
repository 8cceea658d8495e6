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
YINFIN_OUTBOX_RETENTION        2592000   seconds (30 days) a delivered message is kept
                                         before the hourly purge deletes it
YINFIN_INBOUND_SEEN_RETENTION  604800    seconds (7 days) an accepted OA event id is kept
                                         for replay protection; at least 600 (twice
                                         the 5-minute timestamp window)
=============================  ========  ===================================================

With neither connector variable set, no outbox rows are written at all: an
installation without an OA or ERP keeps working and owes nobody anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from connectors.base import MAX_SKEW
from yinfin_flow.domain.errors import ValidationError

T = TypeVar("T")

#: An OA delivery is accepted while its timestamp is within MAX_SKEW (5 minutes) of our
#: clock, either way: the same delivery replayed can arrive up to twice that after the
#: first was accepted, so its event id must be remembered at least that long.
MIN_INBOUND_SEEN_RETENTION = 2 * MAX_SKEW


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip().lower() for n in (value or "").split(",") if n.strip())


def _setting(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T],
             problem: str) -> T:
    """``parse(env[name])`` (``default`` when unset); a bad value names ``name``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, ArithmeticError):  # InvalidOperation and OverflowError included
        raise ValidationError(name, f"{raw!r} {problem}") from None


def _count(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """A whole number from ``env[name]``."""
    value = _setting(env, name, default, int, "is not a whole number")
    if value < minimum:
        raise ValidationError(name, f"must be at least {minimum}")
    return value


def _duration(text: str) -> timedelta:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(text)
    return timedelta(microseconds=int(value.scaleb(6).to_integral_value()))


def seconds(env: Mapping[str, str], name: str, default: timedelta,
            minimum: timedelta = timedelta(0)) -> timedelta:
    """A duration given in seconds (``"2"``, ``"0.5"``) from ``env[name]``, exact to the
    microsecond (parsed as a decimal, never a float); a bad value names ``name``."""
    value = _setting(env, name, default, _duration, "is not a number of seconds")
    if value < minimum:
        raise ValidationError(name, f"must be at least {minimum.total_seconds():g} seconds")
    return value


@dataclass(frozen=True)
class DeliverySettings:
    """Durations are :class:`~datetime.timedelta` (a plain number given to the
    constructor is taken as seconds)."""

    erp: tuple[str, ...] = ()
    oa: tuple[str, ...] = ()
    max_attempts: int = 10
    backoff: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 50
    concurrency: int = 1
    sync_company: str | None = None
    outbox_retention: timedelta = timedelta(days=30)
    inbound_seen_retention: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "timedelta" and not isinstance(value, timedelta):
                object.__setattr__(self, f.name, timedelta(seconds=value))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """Settings from ``env`` (default ``os.environ``); a bad value names its variable."""
        e = os.environ if env is None else env
        return cls(
            erp=_names(e.get("YINFIN_ERP_CONNECTOR")),
            oa=_names(e.get("YINFIN_OA_CONNECTOR")),
            max_attempts=_count(e, "YINFIN_OUTBOX_MAX_ATTEMPTS", 10, 1),
            backoff=seconds(e, "YINFIN_OUTBOX_BACKOFF", cls.backoff),
            backoff_max=seconds(e, "YINFIN_OUTBOX_BACKOFF_MAX", cls.backoff_max),
            lease=seconds(e, "YINFIN_OUTBOX_LEASE", cls.lease, timedelta(seconds=1)),
            batch=_count(e, "YINFIN_OUTBOX_BATCH", 50, 1),
            concurrency=_count(e, "YINFIN_OUTBOX_CONCURRENCY", 1, 1),
            sync_company=e.get("YINFIN_SYNC_COMPANY") or None,
            outbox_retention=seconds(e, "YINFIN_OUTBOX_RETENTION", cls.outbox_retention),
            inbound_seen_retention=seconds(e, "YINFIN_INBOUND_SEEN_RETENTION",
                                           cls.inbound_seen_retention, MIN_INBOUND_SEEN_RETENTION),
        )

    @property
    def targets(self) -> tuple[str, ...]:
        return self.erp + self.oa
