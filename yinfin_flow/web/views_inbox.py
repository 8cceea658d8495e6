"""The inbox (待办) with the budget impact in each row, and batch approval (批量审批).

Batch approval decides each selected task on its own, in its own transaction, exactly
as one approval from the task page would: one refusal never undoes the others, and
the page shows a result per row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, render_template, request

from yinfin_flow.api.engine_reads import impact, my_task
from yinfin_flow.api.engine_schemas import ActInSchema, RejectInSchema
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError
from yinfin_flow.engine import inbox as inbox_reads

from . import i18n
from .common import db, htmx, me, parse
from .views_tasks import act_on

PAGE_SIZE = 20
MAX_BATCH = 100


def _decimal(name: str) -> Decimal | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValidationError(name, "must be a number such as 1000 or 1000.50") from None
    if not value.is_finite():
        raise ValidationError(name, "must be a number such as 1000 or 1000.50")
    return value


def _filters() -> tuple[inbox_reads.InboxFilter, bool, int]:
    sort = request.args.get("sort") or "newest"
    if sort not in inbox_reads.SORTS:
        raise ValidationError("sort", f"must be one of {', '.join(inbox_reads.SORTS)}")
    page = request.args.get("page") or "1"
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise ValidationError("page", "must be a whole number from 1")
    f = inbox_reads.InboxFilter(workflow=request.args.get("workflow") or None,
                                min_amount=_decimal("min_amount"), max_amount=_decimal("max_amount"),
                                sort=sort)
    return f, request.args.get("over") == "1", int(page)


def over_threshold(impact: dict[str, Any]) -> bool:
    """A row whose approval leaves a line at a warning or blocking threshold."""
    return any(ln["level"] in ("warn", "block") or ln["blocked"] for ln in impact["lines"])


def inbox() -> str:
    ident = me()
    f, over_only, page = _filters()
    today = datetime.now(UTC).date()
    with db().unit_of_work(readonly=True) as s:
        if over_only:  # the threshold is known only with the impact: filter, then page
            got = inbox_reads.inbox_page(s, ident.id, today, f, 1, 100_000)
            rows = []
            for row in got["items"]:
                row["impact"] = impact(s, got["requests"][row["request_id"]])
                if over_threshold(row["impact"]):
                    rows.append(row)
            total = len(rows)
            rows = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
            pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
        else:
            got = inbox_reads.inbox_page(s, ident.id, today, f, page, PAGE_SIZE)
            rows, total, pages = got["items"], got["total"], got["pages"]
            for row in rows:  # the user's own pending tasks: visible by construction
                row["impact"] = impact(s, got["requests"][row["request_id"]])
        workflows = inbox_reads.workflows_pending(s, ident.id, today)
    now = datetime.now(UTC)
    for row in rows:
        row["waited_hours"] = int((now - datetime.fromisoformat(row["created_at"])).total_seconds() // 3600)
    template = "yinfin/_inbox_rows.html" if htmx() and request.headers.get("HX-Target") == "inbox-rows" \
        else "yinfin/inbox.html"
    return render_template(template, rows=rows, total=total, pages=pages, page=page, f=f,
                           over_only=over_only, workflows=workflows, sorts=inbox_reads.SORTS)


def batch() -> str:
    """Approve (or reject with one comment) every selected task, each on its own."""
    ident = me()
    action = request.form.get("action") or "approve"
    if action not in ("approve", "reject"):
        raise ValidationError("action", "must be approve or reject")
    ids = request.form.getlist("task")
    if not ids:
        raise ValidationError("task", "select at least one task")
    if len(ids) > MAX_BATCH or not all(i.isdigit() and 0 < int(i) < 2**31 for i in ids):
        raise ValidationError("task", f"up to {MAX_BATCH} task ids")
    comment = (request.form.get("comment") or "").strip()
    schema = RejectInSchema() if action == "reject" else ActInSchema()
    body = parse(schema, {"comment": comment} if comment else {})
    results = []
    for task_id in dict.fromkeys(int(i) for i in ids):  # each once, in the order selected
        try:
            request_id = act_on(ident.id, task_id, action, body)
            results.append({"task_id": task_id, "request_id": request_id, "ok": True})
        except DomainError as err:
            err = _as_api_answers(ident, task_id, err)
            results.append({"task_id": task_id, "ok": False, "code": err.code,
                            "message": err.message, "title": i18n.error_title(err.code)})
    template = "yinfin/_batch_results.html" if htmx() else "yinfin/batch.html"
    return render_template(template, results=results, action=action)


def _as_api_answers(ident: Any, task_id: int, err: DomainError) -> DomainError:
    """Someone else's task is "not found", as the API answers strangers."""
    try:
        with db().unit_of_work(readonly=True) as s:
            my_task(s, ident, task_id)
    except NotFound as gone:
        return gone
    return err


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/inbox", "inbox", inbox)
    bp.add_url_rule("/inbox/batch", "batch", batch, methods=["POST"])
