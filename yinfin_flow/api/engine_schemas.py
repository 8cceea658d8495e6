"""Schemas of the request and task resources (the contract, and the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .attachment_schemas import AttachmentSchema
from .fields import AmountString, Code, Id, QueryId, Text

DICT = fields.Dict(keys=fields.String())


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PaginationSchema(Schema):
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class RequestQuery(PageQuery):
    state = Code(load_default=None)
    workflow = Code(load_default=None)
    requester = Code(load_default=None)
    submitted_from = fields.Date(load_default=None, metadata={"description": "on or after (UTC date)"})
    submitted_to = fields.Date(load_default=None, metadata={"description": "on or before (UTC date)"})


class SubmitInSchema(Schema):
    workflow = Code(required=True, metadata={"example": "expense"})
    title = Text(required=True, min_length=1, max_length=200)
    company = Code(required=True, max_length=32, metadata={"example": "ACME"})
    department = Code(load_default=None)
    form = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), required=True,
                       metadata={"description": "the workflow's form; amounts as strings"})
    draft = fields.Boolean(load_default=False, metadata={"description": "keep as a draft"})
    override_reason = Text(load_default=None, max_length=500)


class CommentInSchema(Schema):
    comment = Text(load_default=None, max_length=2000)


class ResubmitInSchema(CommentInSchema):
    changes = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), load_default=None,
                          metadata={"description": "form fields to change before resubmitting"})
    override_reason = Text(load_default=None, max_length=500)


class InvoiceLineInSchema(Schema):
    ref = Code(required=True, metadata={"description": "the form line the invoice covers"})
    amount = AmountString(required=True)
    tax_amount = AmountString(load_default=None)


class EventInSchema(CommentInSchema):
    event = Code(required=True, metadata={"example": "pay"})
    invoice = Code(load_default=None, metadata={
        "description": "match_invoice: the invoice number (one voucher per invoice)"})
    lines = fields.List(fields.Nested(InvoiceLineInSchema), load_default=None,
                        validate=validate.Length(min=1, max=200), metadata={
                            "description": "match_invoice: what this invoice covers; none: the rest"})
    partner = Code(load_default=None, metadata={"description": "the supplier on the invoice"})


class TextInSchema(Schema):
    text = Text(required=True, min_length=1, max_length=2000)


class ActInSchema(CommentInSchema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1),
                             metadata={"description": "the request version you saw (409 if it moved)"})


class RejectInSchema(ActInSchema):
    comment = Text(required=True, min_length=1, max_length=2000)


class SendBackInSchema(ActInSchema):
    target = Code(load_default="submitter",
                  metadata={"description": "submitter, previous, or an earlier step id"})


class TaskTransferInSchema(ActInSchema):
    to = Code(required=True, metadata={"description": "the user who takes the task over"})


class AddApproverInSchema(ActInSchema):
    users = fields.List(Code(), required=True, validate=validate.Length(min=1, max=20))
    position = fields.String(load_default="after", validate=validate.OneOf(["before", "after", "parallel"]))


class TaskSchema(Schema):
    id = fields.Integer(required=True)
    request_id = fields.Integer(required=True)
    step = fields.String(required=True)
    round = fields.Integer(required=True)
    assignee = fields.String(required=True)
    on_behalf_of = fields.String(allow_none=True)
    status = fields.String(required=True)
    kind = fields.String(required=True)
    added_by = fields.String(allow_none=True)
    warnings = fields.List(DICT)
    comment = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    decided_at = fields.String(allow_none=True)
    urged = fields.Integer(allow_none=True)


class RequestSummarySchema(Schema):
    id = fields.Integer(required=True)
    workflow = fields.String(required=True)
    workflow_version = fields.Integer(required=True)
    title = fields.String(required=True)
    requester = fields.String(required=True)
    company = fields.String(required=True)
    department = fields.String(allow_none=True)
    state = fields.String(required=True)
    amount = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    version = fields.Integer(required=True)
    submitted_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)


class RequestPageSchema(Schema):
    items = fields.List(fields.Nested(RequestSummarySchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


class ImpactLineSchema(Schema):
    """One controlling line: what is available now and after this step approves."""

    line_id = fields.Integer(required=True)
    line = fields.String(required=True)
    rule_line_id = fields.Integer(allow_none=True)
    mode = fields.String(required=True)
    currency = fields.String(required=True)
    held = fields.String(required=True, metadata={"description": "what this request holds on the line"})
    available = fields.String(required=True)
    available_if_approved = fields.String(required=True)
    blocked = fields.Boolean(required=True, metadata={"description": "hard control would refuse approval"})
    level = fields.String(allow_none=True)
    usage_percent = fields.String(allow_none=True)


class ImpactSchema(Schema):
    holds_budget = fields.Boolean(required=True)
    reservations = fields.List(DICT, required=True)
    lines = fields.List(fields.Nested(ImpactLineSchema), required=True)


class RequestDetailSchema(RequestSummarySchema):
    form = DICT
    route = fields.List(fields.String())
    current_step = fields.String(allow_none=True)
    round = fields.Integer()
    override = fields.Dict(allow_none=True)
    tasks = fields.List(fields.Nested(TaskSchema))
    history = fields.List(DICT)
    cc = fields.List(DICT)
    attachments = fields.List(fields.Nested(AttachmentSchema))
    budget_impact = fields.Nested(ImpactSchema, required=True)


class TaskDetailSchema(TaskSchema):
    request = fields.Nested(RequestDetailSchema, required=True)


class RequestOutcomeSchema(RequestSummarySchema):
    current_step = fields.String(allow_none=True)
    budget_impact = fields.Nested(ImpactSchema, required=True)


class TaskOutcomeSchema(TaskSchema):
    """What an action left: the task, its request's state and budget impact (the full
    history is one ``GET /tasks/<id>`` away)."""

    request = fields.Nested(RequestOutcomeSchema, required=True)


class InboxQuery(PageQuery):
    status = fields.String(load_default="pending",
                           validate=validate.OneOf(["pending", "waiting", "held", "approved", "rejected",
                                                    "sent_back", "transferred", "cancelled",
                                                    "auto_approved"]))


class InboxItemSchema(TaskSchema):
    request = fields.Nested(RequestSummarySchema, required=True)


class InboxSchema(Schema):
    items = fields.List(fields.Nested(InboxItemSchema), required=True)


class UrgeSchema(Schema):
    urged_tasks = fields.List(fields.Integer(), required=True)


class TrailSchema(Schema):
    trail = fields.Dict(required=True, metadata={
        "description": "budget entries and vouchers of the request (ledger.reports.trail)"})


class IdArgs(Schema):
    id = Id()


__all__ = ["QueryId"]
