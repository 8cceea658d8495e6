"""Feishu open platform stub: tenant token, approval instance detail, external instances.

Answers use Feishu's envelope ``{"code": 0, "msg": "success", "data": {...}}``;
errors keep HTTP 400 with a non-zero ``code`` (99991663 = invalid access token).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from connectors.crypto import feishu_encrypt, feishu_signature

from .server import Req, StubServer


class FeishuStub(StubServer):
    def __init__(self, app_id: str = "cli_a1", app_secret: str = "sec") -> None:
        super().__init__()
        self.app_id, self.app_secret = app_id, app_secret
        self.tokens: set[str] = set()
        self.counter = itertools.count(1)
        self.instances: dict[str, dict[str, Any]] = {}
        self.external: dict[str, dict[str, Any]] = {}
        self.routes.update({
            ("POST", "/open-apis/auth/v3/tenant_access_token/internal"): self.token,
            ("GET", "/open-apis/approval/v4/instances/*"): self.instance,
            ("POST", "/open-apis/approval/v4/external_instances"): self.external_instance,
        })

    def token(self, req: Req) -> tuple:
        body = req.json()
        if (body.get("app_id"), body.get("app_secret")) != (self.app_id, self.app_secret):
            return 400, {"code": 10014, "msg": "app secret invalid"}
        tok = f"t-{next(self.counter)}"
        self.tokens.add(tok)
        return 200, {"code": 0, "msg": "ok", "tenant_access_token": tok, "expire": 7200}

    def _authed(self, req: Req) -> tuple | None:
        if req.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return 400, {"code": 99991663, "msg": "Invalid access token for authorization."}
        return None

    def instance(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        code = req.path.rsplit("/", 1)[1]
        if code not in self.instances:
            return 400, {"code": 1390003, "msg": "instance code not found"}
        return 200, {"code": 0, "msg": "success", "data": self.instances[code]}

    def external_instance(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        if body.get("approval_code") != "EXT-CODE":
            return 400, {"code": 1390001, "msg": "approval code not found"}
        old = self.external.get(body["instance_id"])
        # Feishu keeps the instance with the newest update_time
        if old is None or int(old["update_time"]) <= int(body["update_time"]):
            self.external[body["instance_id"]] = body
        return 200, {"code": 0, "msg": "success", "data": {"data": body}}

    def expire_tokens(self) -> None:
        self.tokens.clear()


def delivery(payload: dict[str, Any], encrypt_key: str, ts: str, nonce: str = "n1"
             ) -> tuple[dict[str, str], bytes]:
    """What Feishu POSTs for ``payload``: (headers, body), encrypted and signed."""
    body = json.dumps({"encrypt": feishu_encrypt(encrypt_key, json.dumps(payload))}).encode()
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": feishu_signature(ts, nonce, encrypt_key, body)}
    return headers, body
