"""The one small interface every connector implements.

Two kinds of outside system, two protocols:

``OAConnector`` (DingTalk, Feishu/Lark, WeCom, any OA that can call a signed webhook)
    ``verify_and_parse(headers, query, body, *, now, seen) -> InboundResult``
        Check the vendor's signature (and decrypt), refuse stale or replayed
        deliveries, and turn the payload into :class:`InboundEvent` s. The result
        also carries the exact HTTP answer the vendor expects (DingTalk's encrypted
        ``success``, Feishu's challenge echo, WeCom's decrypted ``echostr``): the
        HTTP endpoint sends ``result.status/content_type/body`` back verbatim.
        No database is touched here; ``seen(event_id) -> bool`` lets the caller
        back replay detection with the database or Redis (return True if the id
        was already recorded, and record it otherwise). ``seen`` is called last,
        after everything that can fail (including fetching the form from the OA),
        so a delivery that raised can be retried by the vendor; call it inside the
        unit of work that applies the events, so a rollback forgets the id too.
        Ids passed to ``seen`` are prefixed with the connector name.
    ``push_status(message, idempotency_key) -> dict``
        Push a request's status, or a task, to the OA. Returns the vendor's
        answer (a small dict) for the outbox log.
    An OA that can list its directory (DingTalk, Feishu, WeCom) also offers
    ``changed_master_data`` for ``cost_centres`` (its departments) and ``users``, as
    snapshots (``snapshot_kinds``, see :mod:`connectors.org`).

``ERPConnector`` (Kingdee K3Cloud, Odoo, ERPNext, file drop)
    ``post_voucher(voucher, idempotency_key) -> str``
        Post and return the ERP's voucher number. Every implementation looks the
        key up in the ERP first (a reference/remark field holds it), so a retry
        after a lost answer finds the voucher instead of making a second one.
    ``prepare_vouchers([(voucher, key), ...]) -> prepared`` (optional)
        Read at once what posting a batch needs (which keys exist, the ERP's names
        for the account numbers); the dispatcher then calls
        ``post_voucher(voucher, key, prepared=prepared)`` for each. A key the
        batch look-up did not settle is looked up on its own, so every voucher is
        still checked before it is created. ERPNext has it.
    ``read_voucher(number_or_key) -> Voucher | None``
        Read a posted voucher back (reconciliation).
    ``changed_master_data(kind, watermark) -> (records, new_watermark)``
        Records of ``kind`` (:data:`MASTER_DATA_KINDS`) changed since
        ``watermark`` (``None`` = from the start). Pass the returned watermark next
        time. ``master_data_kinds`` lists the kinds a connector supports; others
        raise :class:`PermanentError`.

Errors: every failure to talk to the outside system is a :class:`ConnectorError`.
    :class:`RetryableError` network, timeout, HTTP 5xx, rate limit (``retry_after``
        seconds when the vendor says); the outbox retries with backoff.
    :class:`PermanentError` the outside system refused the content (validation,
        unknown account, bad credentials); ``message`` is the vendor's own text,
        verbatim; the outbox dead-letters at once.
    :class:`SignatureError` an inbound delivery failed verification, is older than
        :data:`MAX_SKEW` or was seen before; answer 401/403 and do nothing.
An expired access token or session is handled inside the connector (log in again
once, then retry the call); callers never see it unless the second try fails.

Money is ``Decimal`` everywhere; form values arrive as strings (a vendor's JSON
number is read with ``parse_float=Decimal``), never floats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

#: Kinds ``InboundEvent.kind`` takes.
EVENT_KINDS = ("form_submitted", "task_acted", "instance_withdrawn", "instance_status")
#: Kinds ``ERPConnector.changed_master_data`` may support.
MASTER_DATA_KINDS = ("accounts", "cost_centres", "projects", "partners", "budgets")
#: Older deliveries than this are refused (and so are ones from this far in the future).
MAX_SKEW = timedelta(minutes=5)

SeenFn = Callable[[str], bool]


# -- errors -------------------------------------------------------------------------


class ConnectorError(Exception):
    """Talking to an outside system failed. ``connector`` names which one."""

    code = "connector_error"

    def __init__(self, message: str, *, connector: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.connector = connector
        self.status = status


class RetryableError(ConnectorError):
    """Try again later: network, timeout, 5xx, rate limit. ``retry_after`` in seconds if known."""

    code = "connector_retryable"

    def __init__(
        self, message: str, *, connector: str = "", status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, connector=connector, status=status)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The outside system refused the content; ``message`` is its own text. Do not retry."""

    code = "connector_permanent"


