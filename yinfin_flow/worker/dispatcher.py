"""The dispatcher: claim due messages, call connectors outside any transaction, record.

One pass (:func:`run_once`) is three steps, each safe to die in:

1. **claim** (one short transaction): pick due rows in id order, at most one per
   target+document (a row waits while an earlier row of its target and document is
   not delivered), and mark them ``in_flight`` with a lease (``next_attempt_at`` =
   now + lease) and a fresh ``claim_token``. PostgreSQL takes the rows with
   ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers never claim the same row and
   never wait on each other; SQLite's ``BEGIN IMMEDIATE`` serialises the claim.
2. **call** the connector with the message's idempotency key, no transaction open,
   each call fenced by :class:`~yinfin_flow.worker.hold.Hold` (made only while the
   pass still holds the row, its lease renewed first when it could run out during
   the call). A worker killed here leaves the row ``in_flight``; once the lease runs
   out any dispatcher claims it again, and the key, looked up again right before the
   insert, makes the second call find the first voucher instead of making another.
3. **record** (one short transaction, whenever the lease is renewed and at the end
   of the pass): delivered (with the outside id; a voucher's
   ledger sync state becomes ``synced``), or back to ``pending`` after an exponential
   backoff with jitter (at least the vendor's ``retry_after``), or ``dead`` after a
   :class:`~connectors.base.PermanentError` or the last allowed try.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, select, update
from sqlalchemy.orm import aliased

from connectors.base import ConnectorError, PermanentError, RetryableError
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.db.types import utcnow

from . import messages
from .config import DeliverySettings, connector_seconds
from .hold import Hold
from .logs import document_context

log = logging.getLogger("yinfin_flow.worker.dispatcher")

OUTBOX = cast(Table, OutboxMessage.__table__)
#: name -> connector; tests and the bench pass their own
ConnectorLookup = Callable[[str], Any]


def registry_lookup(name: str) -> Any:
    from connectors import registry

    return registry.get(name)


@dataclass(frozen=True)
class Claimed:
    id: int
    target: str
    kind: str
    document_key: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    token: str
    #: when the claim's lease runs out (the pass renews it before a call that could outlast it)
    leased_until: datetime


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    external_id: str | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class PassResult:
    """What one pass did: ids delivered, retried later, dead-lettered."""

    delivered: list[int]
    retried: list[int]
    dead: list[int]
    #: claimed, but no call made: the pass ran out of time (back to pending, untried)
    given_back: list[int] = field(default_factory=list)
    #: lost to another dispatcher's takeover before their call (never called)
    lost: list[int] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(self.delivered) + len(self.retried) + len(self.dead)


def backoff(attempts: int, settings: DeliverySettings, retry_after: float | None = None,
            rng: Callable[[], float] = random.random) -> timedelta:
    """How long to wait after ``attempts`` tries: base·2^(n-1), capped, with "equal
    jitter" (between half and all of it) so a crowd of failures spreads out; never
    sooner than the vendor's ``retry_after`` (seconds)."""
    ceiling = min(settings.backoff_max, settings.backoff * (1 << max(attempts - 1, 0)))
    delay = ceiling / 2 + ceiling / 2 * rng()
    return max(delay, timedelta(seconds=retry_after or 0))


