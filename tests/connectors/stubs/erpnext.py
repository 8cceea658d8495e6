"""ERPNext (Frappe) REST stub: ``/api/resource/<Doctype>`` list/get/insert/update.

Lists take ``filters`` (AND-ed), ``or_filters`` (OR-ed) and ``limit_page_length``
(default 20, 0 for all), as Frappe's ``get_list`` does.

Errors are Frappe's: HTTP 417 (ValidationError), 404 (DoesNotExistError), 401
(AuthenticationError) with ``exc_type``, ``exception`` and ``_server_messages`` (a
JSON-encoded list of JSON-encoded ``{"message": ...}`` objects).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from .server import Req, StubServer


def frappe_error(status: int, exc_type: str, message: str) -> tuple:
    return status, {"exc_type": exc_type, "exception": f"frappe.exceptions.{exc_type}: {message}",
                    "exc": "[\"Traceback (most recent call last): ...\"]",
                    "_server_messages": json.dumps([json.dumps(
                        {"message": message, "title": "Message", "indicator": "red",
                         "raise_exception": 1})])}


def _ok(doc: dict, flt: list) -> bool:
    field, op, value = flt
    have = doc.get(field)
    if op == "=":
        return have == value
    if op == "!=":
        return have != value
    if op == "in":
        return have in value
    if op == ">=":
        return have is not None and have >= value
    if op == "<=":
        return have is not None and have <= value
    if op == "like":
        return value.strip("%") in (have or "")
    raise ValueError(op)


class ERPNextStub(StubServer):
    def __init__(self) -> None:
        super().__init__()
        self.docs: dict[str, list[dict[str, Any]]] = {
            "Account": [
                {"name": "6602.01 - Travel - YF", "account_number": "6602.01",
                 "account_name": "Travel", "company": "Yinfin Ltd", "root_type": "Expense",
                 "disabled": 0, "modified": "2026-11-01 09:00:00.000000"},
                {"name": "2241.01 - Payables - YF", "account_number": "2241.01",
                 "account_name": "Payables", "company": "Yinfin Ltd", "root_type": "Liability",
                 "disabled": 0, "modified": "2026-11-01 09:00:00.000000"}],
            "Cost Center": [{"name": "Sales - YF", "cost_center_number": "CC-01",
                             "cost_center_name": "Sales", "company": "Yinfin Ltd", "disabled": 0,
                             "modified": "2026-11-01 09:00:00.000000"}],
            "Journal Entry": [], "Supplier": [], "Project": [], "Budget": [],
        }
        self.drop_answer_once = False
        self.routes.update({("GET", "/api/resource/*"): self.get,
                            ("POST", "/api/resource/*"): self.insert,
                            ("PUT", "/api/resource/*"): self.update})

    def _auth(self, req: Req) -> tuple | None:
        if req.headers.get("authorization") != "token k1:s1":
            return frappe_error(401, "AuthenticationError", "Invalid API key or secret")
        return None

    def _split(self, req: Req) -> tuple[str, str | None]:
        parts = unquote(req.path).removeprefix("/api/resource/").split("/", 1)
        return parts[0], parts[1] if len(parts) > 1 else None

    def get(self, req: Req) -> tuple:
        if (bad := self._auth(req)) is not None:
            return bad
        doctype, name = self._split(req)
        docs = self.docs[doctype]
        if name is not None:
            doc = next((d for d in docs if d["name"] == name), None)
            if doc is None:
                return frappe_error(404, "DoesNotExistError", f"{doctype} {name} not found")
            return 200, {"data": doc}
        filters = json.loads(req.query.get("filters", "[]"))
        or_filters = json.loads(req.query.get("or_filters", "[]"))
        fields = json.loads(req.query.get("fields", '["name"]'))
        rows = [d for d in docs if all(_ok(d, f) for f in filters)
                and (not or_filters or any(_ok(d, f) for f in or_filters))]
        rows = rows[:int(req.query.get("limit_page_length") or 20) or None]
        if req.query.get("order_by", "").startswith("modified"):
            rows.sort(key=lambda d: (d["modified"], d["name"]))
        return 200, {"data": [{f: d.get(f) for f in fields} for d in rows]}

    def insert(self, req: Req) -> tuple:
        if (bad := self._auth(req)) is not None:
            return bad
        doc = req.json()
        accounts = {a["name"] for a in self.docs["Account"]}
        for i, row in enumerate(doc["accounts"], 1):
            if row["account"] not in accounts:
                return frappe_error(417, "LinkValidationError",
                                    f"Could not find Row #{i}: Account: {row['account']}")
        for row in doc["accounts"]:
            rate = Decimal(str(row["exchange_rate"]))
            row["debit"] = Decimal(str(row["debit_in_account_currency"])) * rate
            row["credit"] = Decimal(str(row["credit_in_account_currency"])) * rate
            row["account_currency"] = "CNY" if rate == 1 else "USD"
        diff = sum(r["debit"] - r["credit"] for r in doc["accounts"])
        if diff:
            return frappe_error(417, "ValidationError",
                                f"Total Debit must be equal to Total Credit. The difference is {diff}")
        n = len(self.docs["Journal Entry"]) + 1
        doc.update(name=f"ACC-JV-2026-{n:05d}", modified="2026-11-25 12:00:00.000000")
        self.docs["Journal Entry"].append(doc)
        if self.drop_answer_once:
            self.drop_answer_once = False
            return 502, "Bad Gateway"
        return 200, {"data": doc}

    def update(self, req: Req) -> tuple:
        if (bad := self._auth(req)) is not None:
            return bad
        doctype, name = self._split(req)
        doc = next(d for d in self.docs[doctype] if d["name"] == name)
        if doc["docstatus"] != 0:
            return frappe_error(417, "UpdateAfterSubmitError", "Cannot edit a submitted document")
        doc.update(req.json())
        return 200, {"data": doc}
