"""Odoo ERP through its external API (JSON-RPC at ``/jsonrpc``).

Calls are ``{"service": "common", "method": "authenticate", "args": [db, login,
key, {}]}`` (returns the uid) and ``{"service": "object", "method": "execute_kw",
"args": [db, uid, key, model, method, args, kwargs]}``. An API key works as the
password.

Posting: the idempotency key goes into ``account.move.ref``; ``search_read`` on it
comes first, so a retry finds the move (and posts it if it stayed a draft) instead
of creating another. A new move is ``create`` d with ``move_type`` ``entry``, the
journal, ``line_ids`` as ``(0, 0, {...})`` commands (account, debit, credit, partner,
``analytic_distribution`` for cost centre / project, ``currency_id`` and signed
``amount_currency`` for foreign lines), then ``action_post``; the move's ``name`` is
the voucher number. Amounts go over the wire as JSON numbers with their exact
decimal digits (never through ``float``), and come back parsed as ``Decimal``.

Codes map to Odoo records: accounts by ``code``, partners by ``ref``, cost centres
and projects by the analytic account's ``code``, currencies by ``name``.

Errors: a JSON-RPC ``error`` whose ``data.name`` is a ValidationError / UserError /
AccessError / MissingError / AccessDenied → :class:`PermanentError` with
``data.message`` verbatim; serialization failures and HTTP 5xx / timeouts →
:class:`RetryableError`; ``SessionExpiredException`` → authenticate again once.

Master data (archived records included, so a removal arrives as ``active`` false):
accounts (account.account), cost_centres (account.analytic.account), projects
(project.project), partners (res.partner), by ``write_date`` with ``id`` as the
tie-breaker (watermark ``"<write_date>|<id>"``).

Settings: YINFIN_ODOO_URL, YINFIN_ODOO_DB, YINFIN_ODOO_USERNAME, YINFIN_ODOO_API_KEY,
YINFIN_ODOO_JOURNAL (journal code, default ``MISC``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from .base import PermanentError, RetryableError, Voucher, VoucherLine
from .http import Http, body_json, dumps_numbers, need_object, reading, timeout_setting

NAME = "odoo"
SETTINGS = ("YINFIN_ODOO_URL", "YINFIN_ODOO_DB", "YINFIN_ODOO_USERNAME", "YINFIN_ODOO_API_KEY")
RETRY_ERRORS = ("SerializationFailure", "TransactionRollbackError", "ConcurrencyError",
                "LockNotAvailable")
#: ``execute_kw`` methods that only read: safe to try again within one attempt
READ_METHODS = ("search_read", "read", "search", "search_count")
MASTER_MODELS = {
    "accounts": ("account.account", ["code", "name", "account_type"], "code"),
    "cost_centres": ("account.analytic.account", ["code", "name", "active"], "code"),
    "projects": ("project.project", ["name", "active"], "name"),
    "partners": ("res.partner", ["ref", "name", "active", "supplier_rank"], "ref"),
}


class _SessionExpired(Exception):
    pass


class OdooConnector:
    name = NAME
    master_data_kinds = tuple(MASTER_MODELS)

    def __init__(self, *, url: str, db: str, username: str, api_key: str, journal: str = "MISC",
                 timeout: float | tuple[float, float] = (5.0, 60.0)) -> None:
        self.http = Http(NAME, url, timeout=timeout)
        self.db, self.username, self.api_key, self.journal = db, username, api_key, journal
        self.uid: int | None = None
        self._ids = itertools.count(1)

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> OdooConnector:
        return cls(url=s["YINFIN_ODOO_URL"], db=s["YINFIN_ODOO_DB"],
                   username=s["YINFIN_ODOO_USERNAME"], api_key=s["YINFIN_ODOO_API_KEY"],
                   journal=s.get("YINFIN_ODOO_JOURNAL") or "MISC",
                   timeout=timeout_setting(s, "YINFIN_ODOO_TIMEOUT", (5.0, 60.0)))

    def message_budget(self) -> float:
        """Seconds one voucher may take at most: authenticate, look the key up, the
        journal/account/partner/analytic/currency look-ups, create, post, read the
        name (every call a JSON-RPC POST; only create and post change anything)."""
        return self.http.budget(reads=9, writes=2)

    # -- JSON-RPC -------------------------------------------------------------------

    def _rpc(self, service: str, method: str, args: list[Any], *, read: bool = False) -> Any:
        payload = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                   "params": {"service": service, "method": method, "args": args}}
        send = self.http.read if read else self.http.request
        resp = send("POST", "/jsonrpc", data=dumps_numbers(payload).encode(),
                                 headers={"Content-Type": "application/json"})
        data = need_object(body_json(resp, NAME), NAME, f"the answer to {method}")
        if "error" not in data:
            return data.get("result")
        with reading(NAME, f"the error answer to {method}"):
            err = need_object(data["error"], NAME, f"the error answer to {method}")
            info = need_object(err.get("data") or {}, NAME, f"the error answer to {method}")
            name = str(info.get("name", ""))
            message = str(info.get("message") or err.get("message"))
        if name.endswith("SessionExpiredException"):
            raise _SessionExpired(message)
        if any(n in name for n in RETRY_ERRORS):
            raise RetryableError(message, connector=NAME)
        raise PermanentError(message, connector=NAME)

    def authenticate(self) -> int:
        uid = self._rpc("common", "authenticate", [self.db, self.username, self.api_key, {}],
                        read=True)
        if not uid:  # Odoo answers false for a bad login, not an error
            raise PermanentError("Odoo refused the login (check user and API key)",
                                 connector=NAME)
        self.uid = int(uid)
        return self.uid

    def execute(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``execute_kw`` with one re-authentication if Odoo says the session expired."""
        for attempt in (1, 2):
            uid = self.uid or self.authenticate()
            try:
                return self._rpc("object", "execute_kw",
                                 [self.db, uid, self.api_key, model, method, list(args), kwargs],
                                 read=method in READ_METHODS)
            except _SessionExpired as err:
                self.uid = None
                if attempt == 2:
                    raise PermanentError(f"session expired again: {err}", connector=NAME) from None
        raise AssertionError("unreachable")

    # -- vouchers -------------------------------------------------------------------

    def post_voucher(self, voucher: Voucher, idempotency_key: str) -> str:
        found = self.execute("account.move", "search_read",
                             [["ref", "=", idempotency_key], ["state", "!=", "cancel"]],
                             fields=["id", "name", "state"], limit=1)
        if found:
            with reading(NAME, "the move found by its key"):
                move_id, state = int(found[0]["id"]), found[0]["state"]
            if state == "draft":
                self.execute("account.move", "action_post", [move_id])
        else:
            created = self.execute("account.move", "create", self._move(voucher, idempotency_key))
            with reading(NAME, "the id of the move just created"):
                move_id = int(created[0] if isinstance(created, list) else created)
            self.execute("account.move", "action_post", [move_id])
        with reading(NAME, f"move {move_id}"):
            [move] = self.execute("account.move", "read", [move_id], fields=["name"])
            return str(move["name"])

    def _lookup(self, model: str, field: str, codes: set[str], what: str) -> dict[str, int]:
        if not codes:
            return {}
        rows = self.execute(model, "search_read", [[field, "in", sorted(codes)]],
                            fields=["id", field])
        with reading(NAME, f"the {model} look-up"):
            found = {str(r[field]): int(r["id"]) for r in rows}
        missing = sorted(codes - set(found))
        if missing:
            raise PermanentError(f"{what} not found in Odoo: {', '.join(missing)}", connector=NAME)
        return found

    def _move(self, v: Voucher, key: str) -> dict[str, Any]:
        journal = self._lookup("account.journal", "code", {self.journal}, "journal")
        accounts = self._lookup("account.account", "code", {ln.account for ln in v.lines},
                                "account")
        partners = self._lookup("res.partner", "ref",
                                {ln.partner for ln in v.lines if ln.partner}, "partner")
        analytic = self._lookup("account.analytic.account", "code",
                                {c for ln in v.lines for c in (ln.cost_centre, ln.project) if c},
                                "analytic account")
        foreign = {ln.currency for ln in v.lines if ln.currency != v.currency}
        currencies = self._lookup("res.currency", "name", foreign, "currency")
        lines = []
        for ln in v.lines:
            vals: dict[str, Any] = {"account_id": accounts[ln.account], "name": ln.memo or v.memo,
                                    "debit": ln.debit, "credit": ln.credit}
            if ln.partner:
                vals["partner_id"] = partners[ln.partner]
            dims = [analytic[c] for c in (ln.cost_centre, ln.project) if c]
            if dims:
                vals["analytic_distribution"] = {str(i): 100 for i in dims}
            if ln.currency != v.currency:
                vals["currency_id"] = currencies[ln.currency]
                vals["amount_currency"] = ln.amount if ln.debit else -ln.amount
            lines.append([0, 0, vals])
        return {"move_type": "entry", "journal_id": journal[self.journal],
                "date": v.date.isoformat(), "ref": key, "narration": v.memo, "line_ids": lines}

    def read_voucher(self, number_or_key: str) -> Voucher | None:
        moves = self.execute("account.move", "search_read",
                             ["|", ["name", "=", number_or_key], ["ref", "=", number_or_key]],
                             fields=["id", "name", "date", "ref", "narration"], limit=1)
        if not moves:
            return None
        with reading(NAME, f"move {number_or_key}"):
            return self._voucher(moves[0])

    def _voucher(self, m: dict[str, Any]) -> Voucher:
        rows = self.execute("account.move.line", "search_read", [["move_id", "=", m["id"]]],
                            fields=["account_id", "name", "debit", "credit", "currency_id",
                                    "amount_currency"], order="id asc")
        codes = {int(a["id"]): str(a["code"]) for a in self.execute(
            "account.account", "read", sorted({r["account_id"][0] for r in rows}),
            fields=["code"])}
        lines = tuple(VoucherLine(
            account=codes[r["account_id"][0]], debit=Decimal(r["debit"]),
            credit=Decimal(r["credit"]),
            currency=str(r["currency_id"][1]) if r.get("currency_id") else "",
            amount=abs(Decimal(r.get("amount_currency") or 0)), memo=str(r.get("name") or ""),
        ) for r in rows)
        return Voucher(company=self.db, date=date.fromisoformat(str(m["date"])),
                       memo=str(m.get("narration") or ""), lines=lines, number=str(m["name"]),
                       key=m.get("ref") or None)

    def keyed_vouchers(self, start: date, end: date) -> list[tuple[str, str]]:
        """(key, move name) of every move dated ``start``..``end`` whose ``ref`` holds
        one of our keys (``yf-…``), cancelled ones aside."""
        moves = self.execute("account.move", "search_read",
                             [["ref", "=like", "yf-%"], ["state", "!=", "cancel"],
                              ["date", ">=", start.isoformat()], ["date", "<=", end.isoformat()]],
                             fields=["name", "ref"])
        with reading(NAME, "the keyed moves"):
            return [(str(m["ref"]), str(m["name"])) for m in moves]

    # -- master data ----------------------------------------------------------------

    def changed_master_data(self, kind: str, watermark: str | None
                            ) -> tuple[list[dict[str, Any]], str | None]:
        if kind not in MASTER_MODELS:
            raise PermanentError(f"Odoo master data {kind!r} is not supported "
                                 f"(have {', '.join(MASTER_MODELS)})", connector=NAME)
        model, fields, code_field = MASTER_MODELS[kind]
        domain: list[Any] = []
        if watermark:
            when, _, last = watermark.partition("|")
            domain = ["|", ["write_date", ">", when], "&", ["write_date", "=", when],
                      ["id", ">", int(last or 0)]]
        rows = self.execute(model, "search_read", domain,
                            fields=["id", "write_date", *fields], order="write_date asc, id asc",
                            limit=500, context={"active_test": False})
        with reading(NAME, f"the {model} records"):
            records = [{**r, "code": r.get(code_field), "active": r.get("active", True)}
                       for r in rows]
        if records:
            watermark = f"{records[-1]['write_date']}|{records[-1]['id']}"
        return records, watermark