def claim(db: Database, settings: DeliverySettings, *, now: datetime | None = None,
          limit: int | None = None, ids: Iterable[int] | None = None,
          targets: Iterable[str] | None = None) -> list[Claimed]:
    """Mark up to ``limit`` due messages ``in_flight`` for this caller and return them.

    Two statements whatever the batch: pick (and on PostgreSQL lock) the due ids, then
    one ``UPDATE … RETURNING`` takes them all with one fresh ``claim_token``."""
    at = now or utcnow()
    m, earlier = OutboxMessage, aliased(OutboxMessage)
    blocked = (select(earlier.id)
               .where(earlier.target == m.target, earlier.document_key == m.document_key,
                      earlier.id < m.id, earlier.status != "delivered")
               .exists())
    stmt = (select(m.id, m.status, m.attempts)
            .where(m.status.in_(("pending", "in_flight")), m.next_attempt_at <= at, ~blocked)
            .order_by(m.id).limit(limit or settings.batch))
    if ids is not None:
        stmt = stmt.where(m.id.in_(list(ids)))
    if targets is not None:
        stmt = stmt.where(m.target.in_(list(targets)))
    if db.dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=m)
    token = uuid.uuid4().hex
    with db.unit_of_work() as s:
        picked = s.execute(stmt).all()
        # a row whose worker vanished on every try (a message that kills the process?):
        # stop feeding it to workers and let a person look
        lost = [r.id for r in picked
                if r.status == "in_flight" and r.attempts >= settings.max_attempts]
        for row in s.scalars(select(m).where(m.id.in_(lost)).order_by(m.id)) if lost else ():
            _give_up(s, row, f"worker lost during delivery {row.attempts} times; "
                             f"last error: {row.last_error or '-'}", at)
        take = [r.id for r in picked if r.id not in lost]
        if not take:
            return []
        rows = s.execute(
            update(OUTBOX).where(OUTBOX.c.id.in_(take))
            .values(status="in_flight", claim_token=token, next_attempt_at=at + settings.lease,
                    attempts=OUTBOX.c.attempts + 1, updated_at=at)
            .returning(OUTBOX.c.id, OUTBOX.c.target, OUTBOX.c.kind, OUTBOX.c.document_key,
                       OUTBOX.c.idempotency_key, OUTBOX.c.payload, OUTBOX.c.attempts)).all()
        claimed = sorted((Claimed(r.id, r.target, r.kind, r.document_key, r.idempotency_key,
                                  dict(r.payload), r.attempts, token, at + settings.lease)
                          for r in rows),
                         key=lambda c: c.id)
        _name_earlier_tasks(s, claimed)
    return claimed


def _name_earlier_tasks(s: Any, claimed: list[Claimed]) -> None:
    """Give each message about a finished task the OA's id for that task's to-do.

    The OA answered the task's ``pending`` message with its own id for the to-do (kept
    as that row's ``external_id``); a vendor that can only close a to-do by its own id
    (DingTalk: 更新钉钉待办任务 ``PUT …/tasks/{taskId}`` with ``done``) needs it back.
    The pending row is delivered before this one (same target and document, earlier
    id), so it is there unless retention purged it (then nothing is added and the
    connector does what it can without). Only the claim's copy of the payload gets
    ``message.external_task_id``; the row keeps what the change wrote.
    """
    finished = [c for c in claimed if c.kind == "oa_task"
                and c.payload.get("message", {}).get("status") != "pending"
                and c.payload.get("message", {}).get("task_id")]
    if not finished:
        return
    t = OUTBOX.c
    earlier = s.execute(
        select(t.target, t.payload, t.external_id)
        .where(t.kind == "oa_task", t.status == "delivered", t.external_id.is_not(None),
               t.document_key.in_({c.document_key for c in finished}),
               t.target.in_({c.target for c in finished}))
        .order_by(t.id))
    todo: dict[tuple[str, str], str] = {}
    for target, payload, external_id in earlier:
        message = (payload or {}).get("message") or {}
        if message.get("status") == "pending" and message.get("task_id"):
            todo.setdefault((target, str(message["task_id"])), external_id)  # the first to-do
    for c in finished:
        found = todo.get((c.target, str(c.payload["message"]["task_id"])))
        if found:
            c.payload["message"] = {**c.payload["message"], "external_task_id": found}


def _give_up(s: Any, row: OutboxMessage, error: str, at: datetime) -> None:
    from yinfin_flow.ledger import sync

    row.status, row.last_error, row.claim_token, row.updated_at = "dead", error[:4000], None, at
    if row.kind == "erp_voucher" and row.payload.get("entry_id"):
        sync.mark(s, int(row.payload["entry_id"]), "failed", message=error[:1000], target=row.target)


