"""New-request forms, built from the workflow definitions the user may file.

A definition says what the request is (title, document type) and where it goes; the
form's fields beyond the budget lines are per document type (a purchase names a
vendor, an expense whom to copy). Every line picks its budget line from the lines
the user may charge (:func:`yinfin_flow.budget.choices.chargeable`), never by code.
What the form posts is turned into the API's submit body and checked by the API's
schema and the engine, so the rules are the API's.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import request

from yinfin_flow.domain.errors import ValidationError

from .i18n import lazy

#: Document types the console files, and their fields beyond the lines.
EXTRA_FIELDS: dict[str, list[dict[str, Any]]] = {
    "expense": [{"name": "cc", "label": lazy("Copy to (user id, optional)"), "required": False}],
    "procurement": [{"name": "partner", "label": lazy("Vendor code"), "required": True}],
}
MAX_LINES = 50


def fileable(definitions: dict[str, Any]) -> list[Any]:
    """The definitions people file from the console (expense, procurement)."""
    return [d for _, d in sorted(definitions.items()) if d.document_type in EXTRA_FIELDS]


def posted_lines(currency: str = "CNY") -> list[dict[str, Any]]:
    """``line_id[] amount[] budget_date[] memo[]`` of the posted form as the API's lines
    (rows with neither a line nor an amount are left out)."""
    ids, amounts = request.form.getlist("line_id"), request.form.getlist("amount")
    dates, memos = request.form.getlist("budget_date"), request.form.getlist("memo")
    lines = []
    for i in range(max(len(ids), len(amounts))):
        line_id = (ids[i] if i < len(ids) else "").strip()
        amount = (amounts[i] if i < len(amounts) else "").strip()
        if not line_id and not amount:
            continue
        n = len(lines)
        if not line_id.isdigit() or not 0 < int(line_id) < 2**31:
            raise ValidationError(f"form.lines[{n}].line_id", "pick a budget line")
        on = (dates[i] if i < len(dates) else "").strip() or date.today().isoformat()
        line = {"ref": str(n + 1), "line_id": int(line_id), "amount": amount, "currency": currency,
                "budget_date": on}
        memo = (memos[i] if i < len(memos) else "").strip()
        if memo:
            line["memo"] = memo[:200]
        lines.append(line)
    if len(lines) > MAX_LINES:
        raise ValidationError("form.lines", f"at most {MAX_LINES} lines")
    return lines


def posted_form(document_type: str) -> dict[str, Any]:
    form: dict[str, Any] = {"lines": posted_lines()}
    for f in EXTRA_FIELDS.get(document_type, []):
        value = (request.form.get(f["name"]) or "").strip()
        if value:
            form[f["name"]] = value[:64]
        elif f["required"]:
            raise ValidationError(f"form.{f['name']}", "is required")
    return form
