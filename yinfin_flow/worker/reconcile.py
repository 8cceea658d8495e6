"""Reconciliation: every voucher we posted in a period vs the ERP's copy.

For each journal entry of the period (every company, or one) the report says whether
the ERP has it and whether it matches: same base-currency totals and the same lines
(account, debit, credit) as a multiset — order and line splitting aside, an ERP
that books 1 line of 100 where we booked 2 of 50 is reported too, because the
books then differ in detail. Problems:

``not_queued``  no outbox message for this ERP (posted before it was configured)
``pending``     queued, not delivered yet (``in_flight`` included)
``dead``        given up on: see the dead letters
``missing``     delivered, but the ERP no longer finds it (deleted there?)
``amounts``     totals differ
``accounts``    totals agree but the lines do not
``unreadable``  the ERP could not be asked (network, a malformed answer): try again later
``duplicate``   the ERP holds two or more live vouchers carrying this voucher's key
``erp_only``    the ERP holds a voucher dated in the period carrying our key prefix
                that no voucher of ours in the period has (``entry_id`` 0)

The last two come from the ERP's list of vouchers carrying our keys in the period
(the connector's ``keyed_vouchers``; an ERP that cannot list them is not asked).
Each run's counts per problem are kept per ERP (:class:`ReconcileRun`): ``outbox
status`` and ``GET /api/v1/health`` show the last one.

A voucher whose delivered message the retention purge has deleted
(:mod:`.retention`) is compared all the same: the ERP's number comes from the
ledger's sync state and our side from the posted entry, which never changes.

Reading from the ERP happens outside any transaction.
"""

from __future__ import annotations

import calendar
import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connectors.base import ConnectorError, Voucher
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import Company
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.domain.errors import NotFound, ValidationError

from . import messages
from .dispatcher import ConnectorLookup, registry_lookup
from .handlers import voucher_key

log = logging.getLogger("yinfin_flow.worker.reconcile")


@dataclass(frozen=True)
class Difference:
    entry_id: int
    voucher: str | None
    problem: str
    detail: str
    erp_voucher_id: str | None = None
    ours_debit: Decimal | None = None
    erp_debit: Decimal | None = None


@dataclass
class Report:
    period: str
    target: str
    checked: int = 0
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["period", "target", "entry_id", "voucher", "problem", "detail",
                    "erp_voucher_id", "ours_debit", "erp_debit"])
        for d in self.differences:
            w.writerow([self.period, self.target, d.entry_id, d.voucher or "", d.problem, d.detail,
                        d.erp_voucher_id or "", "" if d.ours_debit is None else d.ours_debit,
                        "" if d.erp_debit is None else d.erp_debit])
        return out.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "target": self.target, "checked": self.checked,
                "matched": self.matched,
                "differences": [{**d.__dict__, "ours_debit": _s(d.ours_debit),
                                 "erp_debit": _s(d.erp_debit)} for d in self.differences]}


