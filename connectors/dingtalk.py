"""DingTalk (钉钉) OA: approval callbacks in, comments and to-dos out.

Inbound: DingTalk's HTTP event subscription POSTs ``{"encrypt": "..."}`` with query
``msg_signature``, ``timestamp`` (ms) and ``nonce``. We check the SHA1 signature,
decrypt (AES-256-CBC, see :mod:`connectors.crypto`), and answer with the encrypted
``success`` JSON (``msg_signature``, ``timeStamp``, ``nonce``, ``encrypt``) DingTalk
requires, also for ``check_url``. Events handled:

* ``bpms_instance_change``: ``type=start`` → ``form_submitted`` (the form values are
  fetched from ``GET /v1.0/workflow/processInstances``, since the event carries
  none); ``type=finish`` → ``instance_status`` (``result`` agree/refuse →
  approved/rejected); ``type=terminate`` → ``instance_withdrawn``.
* ``bpms_task_change``: ``type=finish`` → ``task_acted`` (agree → approve,
  refuse → reject, redirect → transfer; ``remark`` is the comment).

Outbound (``push_status``): a ``status`` message on an instance started in DingTalk
becomes an approval comment (``POST /v1.0/workflow/processInstances/comments``; one
for a request that never lived in DingTalk is skipped, answered ``{"skipped": …}``); a
``task`` message becomes a DingTalk to-do (``POST /v1.0/todo/users/{unionId}/tasks``)
whose ``sourceId`` is the idempotency key. The access token comes from
``POST /v1.0/oauth2/accessToken`` and is fetched again once when DingTalk says it
is invalid.

Settings (environment): YINFIN_DINGTALK_APP_KEY, YINFIN_DINGTALK_APP_SECRET,
YINFIN_DINGTALK_TOKEN (callback token), YINFIN_DINGTALK_AES_KEY (43-char
EncodingAESKey), optional YINFIN_DINGTALK_OWNER_KEY (corpId for callbacks
registered the legacy way; default the app key), YINFIN_DINGTALK_OPERATOR_ID (the
unionId creating to-dos), YINFIN_DINGTALK_API_URL (default https://api.dingtalk.com).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
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
from .http import Http, body_json, loads

NAME = "dingtalk"
TASK_ACTIONS = {"agree": "approve", "refuse": "reject", "redirect": "transfer"}
SETTINGS = ("YINFIN_DINGTALK_APP_KEY", "YINFIN_DINGTALK_APP_SECRET", "YINFIN_DINGTALK_TOKEN",
            "YINFIN_DINGTALK_AES_KEY")


class _TokenExpired(Exception):
    pass


class DingTalkConnector:
    name = NAME

    def __init__(self, *, app_key: str, app_secret: str, token: str, aes_key: str,
                 owner_key: str | None = None, operator_id: str | None = None,
                 api_url: str = "https://api.dingtalk.com", fetch_forms: bool = True,
                 timeout: float | tuple[float, float] = (5.0, 30.0)) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.crypto = BizMsgCrypt(NAME, token, aes_key, owner_key or app_key)
        self.operator_id = operator_id
        self.fetch_forms = fetch_forms
        self.http = Http(NAME, api_url, timeout=timeout)
        self._token: str | None = None
        self._token_until = 0.0

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> DingTalkConnector:
        return cls(app_key=s["YINFIN_DINGTALK_APP_KEY"], app_secret=s["YINFIN_DINGTALK_APP_SECRET"],
                   token=s["YINFIN_DINGTALK_TOKEN"], aes_key=s["YINFIN_DINGTALK_AES_KEY"],
                   owner_key=s.get("YINFIN_DINGTALK_OWNER_KEY") or None,
                   operator_id=s.get("YINFIN_DINGTALK_OPERATOR_ID") or None,
                   api_url=s.get("YINFIN_DINGTALK_API_URL") or "https://api.dingtalk.com")

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
        events: list[InboundEvent] = []
        if event_type != "check_url":
            event = self._event(payload, digest_id(plain))
            # marked seen only once parsing (and the form fetch) worked: a failure
            # here must leave DingTalk's retry acceptable
            check_replay(NAME, digest_id(plain), seen)
            if event is not None:
                events.append(event)
        return self.success_reply(now, events)

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
            return self._api("POST", "/v1.0/workflow/processInstances/comments", json={
                "processInstanceId": message.external_instance_id, "text": text,
                "commentUserId": (message.user_ids or [self.operator_id or ""])[0]})
        if message.kind != "task":
            # a request that never lived in DingTalk has no instance to comment on;
            # its people learn of it through their to-dos
            return {"skipped": "no DingTalk instance for this request"}
        if not self.operator_id:
            raise PermanentError("YINFIN_DINGTALK_OPERATOR_ID is needed to create to-dos",
                                 connector=NAME)
        done = message.status != "pending"
        return self._api("POST", f"/v1.0/todo/users/{self.operator_id}/tasks", json={
            "sourceId": idempotency_key, "subject": message.title,
            "description": message.comment or message.status,
            "executorIds": list(message.user_ids), "isDone": done,
            "detailUrl": {"appUrl": message.url or "", "pcUrl": message.url or ""}})

    # -- plumbing -------------------------------------------------------------------

    def access_token(self, *, fresh: bool = False) -> str:
        if fresh or self._token is None or time.monotonic() >= self._token_until:
            resp = self.http.request("POST", "/v1.0/oauth2/accessToken",
                                     json={"appKey": self.app_key, "appSecret": self.app_secret})
            data = body_json(resp, NAME)
            if resp.status_code != 200 or "accessToken" not in data:
                raise PermanentError(str(data.get("message") or data), connector=NAME,
                                     status=resp.status_code)
            self._token = data["accessToken"]
            # refresh a few minutes early: a token that dies mid-call costs a retry
            self._token_until = time.monotonic() + int(data.get("expireIn", 7200)) - 300
        assert self._token is not None
        return self._token

    def _api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._once(method, path, self.access_token(), **kwargs)
        except _TokenExpired:
            try:
                return self._once(method, path, self.access_token(fresh=True), **kwargs)
            except _TokenExpired as err:
                raise PermanentError(f"token refused after a fresh login: {err}",
                                     connector=NAME) from None

    def _once(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.http.request(method, path, headers={"x-acs-dingtalk-access-token": token},
                                 **kwargs)
        data = body_json(resp, NAME)
        if resp.status_code == 200:
            return dict(data)
        code = str(data.get("code", ""))
        message = str(data.get("message") or data)
        if resp.status_code == 401 or "AccessToken" in code or code == "InvalidAuthentication":
            raise _TokenExpired(message)
        if "QpsLimit" in code or "Throttling" in code:
            raise RetryableError(message, connector=NAME, status=resp.status_code)
        raise PermanentError(message, connector=NAME, status=resp.status_code)