class SignatureError(ConnectorError):
    """An inbound delivery is not authentic, too old, or a replay."""

    code = "connector_signature"


# -- inbound ------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundEvent:
    """One thing that happened in the OA, in the engine's words.

    ``event_id`` is stable across the vendor's re-deliveries of the same event
    (use it as the idempotency key of the engine command). ``form`` values are
    strings exactly as the OA sent them (money stays text until the engine parses
    it as ``Decimal``). ``action`` is ``approve`` / ``reject`` / ``transfer`` /
    ``comment`` / … for ``task_acted``; ``status`` is the OA's instance status
    mapped to ``running`` / ``approved`` / ``rejected`` / ``withdrawn`` /
    ``deleted`` for ``instance_status``.
    """

    connector: str
    event_id: str
    kind: str
    external_instance_id: str
    external_user_id: str | None
    occurred_at: datetime
    form: Mapping[str, str] = field(default_factory=dict)
    action: str | None = None
    comment: str | None = None
    status: str | None = None
    task_id: str | None = None
    template: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundResult:
    """The events in a delivery and the exact HTTP answer the vendor expects.

    ``ignored`` names the vendor's event types in the delivery that the connector does
    not read (answered as the vendor expects all the same, so it stops re-sending);
    the HTTP endpoint counts and logs them, so a subscription nobody reads shows.
    """

    events: list[InboundEvent]
    body: bytes = b"success"
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusMessage:
    """What to tell the OA about one of our requests.

    ``kind`` is ``status`` (the request's state changed) or ``task`` (someone has
    something to approve). ``external_instance_id`` is set when the request was
    started in that OA; ``template`` is the OA-side approval definition
    (DingTalk processCode, Feishu approval_code, WeCom template id) where needed.
    ``status`` is one of ``pending`` / ``approved`` / ``rejected`` / ``withdrawn``
    / ``cancelled``. ``external_task_id``, on a message about a finished task, is the
    OA's own id for that task's to-do, as the OA answered the task's ``pending``
    message (the dispatcher adds it; None when it is not known).

    Links (:mod:`yinfin_flow.links`): ``url`` is where the message's reader acts (the
    console's task page for a task, its request page otherwise), ``request_url`` the
    request's page (the OA's instance links). ``applicant_ids`` are the requester's ids
    in the OA (a task message names its approvers in ``user_ids``), ``started_at`` when
    the request was submitted (the same on every message of a request),
    ``task_created_at`` when the task was made, ``request_status`` the request's own
    status on a task message (``status`` is then the task's).
    """

    kind: str
    request_id: str
    title: str
    status: str
    occurred_at: datetime
    user_ids: Sequence[str] = ()
    external_instance_id: str | None = None
    template: str | None = None
    comment: str | None = None
    url: str | None = None
    form: Mapping[str, str] = field(default_factory=dict)
    task_id: str | None = None
    external_task_id: str | None = None
    request_url: str | None = None
    applicant_ids: Sequence[str] = ()
    started_at: datetime | None = None
    task_created_at: datetime | None = None
    request_status: str | None = None


@runtime_checkable
class OAConnector(Protocol):
    name: str

    def verify_and_parse(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, *,
        now: datetime, seen: SeenFn,
    ) -> InboundResult: ...

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]: ...


