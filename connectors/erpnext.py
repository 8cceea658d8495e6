"""ERPNext (Frappe) ERP over its REST API.

Auth: header ``Authorization: token <api_key>:<api_secret>`` (an API user's keys).

Posting: ``POST /api/resource/Journal Entry`` with ``voucher_type`` "Journal Entry",
``company``, ``posting_date``, ``user_remark``, ``multi_currency`` and ``accounts``
rows (``account``, ``debit_in_account_currency`` / ``credit_in_account_currency``,
``exchange_rate``, ``cost_center``, ``project``, ``party_type`` / ``party``) and
``docstatus`` 1, so it is saved and submitted in one call. The idempotency key is
either a custom field you add (YINFIN_ERPNEXT_KEY_FIELD, matched with ``=``) or, by
default, a ``[yinfin:<key>]`` marker in ``user_remark`` (matched with ``like``, then
checked exactly). The lookup comes first; a draft found there (``docstatus`` 0) is
submitted with ``PUT … {"docstatus": 1}`` rather than created again.

A batch (the dispatcher's pass): :meth:`ERPNextConnector.prepare_vouchers` looks up
every key of the batch (``or_filters`` of the markers, or ``in`` on the key field, a
few dozen keys per call) and every account and cost centre number in one call each,
right before the batch is posted; each ``post_voucher(…, prepared=…)`` then needs only
its insert. A key the batch look-up could not settle (a page that came back full) is
looked up on its own, as without a batch.

Codes map to ERPNext names: accounts by ``account_number``, cost centres by
``cost_center_number`` (both within the company), projects and parties by name.

Errors: ERPNext answers 4xx with ``exc_type`` and ``_server_messages`` (a JSON list
of JSON objects with ``message``) or ``exception``; those become
:class:`PermanentError` with the message(s) verbatim, except lock/deadlock/timestamp
conflicts, which are retryable like 5xx, 429 and timeouts.

Master data (``modified`` watermark, ``"<modified>|<name>"``): accounts (Account),
cost_centres (Cost Center), projects (Project), partners (Supplier), budgets
(Budget headers).

Settings: YINFIN_ERPNEXT_URL, YINFIN_ERPNEXT_API_KEY, YINFIN_ERPNEXT_API_SECRET,
YINFIN_ERPNEXT_COMPANY, optional YINFIN_ERPNEXT_KEY_FIELD, YINFIN_ERPNEXT_PARTY_TYPE
(default Supplier).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from .base import PermanentError, RetryableError, Voucher, VoucherLine
from .http import (
    Http,
    MalformedReply,
    body_json,
    dumps_numbers,
    loads,
    need_list,
    need_object,
    reading,
    timeout_setting,
)

NAME = "erpnext"
JE = "/api/resource/Journal%20Entry"
SETTINGS = ("YINFIN_ERPNEXT_URL", "YINFIN_ERPNEXT_API_KEY", "YINFIN_ERPNEXT_API_SECRET",
            "YINFIN_ERPNEXT_COMPANY")
#: at most this many characters of ``or_filters`` per look-up (they go in the URL, which
#: proxies commonly cap at 8 KiB once percent-encoded)
KEY_FILTER_CHARS = 2000
LIST_LIMIT = 500
RETRY_EXC = {"QueryDeadlockError", "QueryTimeoutError", "TimestampMismatchError",
             "DocumentLockedError", "TooManyRequestsError"}
MASTER_DOCTYPES = {
    "accounts": ("Account", ["account_number", "account_name", "root_type", "disabled"],
                 "account_number"),
    "cost_centres": ("Cost Center", ["cost_center_number", "cost_center_name", "disabled"],
                     "cost_center_number"),
    "projects": ("Project", ["project_name", "status", "is_active"], "name"),
    "partners": ("Supplier", ["supplier_name", "disabled"], "name"),
    "budgets": ("Budget", ["budget_against", "cost_center", "project", "fiscal_year",
                           "docstatus"], "name"),
}


def frappe_message(data: Mapping[str, Any], fallback: str) -> str:
    """The human message(s) of a Frappe error body, verbatim."""
    raw = data.get("_server_messages")
    if raw:
        try:
            msgs = [loads(m).get("message", m) if isinstance(m, str) and m.startswith("{") else m
                    for m in loads(raw)]
            if msgs:
                return "; ".join(str(m) for m in msgs)
        except (ValueError, AttributeError):
            pass
    exc = data.get("exception")
    if exc:
        return str(exc).split(": ", 1)[-1]
    return str(data.get("message") or data.get("exc_type") or fallback)


@dataclass(frozen=True)
class Prepared:
    """What posting a batch needs, read from ERPNext just before the batch is posted.

    ``settled`` keys were looked up: ``found`` holds the live (not cancelled) voucher
    of each that has one, so a settled key missing from ``found`` had none."""

    settled: frozenset[str] = frozenset()
    found: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    centres: dict[str, str] = field(default_factory=dict)


class ERPNextConnector:
    name = NAME
    master_data_kinds = tuple(MASTER_DOCTYPES)

    def __init__(self, *, url: str, api_key: str, api_secret: str, company: str,
                 key_field: str = "", party_type: str = "Supplier",
                 timeout: float | tuple[float, float] = (5.0, 60.0)) -> None:
        self.http = Http(NAME, url, timeout=timeout)
        self.http.session.headers["Authorization"] = f"token {api_key}:{api_secret}"
        self.http.session.headers["Accept"] = "application/json"
        self.company, self.key_field, self.party_type = company, key_field, party_type

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> ERPNextConnector:
        return cls(url=s["YINFIN_ERPNEXT_URL"], api_key=s["YINFIN_ERPNEXT_API_KEY"],
                   api_secret=s["YINFIN_ERPNEXT_API_SECRET"], company=s["YINFIN_ERPNEXT_COMPANY"],
                   key_field=s.get("YINFIN_ERPNEXT_KEY_FIELD", ""),
                   party_type=s.get("YINFIN_ERPNEXT_PARTY_TYPE") or "Supplier",
                   timeout=timeout_setting(s, "YINFIN_ERPNEXT_TIMEOUT", (5.0, 60.0)))

    def message_budget(self) -> float:
        """Seconds one voucher may take at most: its key, account and cost-centre
        look-ups (reads, each retried within the attempt) and one insert or submit."""
        return self.http.budget(reads=3, writes=1)

    # -- HTTP -----------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, missing_ok: bool = False) -> Any:
        q = {k: v if isinstance(v, str | int) else json.dumps(v) for k, v in (params or {}).items()}
        kwargs: dict[str, Any] = {"params": q}
        if body is not None:
            kwargs["data"] = dumps_numbers(body).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        send = self.http.read if method == "GET" else self.http.request
        resp: requests.Response = send(method, path, **kwargs)
        if resp.status_code == 404 and missing_ok:
            return None
        data = need_object(body_json(resp, NAME), NAME, f"{method} {path}")
        if resp.status_code < 400:
            return data.get("data")
        message = frappe_message(data, f"HTTP {resp.status_code}")
        if data.get("exc_type") in RETRY_EXC:
            raise RetryableError(message, connector=NAME, status=resp.status_code)
        raise PermanentError(message, connector=NAME, status=resp.status_code)

    def _list(self, doctype: str, fields: list[str], filters: list[Any], order_by: str = "",
              limit: int = LIST_LIMIT, or_filters: list[Any] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"fields": fields, "filters": filters,
                                  "limit_page_length": limit}
        if or_filters:
            params["or_filters"] = or_filters
        if order_by:
            params["order_by"] = order_by
        rows = need_list(self._call("GET", f"/api/resource/{quote(doctype)}", params=params) or [],
                         NAME, f"list of {doctype}")
        for row in rows:
            need_object(row, NAME, f"a row of the list of {doctype}")
        return rows

    # -- vouchers -------------------------------------------------------------------

    def _marker(self, key: str) -> str:
        return f"[yinfin:{key}]"

    def _find(self, key: str) -> dict[str, Any] | None:
        return self._find_many([key])[1].get(key)

    def _find_many(self, keys: Sequence[str]) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """(keys settled, live voucher per key found); one call per chunk of keys.

        A chunk whose answer fills a whole page might have more: the keys it did not
        find stay unsettled.
        """
        settled: set[str] = set()
        found: dict[str, dict[str, Any]] = {}
        key_of = self.key_field or "user_remark"
        for chunk in _chunks(list(dict.fromkeys(keys)), self._marker):
            filters: list[Any] = [["docstatus", "!=", 2]]
            or_filters: list[Any] = []
            if self.key_field:
                filters.insert(0, [key_of, "=", chunk[0]] if len(chunk) == 1
                               else [key_of, "in", chunk])
            else:
                # LIKE treats _ and % in a key as wildcards: each row is matched exactly below
                likes = [[key_of, "like", f"%{self._marker(k)}%"] for k in chunk]
                if len(likes) == 1:
                    filters.insert(0, likes[0])
                else:
                    or_filters = likes
            rows = self._list("Journal Entry", ["name", "docstatus", key_of], filters,
                              or_filters=or_filters)
            sure = len(rows) < LIST_LIMIT
            for row in rows:  # in ERPNext's order (newest first): the first match wins
                have = str(row.get(key_of) or "")
                if self.key_field and len(chunk) == 1:
                    mine = chunk  # the server's own "=" decided, as it always has
                elif self.key_field:
                    mine = [k for k in chunk if have == k]
                    # the server's "in" may compare otherwise (case, trailing spaces):
                    # leave the chunk's unfound keys to the one-key look-up
                    sure = sure and bool(mine)
                else:
                    mine = [k for k in chunk if self._marker(k) in have]
                for k in mine:
                    found.setdefault(k, row)
            if sure:
                settled.update(chunk)
        return settled, found

    def prepare_vouchers(self, items: Sequence[tuple[Voucher, str]]) -> Prepared:
        """Look up a batch's keys, accounts and cost centres in a few calls (see above)."""
        settled, found = self._find_many([key for _, key in items])
        lines = [ln for v, _ in items for ln in v.lines]
        return Prepared(
            frozenset(settled), found,
            self._names("Account", "account_number", {ln.account for ln in lines}, "account",
                        missing_ok=True),
            self._names("Cost Center", "cost_center_number",
                        {ln.cost_centre for ln in lines if ln.cost_centre}, "cost centre",
                        missing_ok=True))

    def post_voucher(self, voucher: Voucher, idempotency_key: str,
                     prepared: Prepared | None = None) -> str:
        if prepared is not None and (idempotency_key in prepared.found
                                     or idempotency_key in prepared.settled):
            found = prepared.found.get(idempotency_key)
        else:
            found = self._find(idempotency_key)
        if found:
            name = _name(found, "the Journal Entry found by its key")
            if found.get("docstatus") == 0:
                self._call("PUT", f"{JE}/{quote(name)}", body={"docstatus": 1})
            return name
        doc = self._call("POST", JE, body=self._doc(voucher, idempotency_key, prepared))
        return _name(doc, "the Journal Entry just created")

    def _names(self, doctype: str, number_field: str, codes: set[str], what: str, *,
               known: Mapping[str, str] | None = None, missing_ok: bool = False
               ) -> dict[str, str]:
        if known is not None and codes <= known.keys():
            return {c: known[c] for c in codes}
        if not codes:
            return {}
        rows = self._list(doctype, ["name", number_field],
                          [[number_field, "in", sorted(codes)], ["company", "=", self.company]])
        with reading(NAME, f"the list of {doctype}"):
            found = {str(r[number_field]): str(r["name"]) for r in rows}
        if (missing := sorted(codes - set(found))) and not missing_ok:
            raise PermanentError(f"{what} not found in ERPNext company {self.company}: "
                                 f"{', '.join(missing)}", connector=NAME)
        return found

    def _doc(self, v: Voucher, key: str, prepared: Prepared | None = None) -> dict[str, Any]:
        # a number the batch look-up did not find is looked up again (and refused if missing)
        accounts = self._names("Account", "account_number", {ln.account for ln in v.lines},
                               "account", known=None if prepared is None else prepared.accounts)
        centres = self._names("Cost Center", "cost_center_number",
                              {ln.cost_centre for ln in v.lines if ln.cost_centre}, "cost centre",
                              known=None if prepared is None else prepared.centres)
        rows = []
        for ln in v.lines:
            foreign = ln.currency != v.currency
            row: dict[str, Any] = {
                "account": accounts[ln.account],
                "debit_in_account_currency": ln.amount if foreign and ln.debit else ln.debit,
                "credit_in_account_currency": ln.amount if foreign and ln.credit else ln.credit,
                "exchange_rate": ln.rate if foreign else Decimal(1),
                "user_remark": ln.memo,
            }
            if ln.cost_centre:
                row["cost_center"] = centres[ln.cost_centre]
            if ln.project:
                row["project"] = ln.project
            if ln.partner:
                row["party_type"], row["party"] = self.party_type, ln.partner
            rows.append(row)
        doc: dict[str, Any] = {
            "voucher_type": "Journal Entry", "company": self.company,
            "posting_date": v.date.isoformat(), "accounts": rows, "docstatus": 1,
            "multi_currency": int(any(ln.currency != v.currency for ln in v.lines)),
            "user_remark": v.memo if self.key_field else f"{v.memo} {self._marker(key)}",
        }
        if self.key_field:
            doc[self.key_field] = key
        return doc

    def read_voucher(self, number_or_key: str) -> Voucher | None:
        doc = self._call("GET", f"{JE}/{quote(number_or_key)}", missing_ok=True)
        if doc is None:
            found = self._find(number_or_key)
            if not found:
                return None
            doc = self._call("GET", f"{JE}/{quote(_name(found, 'the Journal Entry found'))}")
        with reading(NAME, f"Journal Entry {number_or_key}"):
            return self._voucher(need_object(doc, NAME, f"Journal Entry {number_or_key}"))

    def _voucher(self, doc: dict[str, Any]) -> Voucher:
        names = sorted({r["account"] for r in doc["accounts"]})
        numbers = {r["name"]: str(r.get("account_number") or r["name"]) for r in self._list(
            "Account", ["name", "account_number"], [["name", "in", names]])}
        lines = tuple(VoucherLine(
            account=numbers.get(r["account"], r["account"]), debit=Decimal(r["debit"]),
            credit=Decimal(r["credit"]), currency=str(r.get("account_currency") or ""),
            amount=Decimal(r["debit_in_account_currency"] or r["credit_in_account_currency"]),
            rate=Decimal(r.get("exchange_rate") or 1), memo=str(r.get("user_remark") or ""),
            cost_centre=r.get("cost_center"), project=r.get("project"), partner=r.get("party"),
        ) for r in doc["accounts"])
        return Voucher(company=str(doc["company"]), date=date.fromisoformat(doc["posting_date"]),
                       memo=str(doc.get("user_remark") or ""), lines=lines, number=doc["name"],
                       key=(doc.get(self.key_field) if self.key_field else None))

    def keyed_vouchers(self, start: date, end: date) -> list[tuple[str, str]]:
        """(key, ERPNext name) of every live Journal Entry dated ``start``..``end`` that
        carries one of our keys: reconciliation finds duplicates and strays with it."""
        key_of = self.key_field or "user_remark"
        filters: list[Any] = [["docstatus", "!=", 2], ["posting_date", ">=", start.isoformat()],
                              ["posting_date", "<=", end.isoformat()]]
        filters.append([key_of, "like", "%"] if self.key_field else [key_of, "like", "%[yinfin:%"])
        out: list[tuple[str, str]] = []
        with reading(NAME, "the list of keyed Journal Entries"):
            for row in self._list("Journal Entry", ["name", key_of], filters, limit=0):
                have = str(row.get(key_of) or "")
                if self.key_field:
                    key = have
                else:
                    found = re.search(r"\[yinfin:(.+?)\](?!.*\[yinfin:)", have, re.S)
                    key = found.group(1) if found else ""
                if key:
                    out.append((key, str(row["name"])))
        return out

    # -- master data ----------------------------------------------------------------

    def changed_master_data(self, kind: str, watermark: str | None
                            ) -> tuple[list[dict[str, Any]], str | None]:
        if kind not in MASTER_DOCTYPES:
            raise PermanentError(f"ERPNext master data {kind!r} is not supported", connector=NAME)
        doctype, fields, code_field = MASTER_DOCTYPES[kind]
        when, _, last = (watermark or "").partition("|")
        filters = [["modified", ">=", when]] if when else []
        rows = self._list(doctype, ["name", "modified", *fields], filters,
                          order_by="modified asc, name asc")
        # ">=" then drop what the watermark already covered: exact with same-second ties
        with reading(NAME, f"the list of {doctype}"):
            rows = [r for r in rows if (r["modified"], r["name"]) > (when, last)]
            records = [{**r, "code": r.get(code_field) or r["name"],
                        "active": not r.get("disabled") and r.get("is_active", "Yes") != "No"}
                       for r in rows]
        if records:
            watermark = f"{records[-1]['modified']}|{records[-1]['name']}"
        return records, watermark


def _name(doc: Any, what: str) -> str:
    """The ``name`` of a document ERPNext answered with (:class:`MalformedReply` if none)."""
    name = need_object(doc, NAME, what).get("name")
    if not isinstance(name, str) or not name:
        raise MalformedReply(f"{what}: the answer has no name", connector=NAME)
    return name


def _chunks(keys: list[str], marker: Any) -> list[list[str]]:
    """``keys`` in runs whose look-up filters stay under :data:`KEY_FILTER_CHARS`."""
    out: list[list[str]] = []
    size = KEY_FILTER_CHARS
    for k in keys:
        cost = len(json.dumps(["user_remark", "like", f"%{marker(k)}%"]))
        if size + cost > KEY_FILTER_CHARS and (not out or out[-1]):
            out.append([])
            size = 0
        out[-1].append(k)
        size += cost
    return out
