"""Marshmallow schemas for the what-if simulation of a control rule (规则模拟)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..fields import Money
from .schemas import RuleInSchema


class SimulateInSchema(RuleInSchema):
    """A hypothetical rule for the line (and, with ``subtree``, the lines below it) and the
    window to replay (default: the last 12 months up to today)."""

    class Meta:
        exclude = ("reason",)

    from_ = fields.Date(load_default=None, data_key="from", metadata={"description": "first day (UTC)"})
    to = fields.Date(load_default=None, metadata={"description": "last day, included (UTC)"})
    every_request = fields.Boolean(load_default=False,
                                   metadata={"description": "also list every request's decisions"})


class DecisionSchema(Schema):
    """What control decided (or would have) for one request."""

    blocked = fields.Boolean(required=True, metadata={"description": "refused (hard control)"})
    level = fields.String(required=True, allow_none=True, validate=validate.OneOf(["info", "warn", "block"]))
    threshold = fields.String(required=True, allow_none=True,
                              metadata={"description": "the threshold % reached, or over (budget + tolerance)"})
    decided_by = fields.String(required=True, allow_none=True, metadata={"description": "the line that decided"})
    usage_percent = fields.String(required=True, allow_none=True)


class SimulatedRequestSchema(Schema):
    movement_id = fields.Integer(required=True)
    document = fields.String(required=True, allow_none=True, metadata={"example": "expense:42"})
    on = fields.Date(required=True)
    lines = fields.List(fields.String(), required=True)
    amount = Money(required=True)
    current = fields.Nested(DecisionSchema, required=True)
    proposed = fields.Nested(DecisionSchema, required=True)


class RequestListSchema(Schema):
    count = fields.Integer(required=True)
    items = fields.List(fields.Nested(SimulatedRequestSchema), required=True,
                        metadata={"description": "the first 200"})


class SimulatedRuleSchema(Schema):
    mode = fields.String(required=True)
    basis = fields.String(required=True)
    description = fields.String(required=True)
    defined_on_line_id = fields.Integer(required=True, allow_none=True,
                                        metadata={"description": "null: the default rule"})


class SideSchema(Schema):
    """One rule's replay of the window."""

    rule = fields.Nested(SimulatedRuleSchema, required=True)
    refused = fields.Integer(required=True)
    refused_amount = Money(required=True)
    warned = fields.Integer(required=True)
    warned_amount = Money(required=True)
    peak_usage_percent = fields.String(required=True, allow_none=True)
    peak_on = fields.Date(required=True, allow_none=True)
    first_negative_on = fields.Date(required=True, allow_none=True,
                                    metadata={"description": "the first day available went below zero"})


class SimulationSchema(Schema):
    """The rule in force beside the proposed one, replayed over the same history."""

    line_id = fields.Integer(required=True)
    line = fields.String(required=True)
    currency = fields.String(required=True)
    from_ = fields.Date(required=True, data_key="from", attribute="from")
    to = fields.Date(required=True)
    requests = fields.Integer(required=True, metadata={"description": "requests replayed"})
    current = fields.Nested(SideSchema, required=True)
    proposed = fields.Nested(SideSchema, required=True)
    refused = fields.Nested(RequestListSchema, required=True,
                            metadata={"description": "refused under the proposed rule"})
    warned = fields.Nested(RequestListSchema, required=True,
                           metadata={"description": "passed with a warning under the proposed rule"})
    passed_only_under_current = fields.Nested(RequestListSchema, required=True)
    passed_only_under_proposed = fields.Nested(RequestListSchema, required=True)
    every_request = fields.List(fields.Nested(SimulatedRequestSchema),
                                metadata={"description": "with every_request only"})
