"""DingTalk open API stub (api.dingtalk.com v1.0 shapes) and a callback sender.

Errors follow DingTalk's new-API format: HTTP 400/401 with
``{"code": "...", "message": "...", "requestid": "..."}``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from connectors.crypto import BizMsgCrypt

from .server import Req, StubServer


class DingTalkStub(StubServer):
    def __init__(self, app_key: str = "dingappkey", app_secret: str = "s3cret") -> None:
        super().__init__()
        self.app_key, self.app_secret = app_key, app_secret
        self.tokens: set[str] = set()
        self.counter = itertools.count(1)
        self.instances: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.todos: dict[str, dict[str, Any]] = {}
        self.routes.update({
            ("POST", "/v1.0/oauth2/accessToken"): self.token,
            ("GET", "/v1.0/workflow/processInstances"): self.instance,
            ("POST", "/v1.0/workflow/processInstances/comments"): self.comment,
            ("POST", "/v1.0/todo/users/*"): self.todo,
        })

    def _err(self, status: int, code: str, message: str) -> tuple:
        return status, {"code": code, "message": message, "requestid": "REQ1"}

    def token(self, req: Req) -> tuple:
        body = req.json()
        if (body.get("appKey"), body.get("appSecret")) != (self.app_key, self.app_secret):
            return self._err(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        tok = f"tok{next(self.counter)}"
        self.tokens.add(tok)
        return 200, {"accessToken": tok, "expireIn": 7200}

    def _authed(self, req: Req) -> tuple | None:
        if req.headers.get("x-acs-dingtalk-access-token") not in self.tokens:
            return self._err(401, "InvalidAuthentication", "不合法的access_token")
        return None

    def instance(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        inst = self.instances.get(req.query.get("processInstanceId", ""))
        if inst is None:
            return self._err(400, "InvalidParameter", "processInstanceId 不存在")
        return 200, {"success": True, "result": inst}

    def comment(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        if body.get("processInstanceId") not in self.instances:
            return self._err(400, "InvalidParameter", "审批实例不存在")
        self.comments.append(body)
        return 200, {"success": True, "result": True}

    def todo(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        if not body.get("subject"):
            return self._err(400, "MissingSubject", "subject is mandatory")
        self.todos[body["sourceId"]] = body
        return 200, {"id": f"todo{len(self.todos)}", "subject": body["subject"],
                     "sourceId": body["sourceId"]}

    def expire_tokens(self) -> None:
        self.tokens.clear()


def callback(crypto: BizMsgCrypt, event: dict[str, Any], ts_ms: int, nonce: str = "nOnCe123"
             ) -> tuple[dict[str, str], bytes]:
    """What DingTalk POSTs to the callback URL for ``event``: (query, body)."""
    encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False))
    query = {"msg_signature": crypto.signature(str(ts_ms), nonce, encrypt),
             "timestamp": str(ts_ms), "nonce": nonce}
    return query, json.dumps({"encrypt": encrypt}).encode()
