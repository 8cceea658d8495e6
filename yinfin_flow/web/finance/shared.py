"""What the budget side's finance pages share: the databases they read and write, the
rule form as the API's rule body, amounts as text for charts, links by path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response, current_app, make_response, redirect, request, url_for

from yinfin_flow.budget.service import Budgets
from yinfin_flow.domain.budget import ControlRule
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.money import MINOR_UNITS, in_minor_units
from yinfin_flow.extension import FlowState, state

from ..common import htmx


def flow() -> FlowState:
    return state(current_app)


def default_rule(session: Any) -> ControlRule:
    """The rule a line without one falls back to (the site's default mode)."""
    return Budgets(session, default_mode=flow().settings.default_control_mode).default_rule


def text_amount(value: Decimal | None, currency: str) -> str:
    """An amount as plain text in the currency's minor units: what charts get (never a float)."""
    if value is None:
        return "0"
    return in_minor_units(value, currency) if currency in MINOR_UNITS else str(value)


def path_to(rest: str) -> str:
    """A console path built by hand (for pages another module owns, e.g. vouchers)."""
    root = url_for("console.finance_budget")
    return root[: -len("/finance/budget")] + rest


def back(target: str) -> Response:
    """Where a successful form goes next (htmx: by HX-Redirect)."""
    if htmx():
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = target
        return resp
    return redirect(target)


def form_text(name: str) -> str | None:
    value = (request.values.get(name) or "").strip()
    return value or None


def thresholds(raw: str | None, field: str = "thresholds") -> list[dict[str, Any]] | None:
    """``90:warn, 100:block!`` (as rules are written: ``!`` notifies) as the API's list."""
    if raw is None or not raw.strip():
        return None
    out = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        percent, sep, action = part.partition(":")
        if not sep or not percent.strip() or not action.strip():
            raise ValidationError(field, f"{part!r}: write each threshold as percent:action, e.g. 90:warn")
        action = action.strip()
        out.append({"percent": percent.strip(), "action": action.rstrip("!"), "notify": action.endswith("!")})
    return out


def rule_form() -> dict[str, Any]:
    """The rule fields of the posted (or queried) form as the API's JSON body has them."""
    data: dict[str, Any] = {}
    for key in ("mode", "basis", "tolerance_percent", "tolerance_amount", "reason"):
        value = form_text(key)
        if value is not None:
            data[key] = value
    found = thresholds(form_text("thresholds"))
    if found is not None:
        data["thresholds"] = found
    subtree = request.values.get("subtree") or "1"
    if subtree not in ("0", "1"):
        raise ValidationError("subtree", "must be 1 (the line and the lines below it) or 0 (this line only)")
    data["subtree"] = subtree == "1"
    return data

