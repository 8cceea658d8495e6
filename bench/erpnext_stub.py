"""The outbox benchmark's ERP: a local server speaking ERPNext's REST wire format.

It answers what :class:`connectors.erpnext.ERPNextConnector` sends when it posts a
voucher, checked as ERPNext checks it (the same rules as the connector tests' stub,
``tests/connectors/stubs/erpnext.py``), but indexed so that it stays cheap at 10,000
vouchers and runs in its own process with HTTP/1.1 keep-alive:

* token auth (``Authorization: token k:s``), else 401 ``AuthenticationError``;
* ``GET /api/resource/Journal Entry`` with ``filters`` (AND-ed) and ``or_filters``
  (OR-ed) of ``[field, op, value]`` (``=``, ``!=``, ``in``, ``like``), ``fields`` and
  ``limit_page_length``: a ``like`` on ``user_remark`` is served from an index of the
  ``[yinfin:<key>]`` markers, every condition is then checked on the candidates;
* ``GET /api/resource/Account``: the chart's accounts of the company by
  ``account_number``;
* ``POST /api/resource/Journal Entry``: every row's account must exist (417
  ``LinkValidationError``), debits must equal credits (417 ``ValidationError``);
  ``docstatus`` as sent (1: submitted at once);
* ``GET /_arrivals``: the keys in the order they were created, and posts per key
  (what the benchmark checks: exactly once, in order per document).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

COMPANY = "Bench Ltd"
TOKEN = "token k:s"
ACCOUNTS = {"6602": "6602 - Office - B", "2202": "2202 - Payables - B"}
_MARK = re.compile(r"\[yinfin:([^\]]+)\]")


def _error(status: int, exc_type: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"exc_type": exc_type, "exception": f"frappe.exceptions.{exc_type}: {message}",
                    "_server_messages": json.dumps([json.dumps({"message": message})])}


def _ok(doc: dict[str, Any], flt: list[Any]) -> bool:
    field, op, value = flt[-3:]
    have = doc.get(field)
    if op == "=":
        return bool(have == value)
    if op == "!=":
        return bool(have != value)
    if op == "in":
        return have in value
    if op == "like":
        return str(value).strip("%") in str(have or "")
    raise ValueError(op)


class Books:
    """The stub's state: Journal Entries, indexed by their marker."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.by_key: dict[str, list[dict[str, Any]]] = {}
        self.arrivals: list[str] = []
        self.posts: dict[str, int] = {}

    def list(self, doctype: str, q: dict[str, str]) -> tuple[int, Any]:
        filters = json.loads(q.get("filters", "[]"))
        or_filters = json.loads(q.get("or_filters", "[]"))
        fields = json.loads(q.get("fields", '["name"]'))
        limit = int(q.get("limit_page_length") or 20)
        if doctype == "Account":
            docs = [{"name": n, "account_number": c, "company": COMPANY} for c, n in ACCOUNTS.items()]
        elif doctype == "Journal Entry":
            likes = [f for f in filters + or_filters if f[-2] == "like" and f[-3] == "user_remark"]
            if likes:  # the marker index: the candidates any like could match
                docs = list({id(d): d for f in likes for k in _MARK.findall(str(f[-1]))
                             for d in self.by_key.get(k, ())}.values())
            else:
                docs = self.docs
        else:
            docs = []
        rows = [d for d in docs if all(_ok(d, f) for f in filters)
                and (not or_filters or any(_ok(d, f) for f in or_filters))]
        rows.sort(key=lambda d: -int(d.get("seq", 0)))  # ERPNext's default: newest first
        return 200, {"data": [{f: d.get(f) for f in fields} for d in rows[:limit or None]]}

    def insert(self, doc: dict[str, Any]) -> tuple[int, Any]:
        names = set(ACCOUNTS.values())
        for i, row in enumerate(doc.get("accounts") or [], 1):
            if row.get("account") not in names:
                return _error(417, "LinkValidationError",
                              f"Could not find Row #{i}: Account: {row.get('account')}")
        rows = doc.get("accounts") or []
        diff = sum(Decimal(str(r["debit_in_account_currency"])) * Decimal(str(r["exchange_rate"]))
                   - Decimal(str(r["credit_in_account_currency"])) * Decimal(str(r["exchange_rate"]))
                   for r in rows)
        if diff or not rows:
            return _error(417, "ValidationError",
                          f"Total Debit must be equal to Total Credit. The difference is {diff}")
        m = _MARK.search(str(doc.get("user_remark") or ""))
        key = m.group(1) if m else ""
        doc.update(name=f"ACC-JV-2026-{len(self.docs) + 1:07d}", seq=len(self.docs) + 1,
                   docstatus=int(doc.get("docstatus") or 0))
        self.docs.append(doc)
        if key:
            self.by_key.setdefault(key, []).append(doc)
            self.posts[key] = self.posts.get(key, 0) + 1
            self.arrivals.append(key)
        return 200, {"data": doc}


def _serve(port_q: Any) -> None:
    books = Books()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def log_message(self, *a: object) -> None:
            pass

        def _send(self, out: tuple[int, Any]) -> None:
            data = json.dumps(out[1], default=str).encode()
            self.send_response(out[0])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _doctype(self) -> tuple[str, dict[str, str]] | None:
            parts = urlsplit(self.path)
            if self.headers.get("Authorization") != TOKEN:
                self._send(_error(401, "AuthenticationError", "Invalid API key or secret"))
                return None
            return (unquote(parts.path).removeprefix("/api/resource/"),
                    {k: v[0] for k, v in parse_qs(parts.query).items()})

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_arrivals":
                return self._send((200, {"arrivals": books.arrivals, "posts": books.posts}))
            if (found := self._doctype()) is not None:
                self._send(books.list(*found))

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found = self._doctype()
            if found is None:
                return
            if found[0] != "Journal Entry":
                return self._send(_error(403, "PermissionError", f"no inserts of {found[0]}"))
            self._send(books.insert(json.loads(body, parse_float=Decimal)))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    port_q.put(httpd.server_address[1])
    httpd.serve_forever()


def start() -> tuple[mp.process.BaseProcess, str]:
    """Start the stub in its own process; returns it and its base URL."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(q,), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{q.get(timeout=30)}"
