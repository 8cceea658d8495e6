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
                                         before another worker may take it over; the
                                         dispatcher renews it before each call. Must
                                         cover the longest one message can take (see
                                         :func:`message_seconds`): a shorter value is
                                         refused at start, naming the connector; unset,
                                         the default is raised to twice that (with a
                                         warning), so that renewals stay rare
YINFIN_OUTBOX_PASS_SECONDS     60        a dispatcher pass starts no call after this
                                         long; the messages it did not get to go back
                                         to ``pending`` untouched and the worker takes
                                         its next task
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

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from connectors.base import MAX_SKEW
from yinfin_flow.domain.errors import ValidationError

T = TypeVar("T")
log = logging.getLogger("yinfin_flow.worker.config")
_raised: set[tuple[str, timedelta]] = set()

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


def message_seconds(target: str, env: Mapping[str, str] | None = None) -> float:
    """The longest one message to ``target`` can take, in seconds (0 when unknown or
    not configured): the connector's ``message_budget()`` (its timeouts times the calls
    one message makes), or for a connector without one, three calls of its HTTP client."""
    from connectors import registry

    try:
        connector = registry.get(target, env)
    except (LookupError, ValueError):  # not configured: each message reports it
        return 0.0
    return connector_seconds(connector)


def connector_seconds(connector: object) -> float:
    """:func:`message_seconds` for a connector at hand."""
    budget = getattr(connector, "message_budget", None)
    if callable(budget):
        return budget()  # seconds
    http = getattr(connector, "http", None)
    longest = getattr(http, "longest_call", None)
    return 3 * longest() if callable(longest) else 0.0


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
    pass_limit: timedelta = timedelta(minutes=1)
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
        made = cls(
            erp=_names(e.get("YINFIN_ERP_CONNECTOR")),
            oa=_names(e.get("YINFIN_OA_CONNECTOR")),
            max_attempts=_count(e, "YINFIN_OUTBOX_MAX_ATTEMPTS", 10, 1),
            backoff=seconds(e, "YINFIN_OUTBOX_BACKOFF", cls.backoff),
            backoff_max=seconds(e, "YINFIN_OUTBOX_BACKOFF_MAX", cls.backoff_max),
            lease=seconds(e, "YINFIN_OUTBOX_LEASE", cls.lease, timedelta(seconds=1)),
            pass_limit=seconds(e, "YINFIN_OUTBOX_PASS_SECONDS", cls.pass_limit,
                               timedelta(seconds=1)),
            batch=_count(e, "YINFIN_OUTBOX_BATCH", 50, 1),
            concurrency=_count(e, "YINFIN_OUTBOX_CONCURRENCY", 1, 1),
            sync_company=e.get("YINFIN_SYNC_COMPANY") or None,
            outbox_retention=seconds(e, "YINFIN_OUTBOX_RETENTION", cls.outbox_retention),
            inbound_seen_retention=seconds(e, "YINFIN_INBOUND_SEEN_RETENTION",
                                           cls.inbound_seen_retention, MIN_INBOUND_SEEN_RETENTION),
        )
        return made.lease_checked(e, given=bool(e.get("YINFIN_OUTBOX_LEASE")))

    def lease_checked(self, env: Mapping[str, str], *, given: bool = True) -> DeliverySettings:
        """These settings if the lease covers the longest one message to any configured
        target can take (:func:`message_seconds`). Otherwise a lease that was ``given``
        is refused naming ``YINFIN_OUTBOX_LEASE`` and the connector; the default is
        raised to twice what is needed, with a warning (a pass renews its lease when
        less than one message's time is left: at exactly the need, before every call).

        Why: the dispatcher renews its lease before each call, so a lease only has to
        outlast one message; a shorter one runs out in the middle of a call, another
        dispatcher takes the message over while the first is still posting it, and
        the ERP may get it twice."""
        needs = {t: n for t in self.targets if (n := message_seconds(t, env))}
        if not needs:
            return self
        target, need = max(needs.items(), key=lambda kv: kv[1])
        need_lease = timedelta(seconds=math.ceil(need))
        if self.lease >= need_lease:
            return self
        why = (f"one message to {target} can take {need:g} s (its timeouts times the calls "
               f"one message makes; YINFIN_{target.upper()}_TIMEOUT sets the timeouts)")
        if given:
            raise ValidationError("YINFIN_OUTBOX_LEASE",
                                  f"{self.lease.total_seconds():g} s is shorter than {why}: "
                                  f"set at least {need_lease.total_seconds():g}")
        # twice the need: a pass renews when less than one message's time is left, so
        # with a lease of exactly the need it would renew before every call
        raised = 2 * need_lease
        if (target, raised) not in _raised:  # once per process, not at every task
            _raised.add((target, raised))
            log.warning("YINFIN_OUTBOX_LEASE raised from its default %g s to %g s (twice %s)",
                        self.lease.total_seconds(), raised.total_seconds(), why)
        return replace(self, lease=raised)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.erp + self.oa
