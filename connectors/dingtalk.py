"""DingTalk (钉钉) OA: approval callbacks in, comments and to-dos out.

Inbound: DingTalk's HTTP event subscription POSTs ``{"encrypt": "..."}`` with query
``msg_signature``, ``timestamp`` (ms) and ``nonce``. We check the SHA1 signature,
decrypt (AES-256-CBC, see :mod:`connectors.crypto`), and answer with the encrypted
``success`` JSON (``msg_signature``, ``timeStamp``, ``nonce``, ``encrypt``) DingTalk
requires, also for ``check_url`` (the URL check when the subscription is saved). Events
read (any other ``EventType`` is answered the same and named in ``InboundResult.ignored``):

* ``bpms_instance_change``: ``type=start`` → ``form_submitted`` (the form values are
  fetched from ``GET /v1.0/workflow/processInstances``, since the event carries
  none); ``type=finish`` → ``instance_status`` (``result`` agree/refuse →
  approved/rejected); ``type=terminate`` → ``instance_withdrawn``.
* ``bpms_task_change``: ``type=finish`` → ``task_acted`` (agree → approve,
  refuse → reject, redirect → transfer; ``remark`` is the comment).

The event id (and replay key handed to ``seen``) is DingTalk's own ``eventId`` (事件的唯一Id,
top level in the decrypted HTTP-push payload, the same on re-delivery); a payload without
one falls back to a digest of the decrypted text.

Outbound (``push_status``): a ``status`` message on an instance started in DingTalk
becomes an approval comment (``POST /v1.0/workflow/processInstances/comments``; one
for a request that never lived in DingTalk is skipped, answered ``{"skipped": …}``); a
pending ``task`` message becomes a DingTalk to-do (``POST /v1.0/todo/users/{unionId}/tasks``,
「创建钉钉待办任务」: ``subject``, ``sourceId``, ``description``, ``executorIds``,
``detailUrl``) whose ``sourceId`` is the idempotency key; DingTalk answers the to-do's
``id``, which the outbox keeps. A finished task's message closes that to-do
(「更新钉钉待办任务」 ``PUT /v1.0/todo/users/{unionId}/tasks/{id}`` with ``done: true``; the
dispatcher hands the id back as ``external_task_id``); with no id known it is skipped
rather than made a new open to-do.

Two kinds of user id: our directory keeps the DingTalk **userid** (``dingtalk_userid``,
from ``topapi/v2/user/list`` or CSV), which is what events carry (``staffId``) and what an
approval comment's ``commentUserId`` takes; a to-do's path (creator) and ``executorIds``
take **unionIds**. Each userid is turned into its unionId with 查询用户详情 (``POST
topapi/v2/user/get`` ``{userid}`` → ``result.unionid``), asked once per user and kept
by the connector (a unionId never changes; at most ``UNIONID_CACHE_SIZE`` kept); an
unknown userid is permanent with DingTalk's ``errmsg``. The comment author is
``YINFIN_DINGTALK_OPERATOR_USERID`` (an account such as a finance robot), else the
message's first user (the requester); with neither the comment is skipped (logged)
rather than sent with the operator's unionId. The access token comes from
``POST /v1.0/oauth2/accessToken`` and is fetched again once when DingTalk says it
is invalid.

Organisation (``changed_master_data``, see :mod:`connectors.org`): departments from
``POST /topapi/v2/department/get`` (the root, id 1) and ``/topapi/v2/department/listsub``
(children, walked breadth first); people from ``POST /topapi/v2/user/list`` per
department (``cursor``/``size`` ≤ 100, ``has_more``/``next_cursor``), fields
``userid``, ``name``, ``org_email``/``email``, ``job_number``, ``dept_id_list`` (the
first is taken as the main department), ``manager_userid`` and ``leader`` (head of the
department being listed). These old-style APIs live on ``oapi.dingtalk.com`` and take
the same internal-app token as ``access_token`` query parameter; they answer HTTP 200
with ``errcode``/``errmsg`` (DingTalk 全局错误码: -1 busy and 90002/90006/90018 call
limits are retried, 40014/42001 renew the token, the rest are permanent; errcode 88
鉴权异常 is classified by its ``sub_code``, which is how topapi says 40014). A
person who has not activated DingTalk yet (``active: false``) is still an employee and
stays active here; someone who left is no longer listed and becomes inactive.
Followed: DingTalk's server API docs 「获取部门详情」, 「获取部门列表」 (v2 listsub),
「获取部门用户详情」 (v2 user/list), 「查询用户详情」 (v2 user/get), 「创建钉钉待办任务」,
「更新钉钉待办任务」,
「添加审批评论」, 「审批实例开始、结束、终止、删除」 and 「全局错误码」 (open.dingtalk.com).

Settings (environment): YINFIN_DINGTALK_APP_KEY, YINFIN_DINGTALK_APP_SECRET,
YINFIN_DINGTALK_TOKEN (callback token), YINFIN_DINGTALK_AES_KEY (43-char
EncodingAESKey), optional YINFIN_DINGTALK_OWNER_KEY (corpId for callbacks
registered the legacy way; default the app key), YINFIN_DINGTALK_OPERATOR_ID (the
unionId creating to-dos), optional YINFIN_DINGTALK_OPERATOR_USERID (the userId that
writes the status comments), YINFIN_DINGTALK_API_URL (default https://api.dingtalk.com),
YINFIN_DINGTALK_OAPI_URL (default https://oapi.dingtalk.com), YINFIN_DINGTALK_DEPARTMENT_MAP,
_DEPARTMENT_PREFIX and _USER_CODE (see :mod:`connectors.org`).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from .base import (
    InboundEvent,
    InboundResult,
    PermanentError,
    RetryableError,
    SeenFn,
    SignatureError,
    StatusMessage,
    check_fresh,
    check_replay,
    digest_id,
    from_epoch,
)
from .crypto import BizMsgCrypt
from .http import Http, body_json, loads, need_object, reading
from .org import Department, OrgOptions, OrgSync, Person, merge_people, paged, text_or_none
from .tokens import TokenCache, TokenExpired

NAME = "dingtalk"
log = logging.getLogger(__name__)
#: userid -> unionId answers kept per connector (a unionId never changes for a user of an org)
UNIONID_CACHE_SIZE = 10_000
TASK_ACTIONS = {"agree": "approve", "refuse": "reject", "redirect": "transfer"}
#: the EventTypes read (anything else is answered and reported as ignored)
READ = ("bpms_instance_change", "bpms_task_change")
ORG_RETRY = {-1, 90002, 90006, 90018}  # 系统繁忙; call volume / QPS limits
ORG_TOKEN = {40014, 42001}  # 不合法的 / 过期的 access_token
ROOT = "1"
SETTINGS = ("YINFIN_DINGTALK_APP_KEY", "YINFIN_DINGTALK_APP_SECRET", "YINFIN_DINGTALK_TOKEN",
            "YINFIN_DINGTALK_AES_KEY")


class DingTalkConnector(OrgSync):
    name = NAME

    def __init__(self, *, app_key: str, app_secret: str, token: str, aes_key: str,
                 owner_key: str | None = None, operator_id: str | None = None,
                 operator_userid: str | None = None,
                 api_url: str = "https://api.dingtalk.com",
                 oapi_url: str = "https://oapi.dingtalk.com", fetch_forms: bool = True,
                 org_options: OrgOptions | None = None,
                 timeout: float | tuple[float, float] = (5.0, 30.0)) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.crypto = BizMsgCrypt(NAME, token, aes_key, owner_key or app_key)
        self.operator_id = operator_id  # a unionId (creates the to-dos)
        self.operator_userid = operator_userid  # a userId (comments when the message names nobody)
        self._unionids: dict[str, str] = {}
        self._unionids_lock = threading.Lock()
        self.fetch_forms = fetch_forms
        self.http = Http(NAME, api_url, timeout=timeout)
        self.oapi = Http(NAME, oapi_url, timeout=timeout)
        self.org_options = org_options or OrgOptions()
        self.tokens = TokenCache(NAME, self._fetch_token)

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> DingTalkConnector:
        return cls(app_key=s["YINFIN_DINGTALK_APP_KEY"], app_secret=s["YINFIN_DINGTALK_APP_SECRET"],
                   token=s["YINFIN_DINGTALK_TOKEN"], aes_key=s["YINFIN_DINGTALK_AES_KEY"],
                   owner_key=s.get("YINFIN_DINGTALK_OWNER_KEY") or None,
                   operator_id=s.get("YINFIN_DINGTALK_OPERATOR_ID") or None,
                   operator_userid=s.get("YINFIN_DINGTALK_OPERATOR_USERID") or None,
                   api_url=s.get("YINFIN_DINGTALK_API_URL") or "https://api.dingtalk.com",
                   oapi_url=s.get("YINFIN_DINGTALK_OAPI_URL") or "https://oapi.dingtalk.com",
                   org_options=OrgOptions.from_settings(s, "YINFIN_DINGTALK"))

    # -- inbound --------------------------------------------------------------------

    def verify_and_parse(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
                         *, now: datetime, seen: SeenFn) -> InboundResult:
        signature = query.get("msg_signature") or query.get("signature") or ""
        timestamp = query.get("timestamp") or query.get("timeStamp") or ""
        nonce = query.get("nonce") or ""
        try:
            encrypt = loads(body)["encrypt"]
        except (ValueError, KeyError, TypeError):
            raise SignatureError("body is not {\"encrypt\": ...}", connector=NAME) from None
        self.crypto.verify(signature, timestamp, nonce, encrypt)
        check_fresh(NAME, from_epoch(timestamp, NAME), now)
        plain = self.crypto.decrypt(encrypt)
        payload = loads(plain)
        event_type = payload.get("EventType")
        if event_type == "check_url":  # the subscription's URL check: nothing to apply
            return self.success_reply(now, [])
        # HTTP push events carry DingTalk's own eventId (事件的唯一Id), the same on every
        # re-delivery; a payload without one falls back to a digest of its content
        event_id = str(payload.get("eventId") or "") or digest_id(plain)
        event = self._event(payload, event_id)
        # marked seen only once parsing (and the form fetch) worked: a failure
        # here must leave DingTalk's retry acceptable
        check_replay(NAME, event_id, seen)
        # an EventType nobody reads is answered all the same (or DingTalk keeps re-sending
        # it) and reported, so a subscription nobody reads shows
        ignored = () if event_type in READ else (str(event_type or "(no type)"),)
        return replace(self.success_reply(now, [event] if event else []), ignored=ignored)

    def success_reply(self, now: datetime, events: list[InboundEvent]) -> InboundResult:
        """The encrypted ``success`` JSON DingTalk needs, or it retries the callback."""
        ts = str(int(now.timestamp() * 1000))
        nonce = secrets.token_hex(8)
        encrypt = self.crypto.encrypt("success")
        reply = {"msg_signature": self.crypto.signature(ts, nonce, encrypt),
                 "timeStamp": ts, "nonce": nonce, "encrypt": encrypt}
        return InboundResult(events, json.dumps(reply).encode(), "application/json")

    def _event(self, p: dict[str, Any], event_id: str) -> InboundEvent | None:
        et, typ = p.get("EventType"), p.get("type")
        instance = str(p.get("processInstanceId") or "")
        when = from_epoch(p.get("finishTime") or p.get("createTime") or 0, NAME)
        common: dict[str, Any] = dict(connector=NAME, event_id=event_id, external_instance_id=instance,
                      external_user_id=p.get("staffId"), occurred_at=when,
                      template=p.get("processCode"), raw=p)
        if et == "bpms_instance_change":
            if typ == "start":
                form = self.instance_form(instance) if self.fetch_forms else {}
                return InboundEvent(kind="form_submitted", form=form, **common)
            if typ == "finish":
                status = {"agree": "approved", "refuse": "rejected"}.get(p.get("result", ""))
                return InboundEvent(kind="instance_status", status=status or "finished", **common)
            if typ == "terminate":
                return InboundEvent(kind="instance_withdrawn", status="withdrawn", **common)
        if et == "bpms_task_change" and typ == "finish":
            result = p.get("result", "")
            return InboundEvent(kind="task_acted", action=TASK_ACTIONS.get(result, result),
                                comment=p.get("remark") or None, task_id=str(p.get("taskId") or ""),
                                **common)
        return None  # task started/cancelled and other events: nothing for the engine

    def instance_form(self, instance_id: str) -> dict[str, str]:
        """The instance's form as ``{label: value}`` strings (GET processInstances)."""
        data = self._api("GET", "/v1.0/workflow/processInstances",
                         params={"processInstanceId": instance_id})
        values = (data.get("result") or {}).get("formComponentValues") or []
        return {str(v.get("name") or v.get("id")): str(v.get("value") if v.get("value")
                is not None else "") for v in values}

    # -- outbound -------------------------------------------------------------------

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        if message.kind == "status" and message.external_instance_id:
            text = f"[{message.status}] {message.title}"
            if message.comment:
                text += f": {message.comment}"
            if message.request_url or message.url:
                text += f"\n{message.request_url or message.url}"
            # commentUserId is a userId (添加审批评论); our directory keeps DingTalk userids.
            # The operator first: a status comment written as the requester would look
            # as if the requester had said "[approved]" of their own request.
            author = self.operator_userid or (list(message.user_ids) or [""])[0]
            if not author:
                log.warning("DingTalk comment on %s skipped: the message names no user and "
                            "YINFIN_DINGTALK_OPERATOR_USERID is not set",
                            message.external_instance_id)
                return {"skipped": "no DingTalk userId to comment as "
                                   "(set YINFIN_DINGTALK_OPERATOR_USERID)"}
            return self._api("POST", "/v1.0/workflow/processInstances/comments", json={
                "processInstanceId": message.external_instance_id, "text": text,
                "commentUserId": author})
        if message.kind != "task":
            # a request that never lived in DingTalk has no instance to comment on;
            # its people learn of it through their to-dos
            return {"skipped": "no DingTalk instance for this request"}
        if not self.operator_id:
            raise PermanentError("YINFIN_DINGTALK_OPERATOR_ID is needed to create to-dos",
                                 connector=NAME)
        if message.status != "pending":
            return self._close_todo(message)
        return self._api("POST", f"/v1.0/todo/users/{self.operator_id}/tasks", json={
            "sourceId": idempotency_key, "subject": message.title,
            "description": message.comment or message.status,
            # executorIds are unionIds (创建钉钉待办任务); our directory keeps userids
            "executorIds": [self.union_id(u) for u in message.user_ids],
            # the task's page in the console, on the phone and on the desktop
            "detailUrl": {"appUrl": message.url or "", "pcUrl": message.url or ""}})

    def _close_todo(self, message: StatusMessage) -> dict[str, Any]:
        """Mark a finished task's to-do done (更新钉钉待办任务, ``PUT
        /v1.0/todo/users/{unionId}/tasks/{taskId}?operatorId=`` with ``done: true``).

        DingTalk closes a to-do only by its own id, which it answered when the to-do was
        made (the dispatcher hands it back as ``external_task_id``). Without it (the
        to-do was made before this was kept, or its record was purged) nothing is sent:
        creating a to-do here would put a fresh open one in front of someone whose task
        is over. A to-do someone already deleted in DingTalk ("task not exist") is done
        as far as we are concerned."""
        if not message.external_task_id:
            return {"skipped": "no DingTalk to-do id known for this task"}
        try:
            return self._api("PUT", f"/v1.0/todo/users/{self.operator_id}/tasks/"
                                    f"{message.external_task_id}",
                             params={"operatorId": self.operator_id}, json={"done": True})
        except PermanentError as err:
            if "task not exist" in (err.message or ""):
                return {"skipped": f"DingTalk to-do {message.external_task_id} no longer exists"}
            raise

    def union_id(self, userid: str) -> str:
        """The unionId of a DingTalk userid (查询用户详情 ``POST topapi/v2/user/get`` →
        ``result.unionid``), asked once per user and connector. An unknown user is a
        :class:`PermanentError` with DingTalk's message."""
        with self._unionids_lock:
            found = self._unionids.get(userid)
        if found is not None:
            return found
        result = self._topapi("/topapi/v2/user/get",
                              {"userid": userid, "language": "zh_CN"}).get("result") or {}
        union = text_or_none(result.get("unionid"))
        if union is None:
            raise PermanentError(f"DingTalk returned no unionid for userid {userid!r}",
                                 connector=NAME)
        with self._unionids_lock:
            if len(self._unionids) >= UNIONID_CACHE_SIZE:
                self._unionids.pop(next(iter(self._unionids)))  # the oldest answer
            self._unionids[userid] = union
        return union

    # -- organisation ---------------------------------------------------------------

    def org_snapshot(self) -> tuple[list[Department], list[Person]]:
        """Every department and person the app may see; any failure raises (no half answer)."""
        root = self._topapi("/topapi/v2/department/get", {"dept_id": int(ROOT)}).get("result") or {}
        depts = [Department(ROOT, str(root.get("name") or ROOT))]
        queue, seen = [ROOT], {ROOT}
        while queue:
            parent = queue.pop(0)
            answer = self._topapi("/topapi/v2/department/listsub", {"dept_id": int(parent)})
            for d in answer.get("result") or []:
                did = str(d["dept_id"])
                if did not in seen:
                    seen.add(did)
                    queue.append(did)
                    depts.append(Department(did, str(d.get("name") or did), parent))
        people: list[Person] = []
        leaders: dict[str, str] = {}
        for dept in depts:
            for u in paged(self._user_pages(dept.id), connector=NAME,
                           what=f"users of department {dept.id}"):
                dept_ids = u.get("dept_id_list") or [dept.id]
                people.append(Person(
                    id=str(u["userid"]), name=str(u.get("name") or u["userid"]),
                    department=str(dept_ids[0]), manager=text_or_none(u.get("manager_userid")),
                    email=text_or_none(u.get("org_email") or u.get("email")),
                    employee_no=text_or_none(u.get("job_number"))))
                if u.get("leader"):
                    leaders.setdefault(dept.id, str(u["userid"]))
        return [replace(d, leader=leaders.get(d.id)) for d in depts], merge_people(people)

    def _user_pages(self, dept_id: str) -> Callable[[str | None], tuple[list[Any], str | None]]:
        def page(cursor: str | None) -> tuple[list[Any], str | None]:
            result = self._topapi("/topapi/v2/user/list", {
                "dept_id": int(dept_id), "cursor": int(cursor or 0), "size": 100,
                "contain_access_limit": False, "language": "zh_CN"}).get("result") or {}
            more = result.get("has_more") and result.get("next_cursor") is not None
            return list(result.get("list") or []), str(result["next_cursor"]) if more else None
        return page

    def _topapi(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._api("POST", path, once=self._topapi_once, json=body)

    def _topapi_once(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.oapi.request(method, path, params={"access_token": token}, **kwargs)
        data = body_json(resp, NAME)
        code = data.get("errcode", 0) if isinstance(data, dict) else None
        if code == 0:
            return dict(data)
        msg = str(data.get("errmsg") if isinstance(data, dict) else data)
        if code == 88:  # 鉴权异常: the reason is in sub_code (40014 = 不合法的access_token)
            try:
                code = int(data.get("sub_code") or 88)
            except (TypeError, ValueError):
                code = 88
        if code in ORG_TOKEN:
            raise TokenExpired(msg)
        if code in ORG_RETRY:
            raise RetryableError(msg, connector=NAME, status=resp.status_code)
        raise PermanentError(msg, connector=NAME, status=resp.status_code)

    # -- plumbing -------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        resp = self.http.request("POST", "/v1.0/oauth2/accessToken",
                                 json={"appKey": self.app_key, "appSecret": self.app_secret})
        data = need_object(body_json(resp, NAME), NAME, "the access token answer")
        if resp.status_code != 200 or "accessToken" not in data:
            raise PermanentError(str(data.get("message") or data), connector=NAME,
                                 status=resp.status_code)
        with reading(NAME, "the access token answer"):
            return str(data["accessToken"]), int(data.get("expireIn", 7200))

    def access_token(self) -> str:
        return self.tokens.get()

    def _api(self, method: str, path: str, *, once: Callable[..., dict[str, Any]] | None = None,
             **kwargs: Any) -> dict[str, Any]:
        once = once or self._once
        return self.tokens.call(lambda token: once(method, path, token, **kwargs))

    def _once(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.http.request(method, path, headers={"x-acs-dingtalk-access-token": token},
                                 **kwargs)
        data = need_object(body_json(resp, NAME), NAME, f"the answer to {method} {path}")
        if resp.status_code == 200:
            return dict(data)
        code = str(data.get("code", ""))
        message = str(data.get("message") or data)
        if resp.status_code == 401 or "AccessToken" in code or code == "InvalidAuthentication":
            raise TokenExpired(message)
        if "QpsLimit" in code or "Throttling" in code:
            raise RetryableError(message, connector=NAME, status=resp.status_code)
        raise PermanentError(message, connector=NAME, status=resp.status_code)
