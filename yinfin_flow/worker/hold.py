"""A dispatcher pass's hold on the messages it claimed: the fence around every call.

A claim marks its rows ``in_flight`` with the pass's ``claim_token`` and a lease
(``next_attempt_at``). Nobody else can claim a row before that lease runs out, so
while it runs the pass may call the outside system for the row without asking the
database. :meth:`Hold.before_call` keeps that true for every single call:

* if the lease would run out before the longest one message to the row's target
  can take (:func:`~yinfin_flow.worker.config.connector_seconds`, plus a margin for
  clock skew between hosts), it first writes the outcomes known so far and renews
  the lease of every row the pass still holds, in one short transaction (a lease
  shorter than one message, which only settings made in code can have, is renewed
  at half-time instead). The
  renewal is fenced by the token: a row another dispatcher took over (our lease ran
  out: this process stalled) is not renewed, is marked lost, and is never called;
* a pass past its time limit (``YINFIN_OUTBOX_PASS_SECONDS``) starts no more calls;
  :meth:`Hold.finish` gives the rows it did not get to back (``pending``, due now,
  the try not counted), so a worker never sits on a long batch while others wait.

So a pass's lease only has to cover one message, never the whole batch, and the
lease rule (``YINFIN_OUTBOX_LEASE`` at least one message's longest time) is checked
when the settings are read. Renewals are rare when calls are quick (a pass of fast
calls never renews), so the fence costs nothing on the fast path.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update

from yinfin_flow.db.engine import Database
from yinfin_flow.db.types import utcnow

from .config import DeliverySettings

if TYPE_CHECKING:
    from .dispatcher import Claimed, Outcome, PassResult

log = logging.getLogger("yinfin_flow.worker.dispatcher")

#: renew this much earlier than strictly needed: hosts' clocks differ a little
SKEW = timedelta(seconds=1)


class Hold:
    """What one pass holds. ``budget(target)`` is the longest one message to ``target``
    can take, in seconds; ``now`` (tests) moves the pass's clock to that instant."""

    def __init__(self, db: Database, settings: DeliverySettings, claimed: list[Claimed], *,
                 budget: Callable[[str], float], now: datetime | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        from .dispatcher import OUTBOX, PassResult

        self.db, self.settings, self.budget, self.rng = db, settings, budget, rng
        self.table = OUTBOX
        self.token = claimed[0].token if claimed else ""
        self.expires = min((c.leased_until for c in claimed), default=utcnow())
        self.held = {c.id for c in claimed}  # in_flight under our token, outcome not written
        self.started: set[int] = set()
        self.lost: set[int] = set()
        self.outcomes: list[Outcome] = []
        self.result = PassResult([], [], [])
        self.renewals = 0
        self.lock = threading.Lock()
        self._base, self._t0 = now, time.monotonic()
        self.begun = self.now()

    def now(self) -> datetime:
        if self._base is None:
            return utcnow()
        return self._base + timedelta(seconds=time.monotonic() - self._t0)

    def before_call(self, c: Claimed) -> bool:
        """True when the pass still holds message ``c`` (renewing its lease if needed)
        and may call for it now; False: skip it (lost to a takeover, or over time)."""
        with self.lock:
            if c.id not in self.held:
                return False
            at = self.now()
            if at - self.begun >= self.settings.pass_limit:
                return False  # given back by finish()
            need = timedelta(seconds=self.budget(c.target)) + min(SKEW, self.settings.lease / 4)
            if need > self.settings.lease:
                # a lease that cannot cover one message (settings made in code: the
                # environment's are checked at start) is renewed at half-time, not
                # before every call, where renewing would not help anyway
                need = self.settings.lease / 2
            if self.expires - at < need:
                self._flush(at)
                self._renew(at)
                if c.id not in self.held:
                    return False
            self.started.add(c.id)
            return True

    def done(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def finish(self) -> PassResult:
        """Write what is left and give back the rows no call was made for."""
        with self.lock:
            at = self.now()
            self._flush(at)
            unstarted = self.held - self.started
            if unstarted:
                t = self.table.c
                with self.db.unit_of_work() as s:
                    s.execute(update(self.table)
                              .where(t.id.in_(sorted(unstarted)), t.claim_token == self.token,
                                     t.status == "in_flight")
                              .values(status="pending", next_attempt_at=at, claim_token=None,
                                      attempts=t.attempts - 1, updated_at=at))
                log.info("pass over its time limit: %d message(s) given back untried",
                         len(unstarted))
            self.result.given_back = sorted(unstarted)
            self.result.lost = sorted(self.lost)
            return self.result

    def _flush(self, at: datetime) -> None:
        from .dispatcher import record

        if not self.outcomes:
            return
        r = record(self.db, self.outcomes, self.settings, now=None if self._base is None else at,
                   rng=self.rng)
        self.result.delivered += r.delivered
        self.result.retried += r.retried
        self.result.dead += r.dead
        self.held -= {o.claimed.id for o in self.outcomes}
        self.outcomes = []

    def _renew(self, at: datetime) -> None:
        """Extend the lease of every row still held, fenced by the claim token."""
        if not self.held:
            return
        t = self.table.c
        until = at + self.settings.lease
        with self.db.unit_of_work() as s:
            kept = set(s.scalars(
                update(self.table)
                .where(t.id.in_(sorted(self.held)), t.claim_token == self.token,
                       t.status == "in_flight")
                .values(next_attempt_at=until, updated_at=at)
                .returning(t.id)))
        if lost := self.held - kept:
            log.warning("lease lost on %d message(s) (taken over by another dispatcher): "
                        "not calling for them", len(lost), extra={"messages": sorted(lost)})
            self.lost |= lost
        self.held = kept
        self.expires = until
        self.renewals += 1