# -- vouchers -----------------------------------------------------------------------


@dataclass(frozen=True)
class VoucherLine:
    """One line (分录). ``debit``/``credit`` are base-currency; ``amount`` is the
    original-currency amount (positive on its own side) at ``rate``."""

    account: str
    debit: Decimal
    credit: Decimal
    currency: str
    amount: Decimal
    rate: Decimal = Decimal(1)
    memo: str = ""
    cost_centre: str | None = None
    project: str | None = None
    partner: str | None = None
    account_name: str = ""
    account_type: str = "expense"


@dataclass(frozen=True)
class Voucher:
    """A voucher (凭证) as an ERP sees it. ``number`` is ours (or the ERP's on read-back)."""

    company: str
    date: date
    memo: str
    lines: tuple[VoucherLine, ...]
    currency: str = "CNY"
    word: str = "记"
    number: str | None = None
    key: str | None = None

    def totals(self) -> tuple[Decimal, Decimal]:
        """Base-currency (debit, credit) sums: the reconciliation comparison."""
        return (sum((ln.debit for ln in self.lines), Decimal(0)),
                sum((ln.credit for ln in self.lines), Decimal(0)))


@runtime_checkable
class ERPConnector(Protocol):
    name: str
    #: the :data:`MASTER_DATA_KINDS` this ERP can answer (the sync schedules only these)
    master_data_kinds: tuple[str, ...]

    def post_voucher(self, voucher: Voucher, idempotency_key: str) -> str: ...

    def read_voucher(self, number_or_key: str) -> Voucher | None: ...

    def changed_master_data(
        self, kind: str, watermark: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


# -- helpers shared by the OA connectors --------------------------------------------


def check_fresh(connector: str, sent_at: datetime, now: datetime) -> None:
    """Refuse a delivery whose timestamp is more than :data:`MAX_SKEW` from ``now``."""
    if abs(now - sent_at) > MAX_SKEW:
        raise SignatureError(
            f"stale timestamp {sent_at.isoformat()} (now {now.isoformat()})", connector=connector
        )


def check_replay(connector: str, event_id: str, seen: SeenFn) -> None:
    if seen(f"{connector}:{event_id}"):
        raise SignatureError(f"replayed event {event_id}", connector=connector)


def from_epoch(value: str | int | float, connector: str) -> datetime:
    """Seconds or milliseconds since the epoch (vendors use both) as aware UTC."""
    try:
        n = int(str(value).split(".")[0])
    except ValueError:
        raise SignatureError(f"bad timestamp {value!r}", connector=connector) from None
    if n > 10**11:  # milliseconds: seconds stay below 10**11 until the year 5138
        return datetime.fromtimestamp(n / 1000, UTC)
    return datetime.fromtimestamp(n, UTC)


def digest_id(*parts: object) -> str:
    """A stable id for vendors whose events carry none (same content = same id)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class RedisSeen:
    """A ``seen`` callable on Redis: ``SET key 1 NX EX ttl`` is atomic, so two web
    processes handed the same delivery at once cannot both accept it.

    The TTL only has to outlive the vendor's re-deliveries of one event (DingTalk and
    WeCom retry for hours at most); the engine commands behind the events are
    idempotent by ``event_id`` anyway, so this is the fast first line, not the last.
    """

    def __init__(self, client: Any, ttl: timedelta = timedelta(days=7),
                 prefix: str = "yinfin:seen:") -> None:
        self.client, self.ttl, self.prefix = client, int(ttl.total_seconds()), prefix

    def __call__(self, event_id: str) -> bool:
        return not self.client.set(self.prefix + event_id, 1, nx=True, ex=self.ttl)


class MemorySeen:
    """A ``seen`` callable backed by a set (tests, single process)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def __call__(self, event_id: str) -> bool:
        if event_id in self.ids:
            return True
        self.ids.add(event_id)
        return False
