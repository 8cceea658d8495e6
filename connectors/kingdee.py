"""Kingdee K3Cloud (金蝶云星空) ERP through its WebAPI (``*.common.kdsvc`` endpoints).

Login: ``Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret`` (when an
app id/secret is configured, the third-party-system login) or ``…ValidateUser``
(user + password); success is ``LoginResultType`` 1 and the session lives in the
``kdservice-sessionid`` cookie. When Kingdee answers that the session is lost
(``MsgCode`` 1) we log in again once and repeat the call.

Posting a voucher (form ``GL_VOUCHER``): ``DynamicFormService.Save`` with a
``Model`` (FAccountBookID, FDate, FVOUCHERGROUPID, FEntity rows with FEXPLANATION,
FACCOUNTID, FCURRENCYID, FEXCHANGERATE, FAMOUNTFOR, FDEBIT, FCREDIT and the
FDetailID dimensions), then ``Submit`` and ``Audit`` by id. The idempotency key is
written into every entry's 摘要 as a marker ``(yf:<16 hex of sha256(key)>)``
(fixed length, so it never overflows the column; no ``[ ] _ %``, which SQL Server's
LIKE would read as wildcards) and looked up with
``ExecuteBillQuery`` before saving; a voucher found half-way (saved but not
audited) is taken on from where it stopped, so a retry never makes a second one.

Errors: ``ResponseStatus.IsSuccess`` false → :class:`PermanentError` with
``Errors[].Message`` verbatim; HTTP 5xx / timeouts → :class:`RetryableError`.

Master data via ``ExecuteBillQuery``: accounts (BD_Account), cost_centres
(BD_Department), partners (BD_Supplier), by ``FModifyDate`` with the primary key as
a tie-breaker (watermark ``"<FModifyDate>|<id>"``).

Settings: YINFIN_KINGDEE_URL (…/k3cloud), YINFIN_KINGDEE_ACCT_ID (数据中心 id),
YINFIN_KINGDEE_USERNAME, and either YINFIN_KINGDEE_APP_ID + YINFIN_KINGDEE_APP_SECRET
or YINFIN_KINGDEE_PASSWORD; YINFIN_KINGDEE_BOOK (账簿编码), optional
YINFIN_KINGDEE_CURRENCIES ("CNY=PRE001,USD=PRE007"), YINFIN_KINGDEE_WORDS
("记=PRE001"), YINFIN_KINGDEE_FLEX (dimension → flex field, default
"cost_centre=FDETAILID__FFLEX5,partner=FDETAILID__FFLEX4").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from .base import MASTER_DATA_KINDS, PermanentError, Voucher, VoucherLine
from .http import Http, body_json, dumps_numbers, need_list, need_object, reading, timeout_setting

NAME = "kingdee"
STUB = "Kingdee.BOS.WebApi.ServicesStub"
SETTINGS = ("YINFIN_KINGDEE_URL", "YINFIN_KINGDEE_ACCT_ID", "YINFIN_KINGDEE_USERNAME",
            "YINFIN_KINGDEE_BOOK")
#: kind → (form id, primary key, field keys)
MASTER_FORMS = {
    "accounts": ("BD_Account", "FACCTID", ["FNumber", "FName", "FForbidStatus"]),
    "cost_centres": ("BD_Department", "FDEPTID", ["FNumber", "FName", "FForbidStatus"]),
    "partners": ("BD_Supplier", "FSUPPLIERID", ["FNumber", "FName", "FForbidStatus"]),
}
READ_FIELDS = ["FVOUCHERID", "FBillNo", "FDate", "FDocumentStatus", "FEXPLANATION",
               "FACCOUNTID.FNumber", "FCURRENCYID.FNumber", "FEXCHANGERATE", "FAMOUNTFOR",
               "FDEBIT", "FCREDIT"]


class _SessionLost(Exception):
    pass


def marker(key: str) -> str:
    return f"(yf:{hashlib.sha256(key.encode()).hexdigest()[:16]})"


def _pairs(text: str, default: dict[str, str]) -> dict[str, str]:
    out = dict(default)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out


def _quote(value: str) -> str:
    """A literal for a K3Cloud FilterString (SQL-like): single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


