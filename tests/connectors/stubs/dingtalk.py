"""DingTalk open API stub (api.dingtalk.com v1.0 shapes) and a callback sender.

Errors follow DingTalk's new-API format: HTTP 400/401 with
``{"code": "...", "message": "...", "requestid": "..."}``.

The address book lives on the old-style ``topapi`` (oapi.dingtalk.com): POST with
``?access_token=``, answers always HTTP 200 ``{"errcode": 0, "errmsg": "ok", "result": …,
"request_id": …}``; an invalid token is errcode 88 with ``sub_code`` "40014" (全局错误码). ``user/list`` pages by ``cursor`` with
at most ``page_size`` people per page (``has_more``, ``next_cursor``). ``user/get``
(查询用户详情) answers ``result.userid``/``unionid``/``name``; an unknown userid is
errcode 60121 找不到该用户.

Ids are kept apart as DingTalk does: ``people`` is keyed by userid and each person has
a ``unionid`` (default ``<userid>-UNION``). Approval comments need the commenter's
userid (``commentUserId``); to-dos need unionIds (the path's creator, ``executorIds``):
the stub refuses the other kind of id, so a connector that mixes them up fails here.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from connectors.crypto import BizMsgCrypt

from .server import Req, StubServer

#: body fields of 创建钉钉待办任务 (open.dingtalk.com/document/development/add-dingtalk-to-do-task)
TODO_FIELDS = {"sourceId", "creatorId", "subject", "description", "dueTime", "executorIds",
               "participantIds", "detailUrl", "contentFieldList", "isOnlyShowExecutor",
               "priority", "notifyConfigs", "bizCategoryId", "actionList", "todoType",
               "reminderTimeStamp", "remindNotifyConfigs", "thirdExtension"}
#: body fields of 更新钉钉待办任务 (PUT /v1.0/todo/users/{unionId}/tasks/{taskId}?operatorId=)
TODO_UPDATE_FIELDS = {"subject", "description", "dueTime", "done", "executorIds", "participantIds"}


class DingTalkStub(StubServer):
    def __init__(self, app_key: str = "dingappkey", app_secret: str = "s3cret") -> None:
        super().__init__()
        self.app_key, self.app_secret = app_key, app_secret
        self.tokens: set[str] = set()
        self.counter = itertools.count(1)
        self.instances: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.todos: dict[str, dict[str, Any]] = {}  # by sourceId; "id" and "done" added
        #: dept_id -> {"name", "parent_id"}; the root (1) is the company
        self.depts: dict[int, dict[str, Any]] = {1: {"name": "示例科技", "parent_id": None}}
        #: userid -> the user/list fields (dept_id_list, manager_userid, leader_in …)
        self.people: dict[str, dict[str, Any]] = {}
        self.page_size = 2
        self.routes.update({
            ("POST", "/topapi/v2/department/get"): self.dept_get,
            ("POST", "/topapi/v2/department/listsub"): self.dept_listsub,
            ("POST", "/topapi/v2/user/list"): self.user_list,
            ("POST", "/topapi/v2/user/get"): self.user_get,
            ("POST", "/v1.0/oauth2/accessToken"): self.token,
            ("GET", "/v1.0/workflow/processInstances"): self.instance,
            ("POST", "/v1.0/workflow/processInstances/comments"): self.comment,
            ("POST", "/v1.0/todo/users/*"): self.todo,
            ("PUT", "/v1.0/todo/users/*"): self.todo_update,
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

    def unionid(self, userid: str) -> str:
        return str(self.people[userid].get("unionid") or f"{userid}-UNION")

    def unionids(self) -> set[str]:
        return {self.unionid(uid) for uid in self.people}

    def comment(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        if body.get("processInstanceId") not in self.instances:
            return self._err(400, "InvalidParameter", "审批实例不存在")
        if body.get("commentUserId") not in self.people:  # a userId, not a unionId
            return self._err(400, "InvalidParameter",
                             f"commentUserId {body.get('commentUserId')!r} 不是本企业的userId")
        self.comments.append(body)
        return 200, {"success": True, "result": True}

    def todo(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        body = req.json()
        unknown = set(body) - TODO_FIELDS
        if unknown:  # the stub refuses what 创建钉钉待办任务 does not document
            return self._err(400, "InvalidParameter", f"unknown fields {sorted(unknown)}")
        if not body.get("subject"):
            return self._err(400, "MissingSubject", "subject is mandatory")
        creator = req.path.removeprefix("/v1.0/todo/users/").removesuffix("/tasks")
        unions = self.unionids()
        strangers = [i for i in [creator, *body.get("executorIds", [])] if i not in unions]
        if strangers:  # path and executorIds take unionIds (查询用户详情 → unionid)
            return self._err(400, "todo.taskCreate.paramError",
                             f"unionId not found: {strangers}")
        todo_id = f"todo{len(self.todos) + 1}"
        self.todos[body["sourceId"]] = {**body, "id": todo_id, "done": False}
        return 200, {"id": todo_id, "subject": body["subject"], "sourceId": body["sourceId"]}

    def todo_update(self, req: Req) -> tuple:
        if (bad := self._authed(req)) is not None:
            return bad
        union, _, todo_id = req.path.removeprefix("/v1.0/todo/users/").partition("/tasks/")
        body = req.json()
        unknown = set(body) - TODO_UPDATE_FIELDS
        if unknown:
            return self._err(400, "InvalidParameter", f"unknown fields {sorted(unknown)}")
        if union not in self.unionids() or req.query.get("operatorId") not in self.unionids():
            return self._err(400, "todo.taskUpdate.paramError", "unionId not found")
        todo = next((t for t in self.todos.values() if t["id"] == todo_id), None)
        if todo is None:
            return self._err(400, "todo.taskUpdate.paramError", "task not exist")
        todo.update(body)
        return 200, {"result": True}

    def _top(self, req: Req, result: Any) -> tuple:
        if req.query.get("access_token") not in self.tokens:
            # 全局错误码: topapi wraps the token refusal in errcode 88 with the reason in sub_code
            return 200, {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token",
                         "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]",
                         "request_id": "r1"}
        if isinstance(result, tuple):
            return 200, {"errcode": result[0], "errmsg": result[1], "request_id": "r1"}
        return 200, {"errcode": 0, "errmsg": "ok", "result": result, "request_id": "r1"}

    def user_get(self, req: Req) -> tuple:
        uid = req.json().get("userid")
        if uid not in self.people:
            return self._top(req, (60121, "找不到该用户"))
        u = self.people[uid]
        return self._top(req, {"userid": uid, "unionid": self.unionid(uid),
                               "name": u.get("name", uid), "active": u.get("active", True),
                               "dept_id_list": u.get("dept_id_list", [1])})

    def dept_get(self, req: Req) -> tuple:
        did = req.json().get("dept_id")
        if did not in self.depts:
            return self._top(req, (60003, "部门不存在"))
        d = self.depts[did]
        return self._top(req, {"dept_id": did, "name": d["name"], "parent_id": d["parent_id"]})

    def dept_listsub(self, req: Req) -> tuple:
        did = req.json().get("dept_id")
        if did not in self.depts:
            return self._top(req, (60003, "部门不存在"))
        return self._top(req, [{"dept_id": k, "name": v["name"], "parent_id": did,
                                "create_dept_group": True, "auto_add_user": True}
                               for k, v in sorted(self.depts.items()) if v["parent_id"] == did])

    def user_list(self, req: Req) -> tuple:
        body = req.json()
        did, cursor, size = body.get("dept_id"), int(body.get("cursor", 0)), int(body["size"])
        if did not in self.depts:
            return self._top(req, (60003, "部门不存在"))
        if size > 100:
            return self._top(req, (400002, "size 超过最大值 100"))
        members = [dict(u, userid=uid, unionid=self.unionid(uid), leader=did in u.get("leads", ()))
                   for uid, u in sorted(self.people.items()) if did in u["dept_id_list"]]
        page = members[cursor:cursor + min(size, self.page_size)]
        more = cursor + len(page) < len(members)
        for u in page:
            u.pop("leads", None)
        result: dict[str, Any] = {"has_more": more, "list": page}
        if more:
            result["next_cursor"] = cursor + len(page)
        return self._top(req, result)

    def expire_tokens(self) -> None:
        self.tokens.clear()


def callback(crypto: BizMsgCrypt, event: dict[str, Any], ts_ms: int, nonce: str = "nOnCe123"
             ) -> tuple[dict[str, str], bytes]:
    """What DingTalk POSTs to the callback URL for ``event``: (query, body)."""
    encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False))
    query = {"msg_signature": crypto.signature(str(ts_ms), nonce, encrypt),
             "timestamp": str(ts_ms), "nonce": nonce}
    return query, json.dumps({"encrypt": encrypt}).encode()
