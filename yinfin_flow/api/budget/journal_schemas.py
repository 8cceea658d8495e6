"""Marshmallow schemas for budget journal proposals (four eyes on adjustments, transfers
and imports)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from yinfin_flow.db.models.journal_proposals import KINDS, STATUSES

from ..fields import Money, Text
from .schemas import PageInfo, PageQuery


class JournalDecisionInSchema(Schema):
    comment = Text(load_default=None, allow_none=True, max_length=2000)


class JournalRejectInSchema(Schema):
    comment = Text(required=True, min_length=1, max_length=2000,
                   metadata={"description": "why the proposal is refused"})


class JournalQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES),
                           metadata={"description": "pending: what waits for a reviewer"})
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))


class ImportInSchema(Schema):
    """A budget file (CSV or XLSX) as base64, with the columns `budget import` takes."""

    filename = Text(required=True, min_length=5, max_length=200,
                    metadata={"example": "budgets-2026.xlsx", "description": "ends in .csv or .xlsx"})
    content = fields.String(required=True, validate=validate.Length(min=1, max=20_000_000),
                            metadata={"description": "the file, base64-encoded"})
    reason = Text(load_default=None, allow_none=True, max_length=2000)
    dry_run = fields.Boolean(load_default=False,
                             metadata={"description": "answer the plan; propose and book nothing"})


class LineChangeSchema(Schema):
    line_id = fields.Integer(required=True)
    line = fields.String(required=True, allow_none=True)
    currency = fields.String(required=True)
    budget_before = Money(required=True, metadata={"description": "when it was proposed"})
    delta = Money(required=True)
    budget_after = Money(required=True)


class AdjustedSchema(Schema):
    line = fields.String(required=True)
    delta = Money(required=True)
    currency = fields.String(required=True)


class ImportPlanSchema(Schema):
    """What an import does: lines created, adjusted by how much, unchanged."""

    created = fields.List(fields.String(), required=True)
    adjusted = fields.List(fields.Nested(AdjustedSchema), required=True)
    unchanged = fields.Integer(required=True)
    periods_created = fields.List(fields.String(), required=True)


class ImportDryRunSchema(Schema):
    dry_run = fields.Boolean(required=True)
    source = fields.String(required=True)
    plan = fields.Nested(ImportPlanSchema, required=True)


class JournalProposalSchema(Schema):
    """A proposed budget journal and what became of it."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    reason = fields.String(required=True)
    journal_kind = fields.String(required=True, allow_none=True,
                                 metadata={"description": "an adjustment's kind: original or adjustment"})
    amount = Money(required=True, allow_none=True)
    currency = fields.String(required=True, allow_none=True)
    source = fields.String(required=True, allow_none=True, metadata={"description": "an import's file"})
    changes = fields.List(fields.Nested(LineChangeSchema), required=True,
                          metadata={"description": "each line's budget before and after"})
    plan = fields.Nested(ImportPlanSchema, required=True, allow_none=True)
    proposed_by = fields.String(required=True)
    proposed_at = fields.DateTime(required=True)
    decided_by = fields.String(required=True, allow_none=True)
    decided_at = fields.DateTime(required=True, allow_none=True)
    comment = fields.String(required=True, allow_none=True)
    movement_ids = fields.List(fields.Integer(), required=True, allow_none=True)


class JournalProposalPageSchema(Schema):
    items = fields.List(fields.Nested(JournalProposalSchema), required=True)
    pagination = fields.Nested(PageInfo, required=True)
