"""The budget action of each transition, done through :class:`~yinfin_flow.budget.service.Budgets`.

A request's budget document is ``(definition.document_type, str(request.id))``; its
lines come from the form (:func:`lines_of`). Every call carries an idempotency key
from :func:`yinfin_flow.engine.runtime.next_key`, suffixed per call.

``reserve`` on a request that already holds budget (a resubmit after an edit, an
approver's edit) reserves or releases only the difference, line by line, in the same
transaction: a line whose amount went up gets an extra reservation for the increase,
one that went down gets a partial release, one that moved to another budget line or
currency is released and reserved again, one that was removed is released and closed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget import setup
from yinfin_flow.budget.lookup import Dims, find_line
from yinfin_flow.budget.service import Budgets, LineRequest, ReservationView
from yinfin_flow.db.models import BudgetItem, BudgetLine, BudgetPeriod, CostCentre
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.budget import Action, LineCheck, Mode, raise_if_blocked
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits, check_lines, check_value
from yinfin_flow.domain.money import check_currency, in_minor_units, parse_amount

from .runtime import DOCUMENT_READ, ActionContext, deferred


def document(ctx: ActionContext, req: ApprovalRequest) -> tuple[str, str]:
    return (ctx.definition.document_type, str(req.id))


def normalise_form(form: dict[str, Any], on: date, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Check the budget-relevant part of a form and fill ``amount`` (the lines' total).

    Raises :class:`ValidationError` naming ``form.lines[i].amount`` etc. Forms without
    lines (a transfer names ``from_line``/``to_line``/``amount``) are checked too.
    Amounts follow the one money grammar (:func:`~yinfin_flow.domain.money.parse_amount`,
    at most the currency's minor units) and are kept in those units (``"250.00"``;
    answers show them as every amount, ``"250.0000"``); currencies are capitals.
    """
    if not isinstance(form, dict):
        raise ValidationError("form", "must be an object")
    check_value(form, limits, root="form")
    form = dict(form)
    if "lines" not in form and "from_line" in form:
        for f in ("to_line", "amount"):
            if f not in form:
                raise ValidationError(f"form.{f}", "is required for a transfer")
        form["lines"] = [{"ref": "1", "line_id": form["from_line"], "amount": form["amount"]}]
        form["reason"] = form.get("reason") or "budget transfer"
    lines = form.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ValidationError("form.lines", "at least one line is required")
    check_lines(len(lines), limits)
    default_currency = form.get("currency") or "CNY"
    if "currency" in form:
        check_currency(form["currency"], "form.currency")
    total = Decimal(0)
    seen: set[str] = set()
    out = []
    for i, raw in enumerate(lines):
        if not isinstance(raw, dict):
            raise ValidationError(f"form.lines[{i}]", "must be an object")
        line = dict(raw)
        line["ref"] = str(line.get("ref") or i + 1)
        if line["ref"] in seen:
            raise ValidationError(f"form.lines[{i}].ref", f"ref {line['ref']!r} is used twice")
        seen.add(line["ref"])
        line.setdefault("currency", default_currency)
        currency = check_currency(line["currency"], f"form.lines[{i}].currency")
        amount = parse_amount(line.get("amount"), currency, f"form.lines[{i}].amount", positive=True)
        line["amount"] = in_minor_units(amount, currency)
        if line.get("tax_amount") not in (None, ""):  # posted with the line: the same grammar now
            tax = parse_amount(line["tax_amount"], currency, f"form.lines[{i}].tax_amount", signed=False)
            line["tax_amount"] = in_minor_units(tax, currency)
        line.setdefault("budget_date", str(form.get("budget_date") or on))
        total += amount
        out.append(line)
    form["lines"] = out
    form["amount"] = in_minor_units(total, out[0]["currency"])
    form.setdefault("currency", out[0]["currency"])
    return form


