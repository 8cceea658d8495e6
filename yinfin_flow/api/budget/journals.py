"""Budget journals under ``/api/v1/budget``: four eyes on adjustments, transfers and imports.

``POST /adjustments``, ``/transfers`` and ``/imports`` propose (202, the pending
proposal) while ``YINFIN_BUDGET_JOURNAL_APPROVAL=required`` (the default) and book at
once (201) when it is ``off``. ``/journal-proposals`` lists, shows, approves, rejects and
withdraws; the service (:mod:`yinfin_flow.budget.journal_proposals`) refuses the
proposer's own decision, stale proposals and actors who are not in the directory.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Response, g, jsonify

from yinfin_flow.budget import io
from yinfin_flow.budget import journal_proposals as jp
from yinfin_flow.budget.import_preview import SUFFIXES, read_upload
from yinfin_flow.domain.budget import CurrencyMismatch
from yinfin_flow.domain.errors import ValidationError

from ..identity import require_actor
from . import reads
from .journal_schemas import (
    ImportDryRunSchema,
    ImportInSchema,
    JournalDecisionInSchema,
    JournalProposalPageSchema,
    JournalProposalSchema,
    JournalQuery,
    JournalRejectInSchema,
)
from .schemas import AdjustmentInSchema, IdempotencyHeaders, MovementSchema, TransferInSchema
from .views import ACTOR_DOC, _budgets, _flow, blp

PROPOSAL_ID = "<int(min=1, max=2147483647):proposal_id>"
PROPOSED = "proposed: booked when another finance user approves it"


def _same_currency(line_currency: str, currency: str, field: str = "currency") -> None:
    if currency.upper() != line_currency:
        raise CurrencyMismatch(
            f"budget journals are in the line's currency {line_currency}, not {currency}",
            field=field, line_currency=line_currency,
        )


def _proposed(s: Any, proposal: Any) -> Response:
    """202 with the pending proposal (the audit row committed with it says 202 too)."""
    if g.get("yinfin_audit_status") is not None:
        g.yinfin_audit_status = 202
    resp: Response = jsonify(JournalProposalSchema().dump(jp.proposal_dict(s, proposal)))
    resp.status_code = 202
    return resp


@blp.post("/adjustments")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(AdjustmentInSchema)
@blp.response(201, MovementSchema, description="booked at once (YINFIN_BUDGET_JOURNAL_APPROVAL=off)")
@blp.alt_response(202, schema=JournalProposalSchema, description=PROPOSED)
@blp.doc(**ACTOR_DOC)
def post_adjustment(body: dict[str, Any], idempotency_key: str | None) -> Any:
    """Add to a line's budget (``original`` or ``adjustment``) or, negative, cut it: by
    default a proposal that another finance user approves (``/journal-proposals``)."""
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        line = reads.require_line(s, body["line_id"])
        _same_currency(line.currency, body["currency"])
        if st.settings.budget_journal_approval == jp.REQUIRED:
            return _proposed(s, jp.propose_adjustment(
                s, line.id, body["amount"], actor=actor.id, reason=body["reason"], kind=body["kind"],
                default_mode=st.settings.default_control_mode))
        jp.require_person(s, actor.id)
        result = _budgets(st, s).adjust(
            idempotency_key, line.id, body["amount"], actor=actor.id, reason=body["reason"],
            kind=body["kind"],
        )
        return {"movement_id": result.movement_id, "replayed": result.replayed,
                "lines": reads.lines_by_id(s, [line.id])}


@blp.post("/transfers")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(TransferInSchema)
@blp.response(201, MovementSchema, description="booked at once (YINFIN_BUDGET_JOURNAL_APPROVAL=off)")
@blp.alt_response(202, schema=JournalProposalSchema, description=PROPOSED)
@blp.doc(**ACTOR_DOC)
def post_transfer(body: dict[str, Any], idempotency_key: str | None) -> Any:
    """Move budget between two lines of the same currency (never below zero under hard
    control): by default a proposal that another finance user approves."""
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        src = reads.require_line(s, body["from_line_id"], "from_line_id")
        _same_currency(src.currency, body["currency"])
        if st.settings.budget_journal_approval == jp.REQUIRED:
            return _proposed(s, jp.propose_transfer(
                s, src.id, body["to_line_id"], body["amount"], actor=actor.id, reason=body["reason"],
                default_mode=st.settings.default_control_mode))
        jp.require_person(s, actor.id)
        result = _budgets(st, s).transfer(
            idempotency_key, src.id, body["to_line_id"], body["amount"], actor=actor.id,
            reason=body["reason"],
        )
        return {"movement_id": result.movement_id, "replayed": result.replayed,
                "lines": reads.lines_by_id(s, [src.id, body["to_line_id"]])}


def _table(body: dict[str, Any]) -> tuple[list[str], list[Any]]:
    if Path(body["filename"]).suffix.lower() not in SUFFIXES:
        raise ValidationError("filename", "must end in .csv or .xlsx")
    try:
        data = base64.b64decode(body["content"], validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("content", "is not base64") from None
    return read_upload(body["filename"], data, limits=_flow().settings.limits)


@blp.post("/imports")
@blp.arguments(ImportInSchema)
@blp.response(202, JournalProposalSchema, description=PROPOSED)
@blp.alt_response(200, schema=ImportDryRunSchema, description="dry_run: the plan, nothing written")
@blp.alt_response(201, schema=ImportDryRunSchema,
                  description="booked at once (YINFIN_BUDGET_JOURNAL_APPROVAL=off)")
@blp.doc(**ACTOR_DOC)
def post_import(body: dict[str, Any]) -> Any:
    """Load a budget file: every bad row is reported at once (row, column, problem) and
    nothing is written; otherwise the file becomes one proposal (or, ``dry_run``, only
    its plan: what each line would become)."""
    actor = require_actor()
    st = _flow()
    header, rows = _table(body)
    source = Path(body["filename"]).name
    mode = st.settings.default_control_mode
    if body["dry_run"]:
        with st.db.unit_of_work() as s:  # a writing transaction: the rehearsal is rolled back
            plan = jp.rehearse(s, lambda: io.import_rows(s, header, rows, source=source, actor=actor.id,
                                                          default_mode=mode, reason=body["reason"]))
        return _plain(200, {"dry_run": True, "source": source, "plan": plan.to_dict()}, ImportDryRunSchema)
    with st.db.unit_of_work() as s:
        if st.settings.budget_journal_approval == jp.REQUIRED:
            return _proposed(s, jp.propose_import(s, header, rows, source=source, actor=actor.id,
                                                  reason=body["reason"], default_mode=mode))
        jp.require_person(s, actor.id)
        plan = io.import_rows(s, header, rows, source=source, actor=actor.id, default_mode=mode,
                              reason=body["reason"])
    if g.get("yinfin_audit_status") is not None:
        g.yinfin_audit_status = 201
    return _plain(201, {"dry_run": False, "source": source, "plan": plan.to_dict()}, ImportDryRunSchema)


def _plain(status: int, body: dict[str, Any], schema: type) -> Response:
    resp: Response = jsonify(schema().dump(body))
    resp.status_code = status
    return resp


@blp.get("/journal-proposals")
@blp.arguments(JournalQuery, location="query", as_kwargs=True)
@blp.response(200, JournalProposalPageSchema)
def list_journal_proposals(page: int, page_size: int, status: str | None, kind: str | None) -> dict[str, Any]:
    """Proposed budget journals, newest first; ``status=pending`` is the reviewers' queue."""
    st = _flow()
    with st.db.unit_of_work(readonly=True) as s:
        total, items = jp.list_proposals(s, status=status, kind=kind, page=page, page_size=page_size)
    return {"items": items, "pagination": reads.page_info(page, page_size, total)}


