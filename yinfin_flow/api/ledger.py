"""The books over HTTP: ``/journal`` (vouchers: list, get, reverse), ``/periods`` (list,
open, close) and ``/reports`` (trial balance, budget vs actual: on the read database when
``YINFIN_DATABASE_READ_URL`` is set). Finance changes them;
finance and admins read them (see :mod:`yinfin_flow.security.policy`)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import EXCLUDE, Schema, fields, validate

from yinfin_flow.domain.money import show
from yinfin_flow.ledger import periods, reports, reversal, vouchers

from ..extension import state
from .blueprint import Blueprint
from .engine_schemas import PageQuery, PaginationSchema
from .errors import register_blueprint_handlers
from .fields import Code, Text
from .identity import require_actor

AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}
EID = "<int(min=1, max=2147483647):entry_id>"
PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

journal = Blueprint("journal", __name__, url_prefix="/journal", description="Vouchers (凭证).")
period_blp = Blueprint("periods", __name__, url_prefix="/periods", description="Accounting periods.")
report_blp = Blueprint("reports", __name__, url_prefix="/reports", description="Ledger reports.")
for _b in (journal, period_blp, report_blp):
    register_blueprint_handlers(_b)
blps = [journal, period_blp, report_blp]


class CompanyQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    company = Code(required=True, max_length=32)


class EntryQuery(PageQuery, CompanyQuery):
    period = fields.String(load_default=None, validate=validate.Regexp(PERIOD))
    document_id = Code(load_default=None)


class VoucherSchema(Schema):
    id = fields.Integer(required=True)
    voucher = fields.String(required=True)
    period = fields.String(required=True)
    posting_date = fields.Date(required=True)
    summary = fields.String(required=True)
    document = fields.String(allow_none=True)
    reverses_id = fields.Integer(allow_none=True)
    posted_by = fields.String(required=True)
    currency = fields.String(required=True)
    total = fields.String(required=True, metadata={"description": "sum of debits, base currency"})


class VoucherPageSchema(Schema):
    items = fields.List(fields.Nested(VoucherSchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


class VoucherLineSchema(Schema):
    line_no = fields.Integer(required=True)
    kind = fields.String(required=True)
    account_code = fields.String(required=True)
    account_name = fields.String(required=True)
    debit = fields.String(required=True)
    credit = fields.String(required=True)
    currency = fields.String(required=True)
    amount = fields.String(required=True)
    rate = fields.String(required=True)
    cost_centre = fields.String(allow_none=True)
    project = fields.String(allow_none=True)
    partner = fields.String(allow_none=True)
    memo = fields.String(allow_none=True)


class VoucherDetailSchema(VoucherSchema):
    lines = fields.List(fields.Nested(VoucherLineSchema), required=True)


class ReverseInSchema(Schema):
    reason = Text(required=True, min_length=1, max_length=300)
    posting_date = fields.Date(load_default=None)


class ReverseOutSchema(Schema):
    entry_id = fields.Integer(required=True)
    voucher = fields.String(required=True)
    period = fields.String(required=True)
    posting_date = fields.String(required=True)
    replayed = fields.Boolean(required=True)


class PeriodSchema(Schema):
    code = fields.String(required=True)
    fiscal_year = fields.Integer(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    status = fields.String(required=True)
    closed_by = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)


class PeriodListSchema(Schema):
    items = fields.List(fields.Nested(PeriodSchema), required=True)


class CloseThroughInSchema(CompanyQuery):
    through = fields.String(required=True, validate=validate.Regexp(PERIOD), metadata={"example": "2026-11"})


class CloseThroughSchema(Schema):
    closed = fields.List(fields.Nested(PeriodSchema), required=True,
                         metadata={"description": "the months this call closed, oldest first"})
    items = fields.List(fields.Nested(PeriodSchema), required=True,
                        metadata={"description": "every month of the company afterwards"})


class ReportSchema(Schema):
    report = fields.Dict(required=True, metadata={"description": "the report (money as strings)"})


class TrialBalanceQuery(CompanyQuery):
    period = fields.String(required=True, validate=validate.Regexp(PERIOD))


class BvaQuery(CompanyQuery):
    period = fields.String(load_default=None, validate=validate.Regexp(PERIOD))
    year = fields.Integer(load_default=None, validate=validate.Range(min=1900, max=9999))


def _shown(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "total": show(v["total"])}


@journal.get("/entries")
@journal.arguments(EntryQuery, location="query", as_kwargs=True)
@journal.response(200, VoucherPageSchema)
@journal.doc(**AUTH)
def list_entries(company: str, period: str | None, document_id: str | None, page: int,
                 page_size: int) -> dict[str, Any]:
    """A company's vouchers in voucher order, optionally for one period or document."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        found = vouchers.list_vouchers(s, company, vouchers.VoucherFilter(period=period, document_id=document_id),
                                       page=page, page_size=page_size)
    return {**found, "items": [_shown(v) for v in found["items"]]}


