"""K3Cloud WebAPI stub: login, GL_VOUCHER Save/Submit/Audit, ExecuteBillQuery.

Answers follow the documented shapes: ``{"Result": {"ResponseStatus": {"IsSuccess",
"Errors": [{"FieldName", "Message", "DIndex"}], "SuccessEntitys": [{"Id", "Number",
"DIndex"}], "MsgCode"}, "Id", "Number"}}``; a lost session is ``MsgCode`` 1; a bill
query answers a list of rows, or ``[[{"Result": {"ResponseStatus": ...}}]]``.
Only the FilterString shapes the connector writes are understood.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Any

from .server import Req, StubServer

P = "/Kingdee.BOS.WebApi.ServicesStub."


def status(ok: bool, errors: list[str] = (), msg_code: int = 0, entity: dict | None = None
           ) -> dict[str, Any]:
    rs = {"ErrorCode": 0 if ok else 500, "IsSuccess": ok, "MsgCode": msg_code,
          "Errors": [{"FieldName": None, "Message": m, "DIndex": 0} for m in errors],
          "SuccessEntitys": [entity] if entity else [], "SuccessMessages": []}
    return {"Result": {"ResponseStatus": rs, "Id": (entity or {}).get("Id", ""),
                       "Number": (entity or {}).get("Number", ""), "NeedReturnData": []}}


class KingdeeStub(StubServer):
    def __init__(self) -> None:
        super().__init__()
        self.sessions: set[str] = set()
        self.counter = itertools.count(1)
        self.accounts = {"6602.01": "差旅费", "2241.01": "其他应付款"}
        self.vouchers: dict[int, dict[str, Any]] = {}
        self.master: dict[str, list[dict[str, Any]]] = {"BD_Account": []}
        self.lose_answer_after: set[str] = set()  # services whose answer is "lost" once
        svc = P + "DynamicFormService."
        self.routes.update({
            ("POST", P + "AuthService.LoginByAppSecret.common.kdsvc"): self.login,
            ("POST", P + "AuthService.ValidateUser.common.kdsvc"): self.login,
            ("POST", svc + "Save.common.kdsvc"): self.save,
            ("POST", svc + "Submit.common.kdsvc"): lambda r: self.move(r, "A", "B", "Submit"),
            ("POST", svc + "Audit.common.kdsvc"): lambda r: self.move(r, "B", "C", "Audit"),
            ("POST", svc + "ExecuteBillQuery.common.kdsvc"): self.query,
        })

    def login(self, req: Req) -> tuple:
        body = req.json()
        # the body fields of the WebAPI 接口说明书: acctID, username, appId/appSecret or password, lcid
        ok = (body.get("appSecret") == "app-secret" or body.get("password") == "pw") \
            and body.get("acctID") == "dc1" and body.get("lcid") == 2052
        if not ok:
            return 200, {"Message": "用户名或密码错误！", "LoginResultType": 0}
        sid = f"sid{next(self.counter)}"
        self.sessions.add(sid)
        return 200, {"Message": None, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
                     "KDSVCSessionId": sid, "Context": {"UserName": body.get("username")}}, {
                         "Set-Cookie": f"kdservice-sessionid={sid}; path=/"}

    def _session_ok(self, req: Req) -> bool:
        m = re.search(r"kdservice-sessionid=(\w+)", req.headers.get("cookie", ""))
        return bool(m and m.group(1) in self.sessions)

    def _lost(self) -> tuple:
        return 200, status(False, ["会话信息已丢失，请重新登录"], msg_code=1)

    def save(self, req: Req) -> tuple:
        if not self._session_ok(req):
            return self._lost()
        model = req.json()["data"]["Model"]
        errors = [f"第{i + 1}行分录，科目编码 {e['FACCOUNTID']['FNumber']} 不存在或未审核"
                  for i, e in enumerate(model["FEntity"])
                  if e["FACCOUNTID"]["FNumber"] not in self.accounts]
        debit = sum(Decimal(str(e["FDEBIT"])) for e in model["FEntity"])
        credit = sum(Decimal(str(e["FCREDIT"])) for e in model["FEntity"])
        if debit != credit:
            errors.append("借贷不平衡")
        if errors:
            return 200, status(False, errors, msg_code=11)
        n = len(self.vouchers) + 1
        vid = 100000 + n
        self.vouchers[vid] = {"id": vid, "number": f"记-{n:04d}", "state": "A", "model": model}
        if "Save" in self.lose_answer_after:
            self.lose_answer_after.discard("Save")
            return 500, "Internal Server Error"  # saved, but the answer never arrives
        return 200, status(True, entity={"Id": vid, "Number": f"记-{n:04d}", "DIndex": 0})

    def move(self, req: Req, before: str, after: str, service: str) -> tuple:
        if not self._session_ok(req):
            return self._lost()
        ids = [int(i) for i in str(req.json()["data"]["Ids"]).split(",")]
        for vid in ids:
            v = self.vouchers.get(vid)
            if v is None or v["state"] != before:
                return 200, status(False, [f"单据 {vid} 状态不允许{service}"])
            v["state"] = after
        if service in self.lose_answer_after:
            self.lose_answer_after.discard(service)
            return 502, "Bad Gateway"
        return 200, status(True, entity={"Id": ids[0], "Number": "", "DIndex": 0})

    def query(self, req: Req) -> tuple:
        if not self._session_ok(req):
            return 200, [[status(False, ["会话信息已丢失，请重新登录"], msg_code=1)]]
        q = req.json()["data"]
        fields, filt = q["FieldKeys"].split(","), q["FilterString"]
        if q["FormId"] == "GL_VOUCHER":
            return 200, self._voucher_rows(fields, filt)
        rows = self.master.get(q["FormId"], [])
        if filt:
            m = re.match(r"FModifyDate > '([^']*)' or \(FModifyDate = '[^']*' and (\w+) > (\d+)\)",
                         filt)
            when, last = m.group(1), int(m.group(3))
            rows = [r for r in rows if (r["FModifyDate"], r["id"]) > (when, last)]
        rows = sorted(rows, key=lambda r: (r["FModifyDate"], r["id"]))
        return 200, [[r["id"] if f == fields[0] else r[f] for f in fields] for r in rows]

    def _voucher_rows(self, fields: list[str], filt: str) -> list[list[Any]]:
        like = re.fullmatch(r"FEXPLANATION like '%(.*)%'", filt)
        eq = re.fullmatch(r"FBillNo = '(.*)'", filt)
        out = []
        for v in self.vouchers.values():
            for e in v["model"]["FEntity"]:
                if (like and like.group(1) in e["FEXPLANATION"]) or (eq and eq.group(1) == v["number"]):
                    row = {"FVOUCHERID": v["id"], "FBillNo": v["number"],
                           "FDate": v["model"]["FDate"] + "T00:00:00",
                           "FDocumentStatus": v["state"], "FEXPLANATION": e["FEXPLANATION"],
                           "FACCOUNTID.FNumber": e["FACCOUNTID"]["FNumber"],
                           "FCURRENCYID.FNumber": e["FCURRENCYID"]["FNumber"],
                           "FEXCHANGERATE": e["FEXCHANGERATE"], "FAMOUNTFOR": e["FAMOUNTFOR"],
                           "FDEBIT": e["FDEBIT"], "FCREDIT": e["FCREDIT"]}
                    out.append([row[f] for f in fields])
        return out

    def expire_sessions(self) -> None:
        self.sessions.clear()
