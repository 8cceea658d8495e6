"""Marshmallow schemas for the budget resources: the contract and the OpenAPI document.

Money is an :class:`~yinfin_flow.api.fields.AmountString` next to a ``currency``
field. Request schemas refuse unknown fields (a typo is a 422, not silently
ignored); query schemas ignore unknown parameters.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from yinfin_flow.domain.budget import Action, Basis, LineStatus, Mode

from ..fields import AmountString, Code, Currency, Id, Money, QueryId, Text, one_of

# -- shared -------------------------------------------------------------------------


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PageInfo(Schema):
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class IdempotencyHeaders(Schema):
    """``Idempotency-Key``: the same key again returns the first result, writes nothing."""

    class Meta:
        unknown = EXCLUDE

    idempotency_key = Text(
        data_key="Idempotency-Key", max_length=160, min_length=1, load_default=None,
        metadata={"description": "retry-safe key: a replay writes nothing"},
    )


class BucketsSchema(Schema):
    budget = Money(required=True)
    pre_encumbered = Money(required=True)
    encumbered = Money(required=True)
    actual = Money(required=True)
    available = Money(required=True)


class DimensionsSchema(Schema):
    company = fields.String(required=True)
    period = fields.String(required=True)
    fiscal_year = fields.Integer(required=True)
    granularity = fields.String(required=True)
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)
    cost_centre = fields.String(required=True)
    item = fields.String(required=True)
    project = fields.String(required=True, allow_none=True)


class LineSchema(Schema):
    """A budget line with its buckets (as in lists)."""

    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    currency = fields.String(required=True)
    status = fields.String(required=True, validate=one_of(LineStatus))
    owner = fields.String(required=True, allow_none=True)
    parent_id = fields.Integer(required=True, allow_none=True)
    dimensions = fields.Nested(DimensionsSchema, required=True)
    buckets = fields.Nested(BucketsSchema, required=True)


class ThresholdSchema(Schema):
    percent = fields.String(required=True, metadata={"example": "90"})
    action = fields.String(required=True, validate=one_of(Action))
    notify = fields.Boolean(required=True)


class RuleSchema(Schema):
    """A control rule as it applies to a line."""

    mode = fields.String(required=True, validate=one_of(Mode))
    basis = fields.String(required=True, validate=one_of(Basis))
    tolerance_percent = fields.String(required=True, allow_none=True)
    tolerance_amount = Money(required=True, allow_none=True)
    thresholds = fields.List(fields.Nested(ThresholdSchema), required=True)
    subtree = fields.Boolean(required=True)
    defined_on_line_id = fields.Integer(
        required=True, allow_none=True,
        metadata={"description": "the line the rule is set on; null: the shipped default"},
    )
    inherited = fields.Boolean(required=True)


class ControllingLineSchema(Schema):
    line_id = fields.Integer(required=True)
    line = fields.String(required=True)
    mode = fields.String(required=True)
    basis = fields.String(required=True)
    own_line = fields.Boolean(required=True)
    currency = fields.String(required=True)
    buckets = fields.Nested(BucketsSchema, required=True,
                            metadata={"description": "summed over the rule's basis"})


class LineDetailSchema(LineSchema):
    path = fields.List(fields.Integer(), required=True, metadata={"description": "root first"})
    rule = fields.Nested(RuleSchema, required=True,
                         metadata={"description": "the effective rule (own, inherited or default)"})
    controlled_by = fields.List(
        fields.Nested(ControllingLineSchema), required=True,
        metadata={"description": "this line and every ancestor a consumption is checked against"},
    )


class LinePageSchema(Schema):
    items = fields.List(fields.Nested(LineSchema), required=True)
    pagination = fields.Nested(PageInfo, required=True)


class LineQuery(PageQuery):
    code = Code(load_default=None, max_length=200,
                metadata={"description": "one line by its exact code",
                          "example": "ACME/2026-01/RD/TRAVEL"})
    company = Code(load_default=None)
    period = Code(load_default=None, metadata={"example": "2026-01"})
    cost_centre = Code(load_default=None)
    item = Code(load_default=None)
    project = Code(load_default=None)
    status = fields.String(load_default=None, validate=one_of(LineStatus))


class TreeQuery(Schema):
    company = Code(load_default=None)
    period = Code(load_default=None)


class TreeNodeSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    currency = fields.String(required=True)
    status = fields.String(required=True)
    buckets = fields.Nested(BucketsSchema, required=True,
                            metadata={"description": "own budget; consumption of the subtree"})
    children = fields.List(fields.Nested(lambda: TreeNodeSchema()), required=True)


class TreeSchema(Schema):
    roots = fields.List(fields.Nested(TreeNodeSchema), required=True)


class EntrySchema(Schema):
    id = fields.Integer(required=True)
    movement_id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "reserve, adjustment, transfer…"})
    bucket = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    reservation_id = fields.Integer(required=True, allow_none=True)
    document_type = fields.String(required=True, allow_none=True)
    document_id = fields.String(required=True, allow_none=True)
    step = fields.String(required=True, allow_none=True)
    actor = fields.String(required=True)
    reason = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


class EntryPageSchema(Schema):
    items = fields.List(fields.Nested(EntrySchema), required=True)
    pagination = fields.Nested(PageInfo, required=True)


# -- preview --------------------------------------------------------------------------


class DimsInSchema(Schema):
    company = Code(required=True)
    cost_centre = Code(required=True)
    item = Code(required=True)
    project = Code(load_default=None)


class RequestLineSchema(Schema):
    """One request line asking for budget; name the budget line one way only."""

    ref = Text(required=True, min_length=1, max_length=64)
    amount = AmountString(required=True)
    currency = Currency(required=True)
    budget_date = fields.Date(required=True)
    line_id = Id(load_default=None)
    line_code = Text(load_default=None, min_length=1, max_length=200)
    dimensions = fields.Nested(DimsInSchema, load_default=None)

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        given = [k for k in ("line_id", "line_code", "dimensions") if data.get(k) is not None]
        if len(given) != 1:
            raise ValidationError(
                "name the budget line by exactly one of line_id, line_code or dimensions",
                field_name="line_id",
            )


class PreviewRequestSchema(Schema):
    lines = fields.List(fields.Nested(RequestLineSchema), required=True,
                        validate=validate.Length(min=1, max=100))


class CheckSchema(Schema):
    line_id = fields.Integer(required=True)
    line = fields.String(required=True)
    own_line = fields.Boolean(required=True,
                              metadata={"description": "false: a controlling ancestor"})
    mode = fields.String(required=True)
    basis = fields.String(required=True)
    rule_line_id = fields.Integer(required=True, allow_none=True)
    currency = fields.String(required=True)
    asked = Money(required=True)
    available = Money(required=True)
    available_after = Money(required=True)
    tolerance = Money(required=True)
    usage_percent = fields.String(required=True, allow_none=True)
    level = fields.String(required=True, allow_none=True, validate=one_of(Action))
    blocked = fields.Boolean(required=True)
    over = fields.Boolean(required=True)
    breakdown = fields.Nested(BucketsSchema, required=True)


class PreviewSchema(Schema):
    blocked = fields.Boolean(required=True, metadata={"description": "a reservation would be refused"})
    checks = fields.List(fields.Nested(CheckSchema), required=True)


# -- changes ------------------------------------------------------------------------


class ThresholdInSchema(Schema):
    percent = AmountString(required=True, metadata={"example": "90"})
    action = fields.String(required=True, validate=one_of(Action))
    notify = fields.Boolean(load_default=False)


class RuleInSchema(Schema):
    mode = fields.String(required=True, validate=one_of(Mode))
    basis = fields.String(load_default="period", validate=one_of(Basis))
    tolerance_percent = AmountString(load_default=None, allow_none=True,
                                     metadata={"example": "5"})
    tolerance_amount = AmountString(load_default=None, allow_none=True)
    thresholds = fields.List(fields.Nested(ThresholdInSchema), load_default=None, allow_none=True,
                             validate=validate.Length(max=20))
    subtree = fields.Boolean(load_default=True)
    reason = Text(load_default=None, allow_none=True, max_length=2000,
                  metadata={"description": "why (shown to the reviewer of the change)"})


class LineStatusInSchema(Schema):
    status = fields.String(required=True, validate=one_of(LineStatus))


class AdjustmentInSchema(Schema):
    line_id = Id(required=True)
    amount = AmountString(required=True, metadata={"description": "negative cuts the budget"})
    currency = Currency(required=True)
    reason = Text(required=True, min_length=1, max_length=2000)
    kind = fields.String(load_default="adjustment", validate=validate.OneOf(["original", "adjustment"]))


class TransferInSchema(Schema):
    from_line_id = Id(required=True)
    to_line_id = Id(required=True)
    amount = AmountString(required=True)
    currency = Currency(required=True)
    reason = Text(required=True, min_length=1, max_length=2000)


class MovementSchema(Schema):
    movement_id = fields.Integer(required=True)
    replayed = fields.Boolean(required=True)
    lines = fields.List(fields.Nested(LineSchema), required=True,
                        metadata={"description": "the lines as they stand after the movement"})


# -- alerts --------------------------------------------------------------------------


class AlertQuery(PageQuery):
    line_id = QueryId(load_default=None)
    level = fields.String(load_default=None, validate=validate.OneOf(["info", "warn", "block", "over"]))
    notify = fields.Boolean(load_default=None)


class AlertSchema(Schema):
    id = fields.Integer(required=True)
    movement_id = fields.Integer(required=True)
    line_id = fields.Integer(required=True)
    line = fields.String(required=True)
    currency = fields.String(required=True)
    mode = fields.String(required=True)
    level = fields.String(required=True)
    usage_percent = fields.String(required=True, allow_none=True)
    asked = Money(required=True)
    available_after = Money(required=True)
    notify = fields.Boolean(required=True)
    message = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class AlertPageSchema(Schema):
    items = fields.List(fields.Nested(AlertSchema), required=True)
    pagination = fields.Nested(PageInfo, required=True)