@blp.get(f"/journal-proposals/{PROPOSAL_ID}")
@blp.response(200, JournalProposalSchema)
def get_journal_proposal(proposal_id: int) -> dict[str, Any]:
    """One proposal: each line's budget before and after (an import: its plan) and its decision."""
    st = _flow()
    with st.db.unit_of_work(readonly=True) as s:
        return jp.get_proposal(s, proposal_id)


def _decide(action: Callable[..., Any], proposal_id: int, **kw: Any) -> dict[str, Any]:
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        action(s, proposal_id, actor=actor.id, **kw)
        return jp.get_proposal(s, proposal_id)


@blp.post(f"/journal-proposals/{PROPOSAL_ID}/approve")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(JournalDecisionInSchema)
@blp.response(200, JournalProposalSchema)
@blp.doc(**ACTOR_DOC)
def approve_journal_proposal(body: dict[str, Any], proposal_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """Book the proposal (every budget check included); not by its proposer (403
    ``segregation_of_duties``); 409 ``budget_journal_stale`` if a budget changed since."""
    return _decide(jp.approve, proposal_id, comment=body["comment"],
                   default_mode=_flow().settings.default_control_mode)


@blp.post(f"/journal-proposals/{PROPOSAL_ID}/reject")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(JournalRejectInSchema)
@blp.response(200, JournalProposalSchema)
@blp.doc(**ACTOR_DOC)
def reject_journal_proposal(body: dict[str, Any], proposal_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """Refuse the proposal with a comment; no budget changes (not by its proposer)."""
    return _decide(jp.reject, proposal_id, comment=body["comment"])


@blp.post(f"/journal-proposals/{PROPOSAL_ID}/withdraw")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(JournalDecisionInSchema)
@blp.response(200, JournalProposalSchema)
@blp.doc(**ACTOR_DOC)
def withdraw_journal_proposal(body: dict[str, Any], proposal_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """The proposer takes the proposal back; no budget changes."""
    return _decide(jp.withdraw, proposal_id, comment=body["comment"])
