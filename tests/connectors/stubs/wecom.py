"""WeCom API stub (gettoken, getapprovaldetail, message/send) and a callback sender.

Answers are WeCom's ``{"errcode": 0, "errmsg": "ok", ...}``, always HTTP 200;
42001 = access_token expired, 301025-style codes for bad content.

Contacts: ``department/list`` (the whole tree) and ``user/list?department_id=`` (one
department's members, not paged), readable with the app secret or ``contact_secret``
(通讯录同步); ``token_secret`` remembers which secret each token was issued for.
45009 is WeCom's call-frequency limit, 60011 "no privilege".
"""

from __future__ import annotations

import itertools
from typing import Any

from connectors.crypto import BizMsgCrypt

from .server import Req, StubServer


class WeComStub(StubServer):
    def __init__(self, corp_id: str = "ww1", secret: str = "sec",
                 contact_secret: str = "csec") -> None:
        super().__init__()
        self.corp_id, self.secret, self.contact_secret = corp_id, secret, contact_secret
        self.tokens: set[str] = set()
        self.token_secret: dict[str, str] = {}
        #: id -> {"name", "parentid", "department_leader"}; 1 is the root (the company)
        self.depts: dict[int, dict[str, Any]] = {1: {"name": "示例科技", "parentid": 0}}
        #: userid -> the user/list fields (department, main_department, status …)
        self.people: dict[str, dict[str, Any]] = {}
        self.counter = itertools.count(1)
        self.approvals: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.routes.update({
            ("GET", "/cgi-bin/gettoken"): self.token,
            ("POST", "/cgi-bin/oa/getapprovaldetail"): self.detail,
            ("POST", "/cgi-bin/message/send"): self.send,
            ("GET", "/cgi-bin/department/list"): self.department_list,
            ("GET", "/cgi-bin/user/list"): self.user_list,
        })

    def token(self, req: Req) -> tuple:
        secret = req.query.get("corpsecret")
        if req.query.get("corpid") != self.corp_id or secret not in (self.secret,
                                                                   self.contact_secret):
            return 200, {"errcode": 40001, "errmsg": "invalid credential"}
        tok = f"wt{next(self.counter)}"
        self.tokens.add(tok)
        self.token_secret[tok] = secret
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200}

    def _authed(self, req: Req) -> tuple | None:
        if req.query.get("access_token") not in self.tokens:
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    def detail(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        info = self.approvals.get(req.json().get("sp_no"))
        if info is None:
            return 200, {"errcode": 301055, "errmsg": "sp_no not exist"}
        return 200, {"errcode": 0, "errmsg": "ok", "info": info}

    def send(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        if body.get("agentid") != 1000002:
            return 200, {"errcode": 40056, "errmsg": "invalid agentid"}
        self.sent.append(body)
        return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "m1"}

    def department_list(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        return 200, {"errcode": 0, "errmsg": "ok", "department": [
            {"id": k, "name": d["name"], "name_en": "", "parentid": d["parentid"], "order": 1,
             "department_leader": d.get("department_leader", [])}
            for k, d in sorted(self.depts.items())]}

    def user_list(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        dept = int(req.query.get("department_id", "0"))
        if dept not in self.depts:
            return 200, {"errcode": 60003, "errmsg": "department not found"}
        return 200, {"errcode": 0, "errmsg": "ok", "userlist": [
            dict(u, userid=k) for k, u in sorted(self.people.items()) if dept in u["department"]]}

    def expire_tokens(self) -> None:
        self.tokens.clear()


def callback(crypto: BizMsgCrypt, inner_xml: str, ts: str, nonce: str = "1372623149"
             ) -> tuple[dict[str, str], bytes]:
    encrypt = crypto.encrypt(inner_xml)
    body = (f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
    query = {"msg_signature": crypto.signature(ts, nonce, encrypt), "timestamp": ts,
             "nonce": nonce}
    return query, body.encode()


def approval_xml(sp_no: str, change: int, sp_status: int, ts: str, approver: str = "boss",
                 speech: str = "") -> str:
    """A sys_approval_change message as documented (审批状态通知事件)."""
    return f"""<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>
<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[sys_approval_change]]></Event><AgentID>1000002</AgentID>
<ApprovalInfo><SpNo>{sp_no}</SpNo><SpName><![CDATA[报销]]></SpName><SpStatus>{sp_status}</SpStatus>
<TemplateId><![CDATA[C4Ukx]]></TemplateId><ApplyTime>{int(ts) - 60}</ApplyTime>
<Applyer><UserId><![CDATA[zhangsan]]></UserId><Party><![CDATA[1]]></Party></Applyer>
<SpRecord><SpStatus>{sp_status}</SpStatus><ApproverAttr>1</ApproverAttr>
<Details><Approver><UserId><![CDATA[{approver}]]></UserId></Approver><Speech><![CDATA[{speech}]]></Speech>
<SpStatus>{sp_status}</SpStatus><SpTime>{ts if change != 1 else 0}</SpTime></Details></SpRecord>
<StatuChangeEvent>{change}</StatuChangeEvent></ApprovalInfo></xml>"""
