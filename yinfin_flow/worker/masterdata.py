"""Master-data sync from the ERP, incrementally by watermark per connector and kind.

For each kind the connector supports (``accounts``, ``cost_centres``, ``projects``,
``partners``) :func:`sync_connector` asks ``changed_master_data(kind, watermark)``
(outside any transaction), then upserts the records through the ledger's own
import (:func:`yinfin_flow.ledger.masterdata.import_rows`: the same checks as a CSV
import) and stores the new watermark in the same transaction, so a failed apply is
read again next time. A record the ERP disabled or deleted arrives with
``active: false`` and becomes inactive here; nothing is ever deleted, so vouchers
that reference it stay readable.

``users`` (a connector, usually an OA, that lists it in ``master_data_kinds``) go
through the organisation directory's own import
(:func:`yinfin_flow.engine.directory.import_users`, all or none per page): records
``{code, name, email, department, manager, active}``; the connector's own user id is
kept in its column (``dingtalk_userid``, ``feishu_open_id``, ``wecom_userid``) so
tasks reach the right person there. A user the OA removed arrives inactive.

A connector's ``snapshot_kinds`` (the OA directories, :mod:`connectors.org`) are kinds
whose non-empty answer is the whole upstream population: what this connector brought
in before and the answer no longer holds (users with its id column set, cost centres
whose ``external_code`` starts with ``<connector>:``) is deactivated in the same
transaction. Cost-centre records may carry ``parent``, ``manager`` and ``external_code``.

``budgets`` are read but not applied: an ERP's budget header carries no amounts we
could book without a person choosing the lines, so the count is reported and
budgets stay with ``yinfin-flow budget import``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from connectors.base import MASTER_DATA_KINDS, ConnectorError
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import Company
from yinfin_flow.db.models.outbox import SyncWatermark
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import DomainError, ValidationError

from .dispatcher import ConnectorLookup, registry_lookup

log = logging.getLogger("yinfin_flow.worker.masterdata")

APPLIED = ("accounts", "cost_centres", "projects", "partners")
#: every kind a sync can be asked for: the ERP's master data, and an OA directory's
#: ``cost_centres`` (its departments) and ``users``
KINDS = (*MASTER_DATA_KINDS, "users")
_NAME_FIELDS = ("account_name", "cost_center_name", "project_name", "supplier_name", "name",
                "display_name")
_TYPES = {"asset": "asset", "liability": "liability", "equity": "equity", "income": "income",
          "expense": "expense", "资产": "asset", "负债": "liability", "权益": "equity",
          "收入": "income", "损益": "expense", "费用": "expense", "成本": "expense"}
MAX_PAGES = 100


def _company(db: Database, code: str | None) -> str:
    with db.unit_of_work(readonly=True) as s:
        codes = list(s.scalars(select(Company.code).order_by(Company.code)))
    if code:
        if code not in codes:
            raise ValidationError("company", f"unknown company {code!r}")
        return code
    if len(codes) != 1:
        raise ValidationError("company", "set YINFIN_SYNC_COMPANY: there is not exactly one company")
    return codes[0]


def to_row(kind: str, rec: dict[str, Any]) -> dict[str, str] | None:
    """An import row for one upstream record (None: nothing we can use)."""
    code = str(rec.get("code") or "").strip()
    if not code or len(code) > 64:
        return None
    row = {"code": code, "active": "true" if rec.get("active", True) else "false"}
    name = next((str(rec[f]) for f in _NAME_FIELDS if rec.get(f)), "")
    if name:
        row["name"] = name[:200]
    if kind == "accounts":
        raw = str(rec.get("type") or rec.get("root_type") or rec.get("account_type") or "").strip()
        t = _TYPES.get(raw.lower()) or _TYPES.get(raw.split("_")[0].lower()) or _TYPES.get(raw)
        if t:
            row["type"] = t
    if kind == "partners":
        row["kind"] = str(rec.get("kind") or "vendor")
    if kind == "cost_centres":
        row.update({k: str(rec[k] or "") for k in ("parent", "manager", "external_code") if k in rec})
    return row


def _apply(db: Database, connector: str, kind: str, company: str, rows: list[dict[str, Any]],
           watermark: str | None, snapshot: bool = False) -> dict[str, int]:
    from yinfin_flow.db.models.ledger import Account
    from yinfin_flow.ledger import masterdata

    counts = {"created": 0, "updated": 0, "skipped": 0}
    if kind == "users":
        return _apply_users(db, connector, company, rows, watermark, snapshot)
    with db.unit_of_work() as s:
        usable = []
        existing: set[str] = set()
        if kind == "accounts":
            comp = s.scalar(select(Company).where(Company.code == company))
            assert comp is not None
            existing = set(s.scalars(select(Account.code).where(Account.company_id == comp.id)))
        for rec in rows:
            row = None if kind not in APPLIED else to_row(kind, rec)
            # a new account needs a type and a name; an upstream one without is left out
            if row is not None and kind == "accounts" and row["code"] not in existing and (
                    "type" not in row or "name" not in row):
                row = None
            if row is None:
                counts["skipped"] += 1
                continue
            usable.append(row)
        # the last change to a code wins (a page may hold several versions of one record)
        by_code = {r["code"]: r for r in usable}
        if by_code and kind in APPLIED:
            done = masterdata.import_rows(s, company, kind, list(by_code.values()))
            counts["created"], counts["updated"] = done["created"], done["updated"]
        if snapshot:
            counts["deactivated"] = _deactivate_missing(s, connector, kind, company, rows)
        wm = s.get(SyncWatermark, (connector, kind), with_for_update=True)
        if wm is None:
            wm = SyncWatermark(connector=connector, kind=kind, records=0)
            s.add(wm)
        wm.watermark, wm.synced_at, wm.last_error = watermark, utcnow(), None
        wm.records = (wm.records or 0) + len(rows)
    return counts


_USER_COLUMN = {"dingtalk": "dingtalk_userid", "feishu": "feishu_open_id", "wecom": "wecom_userid"}


def _deactivate_missing(s: Any, connector: str, kind: str, company: str,
                        rows: list[dict[str, Any]]) -> int:
    """A snapshot kind: deactivate what ``connector`` brought in before and ``rows`` lacks.

    No rows is no snapshot (nothing changed, or nothing visible): nothing is deactivated.
    """
    from yinfin_flow.db.models import CostCentre
    from yinfin_flow.db.models.org import User

    if not rows:
        return 0
    present = {str(r.get("code") or "").strip() for r in rows}
    comp = select(Company.id).where(Company.code == company).scalar_subquery()
    if kind == "users" and connector in _USER_COLUMN:
        gone = list(s.scalars(select(User).where(
            User.company_id == comp, User.active.is_(True),
            getattr(User, _USER_COLUMN[connector]).is_not(None), User.id.not_in(present))))
    elif kind == "cost_centres":
        gone = list(s.scalars(select(CostCentre).where(
            CostCentre.company_id == comp, CostCentre.active.is_(True),
            CostCentre.external_code.startswith(f"{connector}:", autoescape=True),
            CostCentre.code.not_in(present))))
    else:
        return 0
    for row in gone:
        row.active = False
        if kind == "users":
            row.updated_at = utcnow()
    s.flush()
    return len(gone)


def _apply_users(db: Database, connector: str, company: str, rows: list[dict[str, Any]],
                 watermark: str | None, snapshot: bool = False) -> dict[str, int]:
    from yinfin_flow.domain.org import UserSpec
    from yinfin_flow.engine import directory

    column = _USER_COLUMN.get(connector)
    specs, skipped = [], 0
    latest = {str(r.get("code") or "").strip(): r for r in rows}  # the last change wins
    for i, (code, r) in enumerate(latest.items(), start=1):
        if not code or not r.get("name"):
            skipped += 1
            continue
        external = {column: str(r.get("external_id") or code)} if column else {}
        specs.append((i, UserSpec(id=code[:64], name=str(r["name"])[:200], company=company,
                                  department=r.get("department") or None,
                                  manager=r.get("manager") or None, email=r.get("email") or None,
                                  active=bool(r.get("active", True)), external=external)))
    codes = {i: spec.id for i, spec in specs}
    with db.unit_of_work() as s:
        try:
            result = directory.import_users(s, specs, actor=f"sync:{connector}") if specs else None
        except DomainError as err:  # name the OA's records, not rows of a file
            for e in err.details.get("errors") or ():
                if isinstance(e, dict) and e.get("row") in codes:
                    e["record"] = codes[e["row"]]
            raise
        gone = _deactivate_missing(s, connector, "users", company, rows) if snapshot else 0
        wm = s.get(SyncWatermark, (connector, "users"), with_for_update=True)
        if wm is None:
            wm = SyncWatermark(connector=connector, kind="users", records=0)
            s.add(wm)
        wm.watermark, wm.synced_at, wm.last_error = watermark, utcnow(), None
        wm.records = (wm.records or 0) + len(rows)
    out = {"created": len(result.created) if result else 0,
           "updated": len(result.updated) if result else 0, "skipped": skipped}
    return {**out, "deactivated": gone} if snapshot else out


def _fail(db: Database, connector: str, kind: str, error: str) -> None:
    with db.unit_of_work() as s:
        wm = s.get(SyncWatermark, (connector, kind), with_for_update=True)
        if wm is None:
            wm = SyncWatermark(connector=connector, kind=kind, records=0)
            s.add(wm)
        wm.last_error = error[:2000]


def _explained(err: DomainError, shown: int = 5) -> str:
    """The error with the first few of its per-record problems (an import lists them all)."""
    problems = [e for e in err.details.get("errors") or () if isinstance(e, dict)]
    if not problems:
        return err.message
    parts = [f"{e['record'] if 'record' in e else 'row ' + str(e.get('row'))}, "
             f"{e.get('column')}: {e.get('problem')}" for e in problems[:shown]]
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{err.message}: {'; '.join(parts)}{more}"


def sync_kind(db: Database, name: str, kind: str, company: str, connector: Any) -> dict[str, Any]:
    """Read ``kind`` page by page from its stored watermark; apply and advance each page."""
    total = {"records": 0, "created": 0, "updated": 0, "skipped": 0}
    for _ in range(MAX_PAGES):
        with db.unit_of_work(readonly=True) as s:
            wm = s.get(SyncWatermark, (name, kind))
            watermark = wm.watermark if wm else None
        try:
            records, new_mark = connector.changed_master_data(kind, watermark)
        except ConnectorError as err:
            _fail(db, name, kind, err.message)
            log.warning("master data %s from %s failed: %s", kind, name, err.message)
            return {**total, "error": err.message}
        try:
            counts = _apply(db, name, kind, company, list(records), new_mark,
                            kind in getattr(connector, "snapshot_kinds", ()))
        except DomainError as err:
            message = _explained(err)
            _fail(db, name, kind, f"{err.code}: {message}")
            log.warning("master data %s from %s refused: %s", kind, name, message)
            return {**total, "error": message}
        total["records"] += len(records)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        if not records or new_mark == watermark:
            break
    return total


def sync_connector(db: Database, name: str, *, company: str | None = None,
                   kinds: tuple[str, ...] | None = None,
                   lookup: ConnectorLookup = registry_lookup) -> dict[str, Any]:
    """Sync every kind ``name`` supports (or those of ``kinds`` it does, in its order:
    departments before the users who belong to them) into ``company``; per-kind counts.

    A kind the connector does not offer is refused (:class:`ValidationError` on ``kind``)
    before anything is read.
    """
    comp = _company(db, company)
    try:
        connector = lookup(name)
    except LookupError as err:  # unknown, or its settings are missing: say which
        raise ValidationError("connector", str(err), connector=name) from None
    offered = tuple(getattr(connector, "master_data_kinds", ()))
    if kinds:
        unknown = [k for k in kinds if k not in offered]
        if unknown:
            raise ValidationError("kind", f"{name} offers {', '.join(offered) or 'no master data'}, "
                                          f"not {', '.join(unknown)}", connector=name)
    wanted = [k for k in offered if not kinds or k in kinds]
    return {kind: sync_kind(db, name, kind, comp, connector) for kind in wanted}


def watermarks(db: Database) -> list[dict[str, Any]]:
    with db.unit_of_work(readonly=True) as s:
        return [{"connector": w.connector, "kind": w.kind, "watermark": w.watermark,
                 "synced_at": w.synced_at, "records": w.records, "last_error": w.last_error}
                for w in s.scalars(select(SyncWatermark).order_by(SyncWatermark.connector,
                                                                  SyncWatermark.kind))]
