"""Budget resources under ``/api/v1/budget``: thin views over the budget services.

Each view parses with a schema, works in one unit of work, and dumps with a schema.
Reads run in read-only transactions (the line list, a line, the tree and a line's
entries on the read database when ``YINFIN_DATABASE_READ_URL`` is set: they may lag); every change runs in one writing transaction,
so nothing is written half-way. Changes need an acting user (401 without one).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from yinfin_flow.budget import setup
from yinfin_flow.budget.lookup import Dims
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.domain.budget import ControlRule

from ...extension import FlowState, state
from ..blueprint import Blueprint
from ..errors import register_blueprint_handlers
from ..identity import require_actor
from . import reads
from .schemas import (
    AlertPageSchema,
    AlertQuery,
    EntryPageSchema,
    LineDetailSchema,
    LinePageSchema,
    LineQuery,
    LineStatusInSchema,
    PageQuery,
    PreviewRequestSchema,
    PreviewSchema,
    TreeQuery,
    TreeSchema,
)

blp = Blueprint(
    "budget", __name__, url_prefix="/budget",
    description="Budget lines, control rules, budget journals, previews and alerts.",
)
register_blueprint_handlers(blp)

LINE_ID = "<int(min=1, max=2147483647):line_id>"
ACTOR_DOC = {"security": [{"devUser": []}]}


def _flow() -> FlowState:
    return state(current_app)


def _budgets(st: FlowState, session: Any) -> Budgets:
    return Budgets(session, default_mode=st.settings.default_control_mode)


def _default_rule(st: FlowState, session: Any) -> ControlRule:
    return _budgets(st, session).default_rule


# -- reads -------------------------------------------------------------------------


@blp.get("/lines")
@blp.arguments(LineQuery, location="query", as_kwargs=True)
@blp.response(200, LinePageSchema)
def list_lines(page: int, page_size: int, **filters: Any) -> dict[str, Any]:
    """Budget lines with their buckets, filtered by dimension codes and status."""
    st = _flow()
    with st.reads.unit_of_work(readonly=True) as s:
        return reads.list_lines(s, reads.Filters(**filters), page, page_size)


@blp.get(f"/lines/{LINE_ID}")
@blp.response(200, LineDetailSchema)
def get_line(line_id: int) -> dict[str, Any]:
    """One line: dimensions, buckets, effective control rule and every controlling line."""
    st = _flow()
    with st.reads.unit_of_work(readonly=True) as s:
        return reads.line_detail(s, line_id, _default_rule(st, s))


@blp.get("/tree")
@blp.arguments(TreeQuery, location="query", as_kwargs=True)
@blp.response(200, TreeSchema)
def get_tree(company: str | None, period: str | None) -> dict[str, Any]:
    """The line tree (department ← sub-department…) with each node's buckets."""
    st = _flow()
    with st.reads.unit_of_work(readonly=True) as s:
        return reads.tree(s, company, period)


@blp.get(f"/lines/{LINE_ID}/entries")
@blp.arguments(PageQuery, location="query", as_kwargs=True)
@blp.response(200, EntryPageSchema)
def list_entries(line_id: int, page: int, page_size: int) -> dict[str, Any]:
    """The line's append-only budget entries, newest first."""
    st = _flow()
    with st.reads.unit_of_work(readonly=True) as s:
        return reads.entries(s, line_id, page, page_size)


@blp.get("/alerts")
@blp.arguments(AlertQuery, location="query", as_kwargs=True)
@blp.response(200, AlertPageSchema)
def list_alerts(page: int, page_size: int, line_id: int | None, level: str | None,
                notify: bool | None) -> dict[str, Any]:
    """Warnings and records control produced (soft over budget, thresholds, track)."""
    st = _flow()
    with st.db.unit_of_work(readonly=True) as s:
        return reads.alerts(s, line_id=line_id, level=level, notify=notify, page=page,
                            page_size=page_size)


@blp.post("/preview")
@blp.arguments(PreviewRequestSchema)
@blp.response(200, PreviewSchema)
def preview(body: dict[str, Any]) -> dict[str, Any]:
    """What reserving these request lines would do; writes nothing.

    Over budget is not an error here: the checks say ``blocked``. Unknown lines,
    closed lines, dates outside the period, bad amounts are the same errors a real
    reservation gives.
    """
    st = _flow()
    requests = [
        LineRequest(
            ref=ln["ref"], amount=ln["amount"], currency=ln["currency"],
            budget_date=ln["budget_date"], line_id=ln["line_id"], line_code=ln["line_code"],
            dims=Dims(**ln["dimensions"]) if ln["dimensions"] else None,
        )
        for ln in body["lines"]
    ]
    with st.db.unit_of_work(readonly=True) as s:
        checks = _budgets(st, s).preview(requests)
    return {
        "blocked": any(c.blocked for c in checks),
        "checks": [{**c.to_dict(), "own_line": c.decided_by_self} for c in checks],
    }


# -- changes (finance) ---------------------------------------------------------------


@blp.patch(f"/lines/{LINE_ID}")
@blp.arguments(LineStatusInSchema)
@blp.response(200, LineDetailSchema)
@blp.doc(**ACTOR_DOC)
def patch_line(body: dict[str, Any], line_id: int) -> dict[str, Any]:
    """Open, hold (consumption refused, journals allowed) or close a line."""
    require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        setup.set_status(s, line_id, body["status"])
        return reads.line_detail(s, line_id, _default_rule(st, s))