def _s(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _lines(v: Voucher) -> Counter[tuple[str, Decimal, Decimal]]:
    q = Decimal("0.01")
    return Counter((ln.account, ln.debit.quantize(q), ln.credit.quantize(q)) for ln in v.lines)


def compare(ours: Voucher, theirs: Voucher) -> tuple[str, str] | None:
    """``(problem, detail)`` when the ERP's voucher differs from ours, else None."""
    (od, oc), (td, tc) = ours.totals(), theirs.totals()
    q = Decimal("0.01")
    if od.quantize(q) != td.quantize(q) or oc.quantize(q) != tc.quantize(q):
        return "amounts", f"ours debit {od} credit {oc}, ERP debit {td} credit {tc}"
    mine, erp = _lines(ours), _lines(theirs)
    if mine != erp:
        only_ours = sorted(f"{a} {d}/{c}" for a, d, c in (mine - erp).elements())
        only_erp = sorted(f"{a} {d}/{c}" for a, d, c in (erp - mine).elements())
        return "accounts", f"only ours: {', '.join(only_ours) or '-'}; only ERP: {', '.join(only_erp) or '-'}"
    return None


def reconcile(db: Database, period: str, target: str, *, company: str | None = None,
              lookup: ConnectorLookup = registry_lookup) -> Report:
    """Compare every voucher of ``period`` (``YYYY-MM``) with ``target``'s copy."""
    from yinfin_flow.ledger.periods import parse_code
    from yinfin_flow.ledger.posting import voucher_label

    year, month = parse_code(period)
    try:  # a name that is unknown or not configured is the caller's mistake, not the ERP's
        connector = lookup(target)
    except LookupError as err:
        raise ValidationError("connector", str(err), connector=target) from None
    with db.unit_of_work(readonly=True) as s:
        if company and s.scalar(select(Company.id).where(Company.code == company)) is None:
            raise NotFound(f"no company {company!r}", field="company")
        stmt = (select(JournalEntry.id, JournalEntry.voucher_word, JournalEntry.voucher_number,
                       Company.code)
                .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
                .join(Company, Company.id == JournalEntry.company_id)
                .where(AccountingPeriod.code == period).order_by(JournalEntry.id))
        if company:
            stmt = stmt.where(Company.code == company)
        entries = s.execute(stmt).all()
        ids = [e[0] for e in entries]
        sent: dict[int, OutboxMessage] = {}
        for i in range(0, len(ids), 500):  # the period's vouchers only, by ordering scope
            keys = [f"voucher:{eid}" for eid in ids[i:i + 500]]
            for m in s.scalars(select(OutboxMessage).where(
                    OutboxMessage.target == target, OutboxMessage.kind == "erp_voucher",
                    OutboxMessage.document_key.in_(keys)).order_by(OutboxMessage.id)):
                sent[int(m.payload.get("entry_id", 0))] = m
        purged = _synced_without_message(s, [eid for eid in ids if eid not in sent], target)
        rebuilt = _from_ledger(s, period, {code for eid, _, _, code in entries if eid in purged})
        plan_data: list[tuple[int, str, Any]] = []
        for eid, word, num, _ in entries:
            label, msg = voucher_label(word, period, num), sent.get(eid)
            info: tuple[Any, ...] | None = None
            if msg is not None:
                info = (msg.status, msg.external_id, msg.idempotency_key,
                        messages.voucher_from_json(msg.payload["voucher"])
                        if msg.status == "delivered" else None,
                        msg.payload.get("label"), msg.last_error)
            elif eid in purged and eid in rebuilt:
                info = ("delivered", purged[eid], None, rebuilt[eid], None, None)
            plan_data.append((eid, label, info))
        keys = {eid: (sent[eid].idempotency_key if eid in sent else voucher_key(code, eid))
                for eid, _, _, code in entries}
    report = Report(period, target)
    for eid, label, info in plan_data:
        report.checked += 1
        if info is None:
            report.differences.append(Difference(eid, label, "not_queued", f"never sent to {target}"))
            continue
        status, external, key, ours, sent_label, last_error = info
        label = sent_label or label
        if status in ("pending", "in_flight"):
            report.differences.append(Difference(eid, label, "pending", f"{status}, not delivered yet"))
            continue
        if status == "dead":
            report.differences.append(Difference(eid, label, "dead", last_error or "dead letter"))
            continue
        try:
            theirs = connector.read_voucher(external or key)
        except (ConnectorError, LookupError) as err:
            report.differences.append(Difference(eid, label, "unreadable", str(err)[:500], external))
            continue
        except Exception as err:  # noqa: BLE001 - one odd answer must not end the whole run
            log.exception("reading voucher %s back from %s failed", external or key, target)
            report.differences.append(Difference(eid, label, "unreadable",
                                                 f"{type(err).__name__}: {err}"[:500], external))
            continue
        if theirs is None:
            report.differences.append(Difference(eid, label, "missing",
                                                 f"{target} has no voucher {external or key}",
                                                 external, ours.totals()[0]))
            continue
        diff = compare(ours, theirs)
        if diff is None:
            report.matched += 1
        else:
            report.differences.append(Difference(eid, label, diff[0], diff[1], external,
                                                 ours.totals()[0], theirs.totals()[0]))
    labels = {eid: label for eid, label, _ in plan_data}
    last_day = date(year, month, calendar.monthrange(year, month)[1])
    _keyed(report, connector, date(year, month, 1), last_day, keys, labels)
    remember(db, report)
    return report


def _keyed(report: Report, connector: Any, start: date, end: date, keys: dict[int, str],
           labels: dict[int, str]) -> None:
    """Add ``duplicate`` and ``erp_only`` findings from the ERP's own list of the
    period's vouchers that carry our keys."""
    listing = getattr(connector, "keyed_vouchers", None)
    if listing is None:
        return
    token = getattr(connector, "key_token", lambda k: k)
    try:
        found = listing(start, end)
    except (ConnectorError, LookupError) as err:
        report.differences.append(Difference(0, None, "unreadable",
                                             f"listing the ERP's keyed vouchers: {err}"[:500]))
        return
    by_token: dict[str, list[str]] = {}
    for tok, number in found:
        by_token.setdefault(tok, []).append(number)
    ours = {token(k): eid for eid, k in keys.items()}
    for tok, numbers in sorted(by_token.items()):
        names = ", ".join(sorted(numbers))
        eid = ours.get(tok)
        if eid is None:
            for number in sorted(numbers):
                report.differences.append(Difference(
                    0, None, "erp_only", f"ERP voucher {number} carries our key {tok}, which "
                    f"no voucher of ours in {report.period} has", number))
        elif len(numbers) > 1:
            report.differences.append(Difference(
                eid, labels.get(eid), "duplicate",
                f"{len(numbers)} ERP vouchers carry our key {tok}: {names}", names[:64]))


def remember(db: Database, report: Report) -> None:
    """Keep this run's counts per problem as the target's last reconciliation."""
    from yinfin_flow.db.models.outbox import ReconcileRun
    from yinfin_flow.db.types import utcnow

    counts = dict(Counter(d.problem for d in report.differences))
    with db.unit_of_work() as s:
        row = s.get(ReconcileRun, report.target, with_for_update=True)
        if row is None:
            row = ReconcileRun(target=report.target)
            s.add(row)
        row.period, row.finished_at = report.period, utcnow()
        row.checked, row.matched, row.findings = report.checked, report.matched, counts


def last_runs(session: Any, targets: list[str] | tuple[str, ...] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Target -> its last reconciliation (period, when, checked, matched, findings:
    the count of each problem found; empty when everything matched)."""
    from yinfin_flow.db.models.outbox import ReconcileRun

    stmt = select(ReconcileRun).order_by(ReconcileRun.target)
    if targets is not None:
        stmt = stmt.where(ReconcileRun.target.in_(list(targets)))
    return {r.target: {"period": r.period, "finished_at": r.finished_at.isoformat(),
                       "checked": r.checked, "matched": r.matched,
                       "findings": dict(r.findings or {})}
            for r in session.scalars(stmt)}


def _synced_without_message(s: Any, entry_ids: list[int], target: str) -> dict[int, str]:
    """Entry id -> the ERP's voucher id, for vouchers synced to ``target`` whose message is gone."""
    from yinfin_flow.db.models.ledger import JournalSync

    out: dict[int, str] = {}
    for i in range(0, len(entry_ids), 500):
        out.update((eid, ext) for eid, ext in s.execute(
            select(JournalSync.entry_id, JournalSync.erp_voucher_id).where(
                JournalSync.entry_id.in_(entry_ids[i:i + 500]), JournalSync.target == target,
                JournalSync.status == "synced", JournalSync.erp_voucher_id.is_not(None))))
    return out


def _from_ledger(s: Any, period: str, companies: set[str]) -> dict[int, Voucher]:
    """Entry id -> the posted voucher as sent (the ledger never changes a posted entry)."""
    from connectors.ledger import voucher_from_rows
    from yinfin_flow.ledger.exports import voucher_rows

    out: dict[int, Voucher] = {}
    for code in sorted(companies):
        by_entry: dict[int, list[Any]] = {}
        for row in voucher_rows(s, code, period):
            by_entry.setdefault(row.entry_id, []).append(row)
        out.update((eid, voucher_from_rows(rows)) for eid, rows in by_entry.items())
    return out


def write_xlsx(report: Report, path: Any) -> None:
    """The differences as a one-sheet workbook (same columns as :meth:`Report.to_csv`)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = f"reconcile {report.period}"[:31]
    for row in csv.reader(io.StringIO(report.to_csv())):
        ws.append(row)
    wb.save(path)