def prepare(claimed: list[Claimed], lookup: ConnectorLookup = registry_lookup) -> dict[int, Any]:
    """Message id -> what its connector read once for the pass's messages of the same
    target and kind (:func:`messages.prepare`; e.g. ERPNext looks every key and account
    up in one go). If that fails, each message looks up on its own, as without it."""
    groups: dict[tuple[str, str], list[Claimed]] = {}
    for c in claimed:
        groups.setdefault((c.target, c.kind), []).append(c)
    out: dict[int, Any] = {}
    for (target, kind), group in groups.items():
        if len(group) < 2:
            continue
        try:
            prepared = messages.prepare(lookup(target), kind,
                                        [(c.payload, c.idempotency_key) for c in group])
        except Exception as err:  # noqa: BLE001 - each message meets the error on its own
            log.warning("batch look-up for %s failed, messages look up one by one: %s",
                        target, getattr(err, "message", None) or err)
            continue
        if prepared is not None:
            out.update((c.id, prepared) for c in group)
    return out


def call(claimed: Claimed, lookup: ConnectorLookup = registry_lookup,
         prepared: Any = None) -> Outcome:
    """Send one claimed message (no transaction open); never raises for connector errors."""
    with document_context(claimed.document_key, message_id=claimed.id, target=claimed.target):
        try:
            connector = lookup(claimed.target)
            external = messages.send(connector, claimed.kind, claimed.payload,
                                     claimed.idempotency_key, prepared)
        except RetryableError as err:
            log.warning("delivery failed, will retry: %s", err.message,
                        extra={"attempt": claimed.attempts})
            return Outcome(claimed, error=err.message or type(err).__name__,
                           retry_after=err.retry_after)
        except PermanentError as err:
            log.error("delivery refused: %s", err.message, extra={"attempt": claimed.attempts})
            return Outcome(claimed, error=err.message or type(err).__name__, permanent=True)
        except ConnectorError as err:
            return Outcome(claimed, error=err.message or type(err).__name__, permanent=True)
        except LookupError as err:  # not configured: retrying will not help until an admin acts
            return Outcome(claimed, error=str(err), permanent=True)
        except Exception as err:  # noqa: BLE001 - a bug or an odd network failure: retry, bounded
            log.exception("delivery crashed")
            return Outcome(claimed, error=f"{type(err).__name__}: {err}"[:2000])
        log.info("delivered", extra={"attempt": claimed.attempts, "external_id": external})
        return Outcome(claimed, external_id=external)


def record(db: Database, outcomes: list[Outcome], settings: DeliverySettings, *,
           now: datetime | None = None, rng: Callable[[], float] = random.random) -> PassResult:
    """Write the outcomes in one transaction (see the module docstring): the rows are
    locked, then every delivery is recorded by one ``UPDATE``; retries and dead letters
    (the exceptions) row by row."""
    from yinfin_flow.ledger import sync

    at = now or utcnow()
    result = PassResult([], [], [])
    if not outcomes:
        return result
    t = OUTBOX.c
    with db.unit_of_work() as s:
        rows = {r.id: r for r in s.execute(
            select(t.id, t.status, t.claim_token, t.attempts)
            .where(t.id.in_([o.claimed.id for o in outcomes])).order_by(t.id).with_for_update())}
        delivered: dict[int, str | None] = {}
        for o in outcomes:
            c, row = o.claimed, rows.get(o.claimed.id)
            if row is None or row.status == "delivered" or c.id in delivered:
                continue  # another worker (a lease takeover) already recorded it
            # a voucher from our ledger carries its entry id; its sync state follows the message
            # (the payload is never changed after it is written: the claim's copy is the row's)
            entry = c.payload.get("entry_id") if c.kind == "erp_voucher" else None
            if o.ok:
                delivered[c.id] = o.external_id
                if entry and o.external_id:
                    sync.mark(s, int(entry), "synced",
                              erp_voucher_id=o.external_id[:64], target=c.target)
                continue
            if row.status != "in_flight" or row.claim_token != c.token:
                continue  # our lease ran out and someone else holds the row now
            change: dict[str, Any] = {"last_error": (o.error or "")[:4000], "claim_token": None,
                                      "updated_at": at}
            if o.permanent or row.attempts >= settings.max_attempts:
                change["status"] = "dead"
                if entry:
                    sync.mark(s, int(entry), "failed",
                              message=(o.error or "")[:1000], target=c.target)
                result.dead.append(c.id)
            else:
                change["status"] = "pending"
                change["next_attempt_at"] = at + backoff(row.attempts, settings, o.retry_after, rng)
                result.retried.append(c.id)
            s.execute(update(OUTBOX).where(t.id == c.id).values(**change))
        if delivered:
            s.execute(update(OUTBOX).where(t.id.in_(list(delivered))).values(
                status="delivered", delivered_at=at, last_error=None, claim_token=None,
                updated_at=at, external_id=case(delivered, value=t.id)))
            result.delivered.extend(delivered)
    return result