def lines_of(req: ApprovalRequest) -> list[LineRequest]:
    """The form's lines as budget requests (a project's lines all draw on ``parent_line``)."""
    out = []
    for i, ln in enumerate(req.form["lines"]):
        try:
            on = date.fromisoformat(str(ln["budget_date"]))
        except ValueError:
            raise ValidationError(f"form.lines[{i}].budget_date", "must be YYYY-MM-DD") from None
        line_id = ln.get("line_id") or req.form.get("parent_line")
        dims = None
        if line_id is None and not ln.get("line_code"):
            if not (ln.get("cost_centre") and ln.get("item")):
                raise ValidationError(f"form.lines[{i}]", "name a budget line: line_id, line_code or cost_centre + item")
            dims = Dims(req.company, ln["cost_centre"], ln["item"], ln.get("project"))
        out.append(LineRequest(ref=ln["ref"], amount=ln["amount"], currency=ln["currency"],
                               budget_date=on, line_id=int(line_id) if line_id is not None else None,
                               line_code=ln.get("line_code"), dims=dims))
    return out


def warnings_of(checks: list[LineCheck]) -> list[dict[str, Any]]:
    """What approvers are shown of the budget checks: warnings (and soft overruns) and,
    marked ``severity: information``, thresholds set at the ``info`` level."""
    return [{**c.to_dict(), "severity": "information" if c.level is Action.INFO else "warning"}
            for c in checks if c.level is not None and c.rule.mode in (Mode.HARD, Mode.SOFT)]


def open_reservations(ctx: ActionContext, req: ApprovalRequest, *, recheck: bool = False) -> list[ReservationView]:
    """The request's open reservations (cached until the next budget write).

    ``recheck``: the caller re-checks them next (:func:`current_checks`); when nothing
    is cached, the reservations and their re-check are then read in one statement.
    """
    held = ctx.cache.get("held")
    if held is None or held[0] != req.id:
        b = Budgets(ctx.session)
        if recheck:
            views, checks = b.read_document(*document(ctx, req))
            ctx.cache["checks"] = (req.id, checks)
        else:
            views = b.reservations_for(*document(ctx, req))
        # Every reservation of the document as read (closed ones too): with the
        # re-check below, what an action's answer shows (see :func:`last_read`).
        ctx.cache["document"] = (req.id, views)
        held = ctx.cache["held"] = (req.id, [v for v in views if v.status == "open"])
    return list(held[1])


def current_checks(ctx: ActionContext, req: ApprovalRequest) -> list[LineCheck]:
    """Today's checks of what the request holds (cached until the next budget write)."""
    cached = ctx.cache.get("checks")
    if cached is None or cached[0] != req.id:
        held = open_reservations(ctx, req, recheck=True)
        cached = ctx.cache.get("checks")
        if cached is None or cached[0] != req.id:  # the reservations were cached already
            checks = Budgets(ctx.session).recheck([h.id for h in held]) if held else []
            cached = ctx.cache["checks"] = (req.id, checks)
    return list(cached[1])


@dataclass(frozen=True, slots=True)
class DocumentRead:
    """A request's budget document as this transaction read it, with no budget write
    after the read: every reservation (what ``reservations_for`` returns) and the
    re-check of the open ones (what ``recheck`` of their ids returns)."""

    request_id: int
    reservations: list[ReservationView]
    checks: list[LineCheck]


def last_read(ctx: ActionContext, req: ApprovalRequest) -> DocumentRead | None:
    """The document's reservations and re-check as read during this action, if no budget
    write followed the read (:meth:`ActionContext.budget_changed` forgets them); else None.

    A reservation's own result (``reserve``) is not a re-check: after a write the
    document is not known this way and the answer reads it again.
    """
    doc = ctx.cache.get("document")
    if doc is None or doc[0] != req.id:
        return None
    if not any(v.status == "open" for v in doc[1]):
        return DocumentRead(req.id, list(doc[1]), [])
    checks = ctx.cache.get("checks")
    if checks is None or checks[0] != req.id:
        return None
    return DocumentRead(req.id, list(doc[1]), list(checks[1]))