@journal.get(f"/entries/{EID}")
@journal.response(200, VoucherDetailSchema)
@journal.doc(**AUTH)
def get_entry(entry_id: int) -> dict[str, Any]:
    """One voucher with its lines."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        v = vouchers.voucher(s, entry_id)
    lines = [{k: (show(val) if k in ("debit", "credit", "amount") else format(val, "f") if k == "rate" else val)
              for k, val in ln.items()} for ln in v["lines"]]
    return {**_shown(v), "lines": lines}


@journal.post(f"/entries/{EID}/reverse")
@journal.arguments(ReverseInSchema)
@journal.response(201, ReverseOutSchema)
@journal.doc(**AUTH)
def reverse_entry(body: dict[str, Any], entry_id: int) -> dict[str, Any]:
    """Post the reversing voucher (红字冲销) of a voucher; once per voucher."""
    ident = require_actor()
    # One reversal per voucher whatever the caller's key: a second try answers the first.
    key = f"api:reverse:{entry_id}"
    with state(current_app).db.unit_of_work() as s:
        result = reversal.reverse(s, entry_id, key=key, actor=ident.id, reason=body["reason"],
                                  posting_date=body["posting_date"])
        return result.to_dict()


@period_blp.get("")
@period_blp.arguments(CompanyQuery, location="query", as_kwargs=True)
@period_blp.response(200, PeriodListSchema)
@period_blp.doc(**AUTH)
def list_periods(company: str) -> dict[str, Any]:
    """A company's accounting periods, oldest first."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return {"items": periods.list_periods(s, company)}


CODE = "<string(length=7):code>"  # YYYY-MM; the ledger checks the month


@period_blp.post(f"/{CODE}/open")
@period_blp.arguments(CompanyQuery)
@period_blp.response(200, PeriodSchema)
@period_blp.doc(**AUTH)
def open_period(body: dict[str, Any], code: str) -> Any:
    """Open a month (creating it if needed); re-opening a closed month is allowed (反结账).

    Months reopen from the latest backwards: `409 period_out_of_order` names the
    latest closed month while a later month than this one is closed.
    """
    require_actor()
    with state(current_app).db.unit_of_work() as s:
        return periods.open_period(s, body["company"], code)


@period_blp.post(f"/{CODE}/close")
@period_blp.arguments(CompanyQuery)
@period_blp.response(200, PeriodSchema)
@period_blp.doc(**AUTH)
def close_period(body: dict[str, Any], code: str) -> Any:
    """Close a month; refused while any of its vouchers waits for (or failed) ERP sync.

    Months close in order: `409 period_out_of_order` names the earliest month before
    this one that is still open.
    """
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        return periods.close_period(s, body["company"], code, actor=ident.id)


@period_blp.post("/close")
@period_blp.arguments(CloseThroughInSchema)
@period_blp.response(200, CloseThroughSchema)
@period_blp.doc(**AUTH)
def close_through(body: dict[str, Any]) -> dict[str, Any]:
    """Close every open month up to and including ``through``, oldest first, in one action.

    All or nothing: `409 period_close_blocked` names every month whose vouchers wait for
    (or failed) ERP sync (`details.blocking`), and nothing closes.
    """
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        closed = periods.close_through(s, body["company"], body["through"], actor=ident.id)
        return {"closed": closed, "items": periods.list_periods(s, body["company"])}


@report_blp.get("/trial-balance")
@report_blp.arguments(TrialBalanceQuery, location="query", as_kwargs=True)
@report_blp.response(200, ReportSchema)
@report_blp.doc(**AUTH)
def trial_balance(company: str, period: str) -> dict[str, Any]:
    """Opening, turnover and closing per account for a month (base currency)."""
    with state(current_app).reads.unit_of_work(readonly=True) as s:
        return {"report": reports.to_jsonable(reports.trial_balance(s, company, period))}


@report_blp.get("/budget-vs-actual")
@report_blp.arguments(BvaQuery, location="query", as_kwargs=True)
@report_blp.response(200, ReportSchema)
@report_blp.doc(**AUTH)
def budget_vs_actual(company: str, period: str | None, year: int | None) -> dict[str, Any]:
    """Budget buckets beside the ledger per cost centre and account (a month or a year)."""
    with state(current_app).reads.unit_of_work(readonly=True) as s:
        return {"report": reports.to_jsonable(reports.budget_vs_actual(s, company, period=period, year=year))}