class KingdeeConnector:
    name = NAME
    master_data_kinds = tuple(MASTER_FORMS)

    def __init__(self, *, url: str, acct_id: str, username: str, book: str,
                 app_id: str = "", app_secret: str = "", password: str = "",
                 currencies: str = "", words: str = "", flex: str = "",
                 timeout: float | tuple[float, float] = (5.0, 60.0)) -> None:
        if not (app_id and app_secret) and not password:
            raise ValueError("Kingdee needs an app id + secret or a password")
        self.http = Http(NAME, url, timeout=timeout)
        self.acct_id, self.username, self.book = acct_id, username, book
        self.app_id, self.app_secret, self.password = app_id, app_secret, password
        self.currencies = _pairs(currencies, {"CNY": "PRE001"})
        self.words = _pairs(words, {"记": "PRE001"})
        self.flex = _pairs(flex, {"cost_centre": "FDETAILID__FFLEX5",
                                  "partner": "FDETAILID__FFLEX4"})
        self._logged_in = False

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> KingdeeConnector:
        return cls(url=s["YINFIN_KINGDEE_URL"], acct_id=s["YINFIN_KINGDEE_ACCT_ID"],
                   username=s["YINFIN_KINGDEE_USERNAME"], book=s["YINFIN_KINGDEE_BOOK"],
                   app_id=s.get("YINFIN_KINGDEE_APP_ID", ""),
                   app_secret=s.get("YINFIN_KINGDEE_APP_SECRET", ""),
                   password=s.get("YINFIN_KINGDEE_PASSWORD", ""),
                   currencies=s.get("YINFIN_KINGDEE_CURRENCIES", ""),
                   words=s.get("YINFIN_KINGDEE_WORDS", ""), flex=s.get("YINFIN_KINGDEE_FLEX", ""),
                   timeout=timeout_setting(s, "YINFIN_KINGDEE_TIMEOUT", (5.0, 60.0)))

    def message_budget(self) -> float:
        """Seconds one voucher may take at most: a login, the key look-up (a read,
        retried within the attempt), Save, Submit and Audit, each call possibly
        repeated once after logging in again."""
        return self.http.budget(reads=2, writes=8)

    # -- session ------------------------------------------------------------------------

    def login(self) -> None:
        if self.app_id:
            path = f"/{STUB}.AuthService.LoginByAppSecret.common.kdsvc"
            body = {"acctID": self.acct_id, "username": self.username, "appId": self.app_id,
                    "appSecret": self.app_secret, "lcid": 2052}
        else:
            path = f"/{STUB}.AuthService.ValidateUser.common.kdsvc"
            body = {"acctID": self.acct_id, "username": self.username,
                    "password": self.password, "lcid": 2052}
        data = need_object(body_json(self.http.request("POST", path, json=body), NAME), NAME,
                           "the login answer")
        if data.get("LoginResultType") != 1:
            raise PermanentError(str(data.get("Message") or "login refused"), connector=NAME)
        self._logged_in = True

    def _call(self, service: str, payload: dict[str, Any]) -> Any:
        if not self._logged_in:
            self.login()
        try:
            return self._once(service, payload)
        except _SessionLost:
            self.login()
            try:
                return self._once(service, payload)
            except _SessionLost as err:
                raise PermanentError(f"session lost again after login: {err}",
                                     connector=NAME) from None

    def _once(self, service: str, payload: dict[str, Any]) -> Any:
        send = self.http.read if service == "ExecuteBillQuery" else self.http.request
        resp = send(
            "POST", f"/{STUB}.DynamicFormService.{service}.common.kdsvc",
            data=dumps_numbers(payload).encode(), headers={"Content-Type": "application/json"})
        data = body_json(resp, NAME)
        with reading(NAME, f"the {service} answer"):
            status = _status(data)
            if status is not None:
                need_object(status, NAME, f"the {service} ResponseStatus")
        if status is not None and not status.get("IsSuccess", False):
            with reading(NAME, f"the {service} error"):
                message = "; ".join(str(e.get("Message")) for e in status.get("Errors") or []) \
                    or f"{service} failed"
            if status.get("MsgCode") == 1:
                raise _SessionLost(message)
            raise PermanentError(message, connector=NAME, status=resp.status_code)
        return data

    # -- vouchers -----------------------------------------------------------------------

    def post_voucher(self, voucher: Voucher, idempotency_key: str) -> str:
        found = self._query_voucher(f"FEXPLANATION like {_quote('%' + marker(idempotency_key) + '%')}")
        if found:
            with reading(NAME, "the voucher found by its key"):
                vid, number, state = found[0][0], found[0][1], found[0][3]
        else:
            data = self._call("Save", {"formid": "GL_VOUCHER", "data": {
                "NeedUpDateFields": [], "IsDeleteEntry": "true",
                "Model": self._model(voucher, marker(idempotency_key))}})
            with reading(NAME, "the Save answer"):
                entity = data["Result"]["ResponseStatus"]["SuccessEntitys"][0]
                vid, number, state = entity["Id"], entity["Number"], "A"
        # A created/re-audit (A/D) voucher still needs submit; submitted (B) needs audit.
        if state in ("A", "D"):
            self._call("Submit", {"formid": "GL_VOUCHER", "data": {"Ids": str(vid)}})
            state = "B"
        if state == "B":
            self._call("Audit", {"formid": "GL_VOUCHER", "data": {"Ids": str(vid)}})
        return str(number)

    def _model(self, v: Voucher, mark: str) -> dict[str, Any]:
        entries = []
        for ln in v.lines:
            detail = {self.flex[dim]: {"FNumber": code} for dim, code in (
                ("cost_centre", ln.cost_centre), ("project", ln.project),
                ("partner", ln.partner)) if code and dim in self.flex}
            entries.append({
                # the memo is cut, never the marker: K3Cloud's 摘要 column is 255 wide
                "FEXPLANATION": f"{(ln.memo or v.memo)[:200]} {mark}",
                "FACCOUNTID": {"FNumber": ln.account},
                "FCURRENCYID": {"FNumber": self.currencies.get(ln.currency, ln.currency)},
                "FEXCHANGERATETYPE": {"FNumber": "HLTX01_SYS"},
                "FEXCHANGERATE": ln.rate, "FAMOUNTFOR": ln.amount,
                "FDEBIT": ln.debit, "FCREDIT": ln.credit, "FDetailID": detail,
            })
        return {"FAccountBookID": {"FNumber": self.book}, "FDate": v.date.isoformat(),
                "FVOUCHERGROUPID": {"FNumber": self.words.get(v.word, v.word)},
                "FEntity": entries}

    def _query(self, form: str, fields: list[str], filter_string: str, order: str = "",
               limit: int = 2000) -> list[list[Any]]:
        rows = self._call("ExecuteBillQuery", {"data": {
            "FormId": form, "FieldKeys": ",".join(fields), "FilterString": filter_string,
            "OrderString": order, "TopRowCount": 0, "StartRow": 0, "Limit": limit}})
        rows = need_list(rows, NAME, f"the {form} query")
        for row in rows:
            need_list(row, NAME, f"a row of the {form} query")
        return rows

    def _query_voucher(self, filter_string: str) -> list[list[Any]]:
        return self._query("GL_VOUCHER", READ_FIELDS, filter_string, "FVOUCHERID ASC")

    def read_voucher(self, number_or_key: str) -> Voucher | None:
        rows = self._query_voucher(f"FBillNo = {_quote(number_or_key)}") or self._query_voucher(
            f"FEXPLANATION like {_quote('%' + marker(number_or_key) + '%')}")
        if not rows:
            return None
        with reading(NAME, f"voucher {number_or_key}"):
            return self._voucher(rows)

    def _voucher(self, rows: list[list[Any]]) -> Voucher:
        first_id = rows[0][0]
        rows = [r for r in rows if r[0] == first_id]
        lines = tuple(VoucherLine(
            account=str(r[5]), currency=next((iso for iso, k in self.currencies.items()
                                              if k == r[6]), str(r[6])),
            rate=Decimal(str(r[7])), amount=Decimal(str(r[8])), debit=Decimal(str(r[9])),
            credit=Decimal(str(r[10])), memo=re.sub(r"\s*\(yf:[0-9a-f]{16}\)$", "", str(r[4])),
        ) for r in rows)
        return Voucher(company=self.book, date=date.fromisoformat(str(rows[0][2])[:10]),
                       memo=lines[0].memo, lines=lines, number=str(rows[0][1]))

    def key_token(self, key: str) -> str:
        """What a voucher carries of ``key`` (its marker: a hash, not the key)."""
        return marker(key)

    def keyed_vouchers(self, start: date, end: date) -> list[tuple[str, str]]:
        """(marker, voucher number) of every voucher dated ``start``..``end`` whose
        entries carry one of our markers (each voucher once per marker)."""
        rows = self._query_voucher(
            f"FDate >= {_quote(start.isoformat())} and FDate <= {_quote(end.isoformat())} "
            f"and FEXPLANATION like {_quote('%(yf:%')}")
        seen: set[tuple[str, str]] = set()
        with reading(NAME, "the keyed vouchers"):
            for r in rows:
                found = re.search(r"\(yf:[0-9a-f]{16}\)", str(r[4]))
                if found:
                    seen.add((found.group(0), str(r[1])))
        return sorted(seen)

    # -- master data --------------------------------------------------------------------

    def changed_master_data(self, kind: str, watermark: str | None
                            ) -> tuple[list[dict[str, Any]], str | None]:
        if kind not in MASTER_FORMS:
            raise PermanentError(f"Kingdee master data {kind!r} is not supported "
                                 f"(have {', '.join(MASTER_FORMS)}; known {MASTER_DATA_KINDS})",
                                 connector=NAME)
        form, pk, fields = MASTER_FORMS[kind]
        filt = ""
        if watermark:
            when, _, last = watermark.partition("|")
            filt = (f"FModifyDate > {_quote(when)} or (FModifyDate = {_quote(when)} "
                    f"and {pk} > {int(last or 0)})")
        rows = self._query(form, [pk, *fields, "FModifyDate"], filt, f"FModifyDate ASC, {pk} ASC")
        with reading(NAME, f"the {form} query"):
            records = [{"id": r[0], "code": r[1], "name": r[2], "active": r[3] != "B",
                        "modified": r[4]} for r in rows]
        if records:
            watermark = f"{records[-1]['modified']}|{records[-1]['id']}"
        return records, watermark


def _status(data: Any) -> dict[str, Any] | None:
    """The ResponseStatus in any of Kingdee's answer shapes (a bill query's error is
    ``[[{"Result": {"ResponseStatus": ...}}]]``)."""
    if isinstance(data, dict):
        return (data.get("Result") or {}).get("ResponseStatus")
    if (isinstance(data, list) and data and isinstance(data[0], list) and data[0]
            and isinstance(data[0][0], dict)):
        return (data[0][0].get("Result") or {}).get("ResponseStatus")
    return None
