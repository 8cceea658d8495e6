"""Odoo JSON-RPC stub (``/jsonrpc``): common.authenticate and object.execute_kw on the
models the connector uses, with Odoo's error envelope::

    {"jsonrpc": "2.0", "id": n, "error": {"code": 200, "message": "Odoo Server Error",
     "data": {"name": "odoo.exceptions.UserError", "message": "...", "arguments": [...]}}}

Domains support ``=``, ``!=``, ``in``, ``>`` and the prefix ``|`` / ``&`` operators.
Amounts are read from the request as Decimal and answered as JSON numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .server import Req, StubServer


def _match(rec: dict[str, Any], domain: list[Any]) -> bool:
    def term(t: list[Any]) -> bool:
        field, op, value = t
        have = rec.get(field)
        if isinstance(have, list):  # many2one [id, name]
            have = have[0]
        return {"=": lambda: have == value, "!=": lambda: have != value,
                "in": lambda: have in value, ">": lambda: have is not None and have > value}[op]()

    def parse(i: int) -> tuple[bool, int]:
        tok = domain[i]
        if tok in ("|", "&"):
            a, i = parse(i + 1)
            b, i = parse(i)
            return (a or b) if tok == "|" else (a and b), i
        return term(tok), i + 1

    result, i = True, 0
    while i < len(domain):  # top-level terms are implicitly and-ed
        ok, i = parse(i)
        result = result and ok
    return result


class OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message


class OdooStub(StubServer):
    def __init__(self) -> None:
        super().__init__()
        self.expired = False
        self.lose_answer_after_create = False
        self.tables: dict[str, list[dict[str, Any]]] = {
            "account.journal": [{"id": 3, "code": "MISC", "name": "Miscellaneous"}],
            "account.account": [
                {"id": 10, "code": "6602.01", "name": "Travel", "account_type": "expense",
                 "write_date": "2026-11-01 09:00:00"},
                {"id": 11, "code": "2241.01", "name": "Payables", "account_type": "liability",
                 "write_date": "2026-11-01 09:00:00"}],
            "res.partner": [{"id": 7, "ref": "E001", "name": "Zhang San", "active": True,
                             "supplier_rank": 0, "write_date": "2026-11-01 09:00:00"}],
            "account.analytic.account": [{"id": 5, "code": "CC-01", "name": "Sales",
                                          "active": True, "write_date": "2026-11-01 09:00:00"}],
            "res.currency": [{"id": 1, "name": "CNY"}, {"id": 2, "name": "USD"}],
            "account.move": [], "account.move.line": [], "project.project": [],
        }
        self.routes[("POST", "/jsonrpc")] = self.rpc

    def rpc(self, req: Req) -> tuple:
        body = req.json()
        p = body["params"]
        try:
            if p["service"] == "common" and p["method"] == "authenticate":
                db, login, key, _ = p["args"]
                result: Any = 2 if (db, login, key) == ("prod", "api@corp", "key-1") else False
            elif p["service"] == "object" and p["method"] == "execute_kw":
                db, uid, key, model, method, args, kwargs = p["args"]
                if (db, uid, key) != ("prod", 2, "key-1"):
                    raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")
                if self.expired:
                    self.expired = False
                    raise OdooError("odoo.http.SessionExpiredException", "Session expired")
                result = getattr(self, "m_" + method)(model, args, kwargs)
            else:
                raise OdooError("werkzeug.exceptions.NotFound", "unknown call")
        except OdooError as err:
            return 200, {"jsonrpc": "2.0", "id": body["id"], "error": {
                "code": 200, "message": "Odoo Server Error",
                "data": {"name": err.name, "message": err.message, "arguments": [err.message],
                         "debug": "Traceback ...", "context": {}}}}
        if self.lose_answer_after_create and p["method"] == "execute_kw" \
                and p["args"][4] == "action_post":
            self.lose_answer_after_create = False
            return 504, "Gateway Time-out"
        return 200, {"jsonrpc": "2.0", "id": body["id"], "result": result}

    def m_search_read(self, model: str, args: list, kw: dict) -> list[dict[str, Any]]:
        rows = [r for r in self.tables[model] if _match(r, args[0])]
        if model == "account.move.line":
            rows.sort(key=lambda r: r["id"])
        if kw.get("order", "").startswith("write_date"):
            rows.sort(key=lambda r: (r["write_date"], r["id"]))
        if kw.get("limit"):
            rows = rows[: kw["limit"]]
        fields = kw.get("fields")
        return [{f: r.get(f) for f in ["id", *fields]} if fields else r for r in rows]

    def m_read(self, model: str, args: list, kw: dict) -> list[dict[str, Any]]:
        ids = args[0]
        return [{f: r.get(f) for f in ["id", *kw.get("fields", [])]}
                for r in self.tables[model] if r["id"] in ids]

    def m_create(self, model: str, args: list, kw: dict) -> int:
        vals = args[0]
        move_id = len(self.tables["account.move"]) + 1
        accounts = {a["id"]: a for a in self.tables["account.account"]}
        for _, _, line in vals["line_ids"]:
            if line["account_id"] not in accounts:
                raise OdooError("odoo.exceptions.ValidationError", "Invalid account")
        self.tables["account.move"].append({"id": move_id, "name": "/", "state": "draft",
                                            "ref": vals["ref"], "date": vals["date"],
                                            "narration": vals["narration"],
                                            "journal_id": vals["journal_id"]})
        for _, _, line in vals["line_ids"]:
            self.tables["account.move.line"].append({
                "id": len(self.tables["account.move.line"]) + 1, "move_id": [move_id, "/"],
                "account_id": [line["account_id"], accounts[line["account_id"]]["code"]],
                "name": line["name"], "debit": line["debit"], "credit": line["credit"],
                "currency_id": [line.get("currency_id", 1), "CNY" if "currency_id" not in line
                                else "USD"], "amount_currency": line.get("amount_currency", 0),
                "partner_id": line.get("partner_id"),
                "analytic_distribution": line.get("analytic_distribution")})
        return move_id

    def m_action_post(self, model: str, args: list, kw: dict) -> bool:
        for move_id in args[0]:
            move = self.tables["account.move"][move_id - 1]
            lines = [ln for ln in self.tables["account.move.line"] if ln["move_id"][0] == move_id]
            if sum(Decimal(str(ln["debit"])) - Decimal(str(ln["credit"])) for ln in lines):
                raise OdooError("odoo.exceptions.UserError",
                                f"The move (MISC/{move_id}) is not balanced.")
            if move["state"] != "draft":
                raise OdooError("odoo.exceptions.UserError", "Only draft journal entries can be posted.")
            move["state"], move["name"] = "posted", f"MISC/2026/{move_id:05d}"
        return True
