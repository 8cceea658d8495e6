"""Marshmallow schemas for control rule changes (four eyes): proposals and decisions."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from yinfin_flow.db.models.rule_changes import STATUSES
from yinfin_flow.domain.budget import Basis, Mode

from ..fields import Id, Money, QueryId, Text, one_of
from .schemas import PageInfo, PageQuery, RuleInSchema, ThresholdSchema
from .simulation_schemas import SimulationSchema


class RuleChangeInSchema(RuleInSchema):
    """A proposed rule for a line; another finance user approves it before it applies."""

    line_id = Id(required=True)
    reason = Text(required=True, min_length=1, max_length=2000,
                  metadata={"description": "why, for the reviewer"})


class RuleDecisionInSchema(Schema):
    comment = Text(load_default=None, allow_none=True, max_length=2000)


class RuleRejectInSchema(Schema):
    comment = Text(required=True, min_length=1, max_length=2000,
                   metadata={"description": "why the change is refused"})


class RuleChangeQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES),
                           metadata={"description": "pending: what waits for a reviewer"})
    line_id = QueryId(load_default=None)


class ProposedRuleSchema(Schema):
    mode = fields.String(required=True, validate=one_of(Mode))
    basis = fields.String(required=True, validate=one_of(Basis))
    subtree = fields.Boolean(required=True)
    tolerance_percent = fields.String(required=True, allow_none=True)
    tolerance_amount = Money(required=True, allow_none=True)
    thresholds = fields.List(fields.Nested(ThresholdSchema), required=True)


class PreviousRuleSchema(ProposedRuleSchema):
    """The line's own rule when the change was proposed."""

    version = fields.Integer(required=True)
    updated_by = fields.String(required=True)
    updated_at = fields.String(required=True, metadata={"format": "date-time"})
    approved_by = fields.String(required=True, allow_none=True)


class RuleChangeSchema(Schema):
    """A proposed control rule change and what became of it."""

    id = fields.Integer(required=True)
    line_id = fields.Integer(required=True)
    line = fields.String(required=True, metadata={"description": "the line's code"})
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    rule = fields.Nested(ProposedRuleSchema, required=True, metadata={"description": "the proposed rule"})
    previous = fields.Nested(
        PreviousRuleSchema, required=True, allow_none=True,
        metadata={"description": "the rule it replaces; null: the line had no rule of its own"},
    )
    base_version = fields.Integer(required=True, allow_none=True)
    reason = fields.String(required=True, allow_none=True)
    proposed_by = fields.String(required=True)
    proposed_at = fields.DateTime(required=True)
    decided_by = fields.String(required=True, allow_none=True)
    decided_at = fields.DateTime(required=True, allow_none=True)
    comment = fields.String(required=True, allow_none=True)
    simulation = fields.Nested(
        SimulationSchema, allow_none=True,
        metadata={"description": "a pending change replayed over the last 12 months beside the rule "
                                 "in force (in the answers for one change; not in lists)"},
    )


class RuleChangePageSchema(Schema):
    items = fields.List(fields.Nested(RuleChangeSchema), required=True)
    pagination = fields.Nested(PageInfo, required=True)