def keep_read(ctx: ActionContext, req: ApprovalRequest) -> None:
    """Leave :func:`last_read` on the session for :func:`take_read` (end of an action)."""
    read = last_read(ctx, req)
    if read is None:
        ctx.session.info.pop(DOCUMENT_READ, None)
    else:
        ctx.session.info[DOCUMENT_READ] = (ctx.session.get_transaction(), read)


def take_read(session: Session, req: ApprovalRequest) -> DocumentRead | None:
    """What the last action on ``req`` in this session's current transaction left with
    :func:`keep_read` (taken: a second call gets None). Valid only until the next budget
    write: call it right after the action."""
    kept = session.info.pop(DOCUMENT_READ, None)
    if kept is None:
        return None
    tx, read = kept
    if tx is None or tx is not session.get_transaction() or read.request_id != req.id:
        return None
    return read


def reserve(ctx: ActionContext, req: ApprovalRequest, key: str, step: str) -> dict[str, Any]:
    """Reserve the form's lines, or only the difference from what is already held."""
    b = Budgets(ctx.session)
    doc = document(ctx, req)
    held = open_reservations(ctx, req)
    wanted = lines_of(req)
    ctx.budget_changed()
    if not held:
        # A first reservation reads and writes budget tables only (with Core
        # statements): the action's other changes and its history rows wait.
        with deferred(ctx.session):
            res = b.reserve(key, doc, wanted, actor=ctx.actor, step=step)
        if not res.replayed:
            # What was just reserved and its checks are what the first tasks show.
            ctx.cache["held"] = (req.id, list(res.reservations))
            ctx.cache["checks"] = (req.id, list(res.checks))
        return {"action": "reserve", "reserved": [r.to_dict() for r in res.reservations],
                "warnings": res.warnings}
    by_ref: dict[str, list[ReservationView]] = defaultdict(list)
    for h in held:
        by_ref[h.document_line].append(h)
    more: list[LineRequest] = []
    released: list[dict[str, Any]] = []
    n = 0
    for w in wanted:
        hs = by_ref.pop(w.ref, [])
        target = find_line(ctx.session, budget_date=w.budget_date, line_id=w.line_id,
                           line_code=w.line_code, dims=w.dims, field=f"lines[{w.ref}]")
        same = hs and all(h.line_id == target.id and h.currency == w.currency
                          and h.encumbered == 0 and h.actual == 0 for h in hs)
        if not same:
            if hs:
                n += 1
                b.release(f"{key}:x{n}", [h.id for h in hs], actor=ctx.actor, close=True, step=step)
                released += [{"ref": w.ref, "reservation_id": h.id, "amount": str(h.pre_encumbered)} for h in hs]
            more.append(w)
            continue
        diff = Decimal(str(w.amount)) - sum((h.pre_encumbered for h in hs), Decimal(0))
        if diff > 0:
            more.append(LineRequest(w.ref, diff, w.currency, w.budget_date, target.id))
        for h in reversed(hs):  # give back from the newest reservation first
            if diff >= 0:
                break
            part = min(-diff, h.pre_encumbered)
            n += 1
            b.release(f"{key}:p{n}", [h.id], part, actor=ctx.actor, close=part == h.pre_encumbered, step=step)
            released.append({"ref": w.ref, "reservation_id": h.id, "amount": str(part)})
            diff += part
    for ref, hs in by_ref.items():  # lines removed from the form
        n += 1
        b.release(f"{key}:r{n}", [h.id for h in hs], actor=ctx.actor, close=True, step=step)
        released += [{"ref": ref, "reservation_id": h.id, "amount": str(h.pre_encumbered)} for h in hs]
    out: dict[str, Any] = {"action": "reserve_delta", "released": released, "reserved": [], "warnings": []}
    if more:
        res = b.reserve(f"{key}:more", doc, more, actor=ctx.actor, step=step)
        out["reserved"] = [r.to_dict() for r in res.reservations]
        out["warnings"] = res.warnings
    return out