def run_once(db: Database, settings: DeliverySettings | None = None, *,
             lookup: ConnectorLookup = registry_lookup, now: datetime | None = None,
             limit: int | None = None, ids: Iterable[int] | None = None) -> PassResult:
    """One claim → call → record pass. Returns what happened.

    Every call is fenced (:class:`~yinfin_flow.worker.hold.Hold`): made only while the
    pass still holds the message, under a lease that outlasts it. The batch look-up
    (:func:`prepare`) is used only for messages on their first try: nobody else has
    ever held those, so nobody can have posted them since. A message tried before may
    have been taken over from a dispatcher that is still posting it, so its key is
    looked up again right before the insert."""
    settings = settings or DeliverySettings.from_env()
    claimed = claim(db, settings, now=now, limit=limit, ids=ids)
    if not claimed:
        return PassResult([], [], [])
    lookup = _per_pass(lookup)
    budgets: dict[str, float] = {}

    def budget(target: str) -> float:
        if target not in budgets:
            try:
                budgets[target] = connector_seconds(lookup(target))
            except LookupError:
                budgets[target] = 0.0
        return budgets[target]

    hold = Hold(db, settings, claimed, budget=budget, now=now)
    first = [c for c in claimed if c.attempts == 1]
    prepared = prepare(first, lookup)

    def one(c: Claimed) -> None:
        if hold.before_call(c):
            hold.done(call(c, lookup, prepared.get(c.id)))

    if settings.concurrency > 1 and len(claimed) > 1:
        list(_pool(settings.concurrency).map(one, claimed))
    else:
        for c in claimed:
            one(c)
    return hold.finish()


def _per_pass(lookup: ConnectorLookup) -> ConnectorLookup:
    """``lookup`` asked once per target in a pass (the registry reads the environment)."""
    found: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in found:
            found[name] = lookup(name)  # a LookupError is not kept: each message reports it
        return found[name]

    return get


_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    # one pool per size per process, kept: a pass must not pay for starting threads
    if size not in _pools:
        _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="yinfin-call")
    return _pools[size]


def drain(db: Database, settings: DeliverySettings | None = None, *,
          lookup: ConnectorLookup = registry_lookup, max_passes: int = 1000) -> PassResult:
    """Passes until nothing is due (messages waiting for a backoff are left for later)."""
    settings = settings or DeliverySettings.from_env()
    total = PassResult([], [], [])
    for _ in range(max_passes):
        r = run_once(db, settings, lookup=lookup)
        if not r.attempted and not r.given_back:
            break
        total.delivered += r.delivered
        total.retried += r.retried
        total.dead += r.dead
    return total


def next_due(db: Database) -> datetime | None:
    """When the earliest pending message becomes due (None: nothing waits)."""
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(OutboxMessage.next_attempt_at)
                        .where(OutboxMessage.status.in_(("pending", "in_flight")))
                        .order_by(OutboxMessage.next_attempt_at).limit(1))
