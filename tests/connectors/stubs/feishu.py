"""Feishu open platform stub: tenant token, approval instance detail, external instances.

Answers use Feishu's envelope ``{"code": 0, "msg": "success", "data": {...}}``;
errors keep HTTP 400 with a non-zero ``code`` (99991663 = invalid access token).

Contact v3: ``departments/0/children?fetch_child=true`` and ``users/find_by_department``
answer ``{"has_more", "page_token", "items"}`` pages of at most ``page_size`` items
(the smaller of the request's and the stub's); 99991400 is Feishu's rate limit.
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
        #: open_department_id -> {"name", "parent", "leader"} ("0" is the root, not listed)
        self.depts: dict[str, dict[str, Any]] = {}
        #: open_id -> the user fields (user_id, name, department_ids, leader_user_id, status …)
        self.people: dict[str, dict[str, Any]] = {}
        self.page_size = 50
        self.routes.update({
            ("GET", "/open-apis/contact/v3/departments/*"): self.children,
            ("GET", "/open-apis/contact/v3/users/find_by_department"): self.members,
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

    def _page(self, req: Req, items: list[dict[str, Any]]) -> tuple:
        if (req.query.get("department_id_type"), req.query.get("user_id_type")) != (
                "open_department_id", "open_id"):
            return 400, {"code": 99992402, "msg": "field validation failed"}
        start = int(req.query.get("page_token", "pt0")[2:])
        size = min(int(req.query.get("page_size", 50)), self.page_size)
        page, more = items[start:start + size], start + size < len(items)
        data: dict[str, Any] = {"has_more": more, "items": page}
        if more:
            data["page_token"] = f"pt{start + size}"
        return 200, {"code": 0, "msg": "success", "data": data}

    def _descendants(self, root: str) -> list[str]:
        out = [k for k, d in sorted(self.depts.items()) if d["parent"] == root]
        return out + [x for k in out for x in self._descendants(k)]

    def children(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        parent = req.path.split("/")[-2]
        if parent != "0" and parent not in self.depts:
            return 400, {"code": 40003, "msg": "department not found"}
        ids = (self._descendants(parent) if req.query.get("fetch_child") == "true"
               else [k for k, d in sorted(self.depts.items()) if d["parent"] == parent])
        return self._page(req, [{"name": self.depts[k]["name"], "open_department_id": k,
                                 "department_id": k.upper(),
                                 "parent_department_id": self.depts[k]["parent"],
                                 "leader_user_id": self.depts[k].get("leader", ""),
                                 "status": {"is_deleted": False}} for k in ids])

    def members(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        dept = req.query.get("department_id", "")
        if dept != "0" and dept not in self.depts:
            return 400, {"code": 40003, "msg": "department not found"}
        return self._page(req, [dict(u, open_id=k) for k, u in sorted(self.people.items())
                                if dept in u["department_ids"]])

    def expire_tokens(self) -> None:
        self.tokens.clear()


def delivery(payload: dict[str, Any], encrypt_key: str, ts: str, nonce: str = "n1"
             ) -> tuple[dict[str, str], bytes]:
    """What Feishu POSTs for ``payload``: (headers, body), encrypted and signed."""
    body = json.dumps({"encrypt": feishu_encrypt(encrypt_key, json.dumps(payload))}).encode()
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": feishu_signature(ts, nonce, encrypt_key, body)}
    return headers, body