def preview(ctx: ActionContext, req: ApprovalRequest) -> dict[str, Any]:
    checks = Budgets(ctx.session).preview(lines_of(req))
    return {"action": "check", "checks": [c.to_dict() for c in checks], "warnings": warnings_of(checks)}


def recheck(ctx: ActionContext, req: ApprovalRequest) -> dict[str, Any]:
    """Re-check what is held against today's balances; a hard overrun refuses the action."""
    held = open_reservations(ctx, req, recheck=True)
    checks = current_checks(ctx, req)
    raise_if_blocked(checks, ",".join(h.line_code for h in held))
    return {"action": "recheck", "checks": [c.to_dict() for c in checks], "warnings": warnings_of(checks)}


def advance(ctx: ActionContext, req: ApprovalRequest, key: str, target: str, step: str) -> dict[str, Any]:
    b = Budgets(ctx.session)
    moved = []
    held = open_reservations(ctx, req)
    ctx.budget_changed()
    for i, h in enumerate(held):
        if (target == "encumbered" and h.pre_encumbered > 0) or (
            target == "actual" and h.pre_encumbered + h.encumbered > 0
        ):
            b.advance(f"{key}:{i}", h.id, target, actor=ctx.actor, step=step)
            moved.append(h.id)
    return {"action": f"to_{target}", "reservations": moved}


def release(ctx: ActionContext, req: ApprovalRequest, key: str, step: str) -> dict[str, Any]:
    held = open_reservations(ctx, req)
    ctx.budget_changed()
    Budgets(ctx.session).release_document(key, document(ctx, req), actor=ctx.actor, step=step)
    return {"action": "release", "released": [
        {"reservation_id": h.id, "line": h.line_code,
         "amount": str(h.pre_encumbered + h.encumbered)} for h in held]}


def transfer(ctx: ActionContext, req: ApprovalRequest, key: str, step: str) -> dict[str, Any]:
    """Budget transfer: release the hold on the source, then move the budget."""
    out = release(ctx, req, f"{key}:rel", step)
    form = req.form
    Budgets(ctx.session).transfer(f"{key}:move", int(form["from_line"]), int(form["to_line"]),
                                  form["amount"], actor=ctx.actor, reason=form["reason"])
    out["action"] = "transfer"
    out["transfer"] = {"from_line": form["from_line"], "to_line": form["to_line"], "amount": form["amount"]}
    return out


def carve(ctx: ActionContext, req: ApprovalRequest, key: str, step: str) -> dict[str, Any]:
    """Project approval: release the hold on the parent, create the project's lines under
    it (one per item) and move their budget from the parent."""
    out = release(ctx, req, f"{key}:rel", step)
    form = req.form
    parent = ctx.session.get(BudgetLine, int(form["parent_line"]))
    if parent is None:
        raise ValidationError("form.parent_line", f"unknown budget line {form['parent_line']}")
    period = ctx.session.get(BudgetPeriod, parent.period_id)
    cc = ctx.session.get(CostCentre, parent.cost_centre_id)
    assert period is not None and cc is not None
    code = str(form.get("project") or f"P{req.id}")
    setup.create_project(ctx.session, req.company, code, str(form.get("name") or req.title))
    created = []
    for i, ln in enumerate(form["lines"]):
        item = ln.get("item") or ctx.session.scalar(select(BudgetItem.code).where(BudgetItem.id == parent.item_id))
        line = setup.create_line(ctx.session, company_code=req.company, period_code=period.code,
                                 cost_centre=cc.code, item=item, project=code, parent_id=parent.id,
                                 owner=req.requester)
        Budgets(ctx.session).transfer(f"{key}:carve:{i}", parent.id, line.id, ln["amount"],
                                      actor=ctx.actor, reason=f"project {code} approved (request {req.id})")
        created.append({"line_id": line.id, "line": line.code, "amount": ln["amount"]})
    out["action"] = "carve"
    out["project"] = code
    out["lines"] = created
    return out
