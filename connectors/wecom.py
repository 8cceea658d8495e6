"""WeCom (企业微信) OA: approval state change callbacks in, app messages out.

Inbound uses WeCom's WXBizMsgCrypt scheme (see :mod:`connectors.crypto`):

* ``GET ?msg_signature&timestamp&nonce&echostr``: URL verification; the answer is
  the decrypted ``echostr`` as plain text.
* ``POST ?msg_signature&timestamp&nonce`` with ``<xml><ToUserName/><AgentID/>
  <Encrypt/></xml>``: the decrypted XML's ``Event`` ``sys_approval_change`` carries
  ``ApprovalInfo`` (``SpNo``, ``SpStatus``, ``StatuChangeEvent``, ``Applyer``,
  ``SpRecord``). ``StatuChangeEvent`` 1 (submitted) → ``form_submitted`` (the form
  is read from ``POST /cgi-bin/oa/getapprovaldetail``); 2/3/4/10 (approved,
  rejected, transferred, commented) → ``task_acted`` by the approver whose record
  changed last, plus ``instance_status`` when ``SpStatus`` became final; 6/8
  (withdrawn, withdrawn after approval) → ``instance_withdrawn``. The answer is
  an empty 200 (WeCom retries three times when it gets none within 5 s). Any other
  message or event is answered the same and named in ``InboundResult.ignored``.

WeCom's callbacks carry no event id; the id is a digest of the decrypted message,
which WeCom re-sends unchanged on retry.

Outbound (``push_status``): a ``textcard`` app message (``POST
/cgi-bin/message/send``) to the users, with WeCom's own duplicate check on.
``access_token`` from ``GET /cgi-bin/gettoken`` is fetched again once on errcode
40014/42001.

Organisation (``changed_master_data``, see :mod:`connectors.org`): departments from
``GET /cgi-bin/department/list`` (the whole tree at once: ``id``, ``name``, ``parentid``,
``department_leader``), members from ``GET /cgi-bin/user/list?department_id=`` per
department (获取部门成员详情; one answer per department, WeCom does not page it):
``userid``, ``name``, ``main_department``, ``biz_mail``/``email``, ``direct_leader``,
``status`` (1 active and 4 not yet activated stay active; 2 disabled and 5 left make the
user inactive). Apps created after 2022-06-20 get no e-mail from these answers, and
WeCom refuses ``user/list`` to the 通讯录同步 secret from IP addresses added after
2022-08-15 (WeCom's notice on 获取部门成员详情); use a self-built app whose visibility
scope covers the company, or the contacts secret from an address that may still call it.
``YINFIN_WECOM_CONTACT_SECRET`` (optional) is the secret used for these reads; its
token is kept apart from the approval app's. Followed: developer.work.weixin.qq.com
「获取部门列表」 and 「获取部门成员详情」 (document/path/96260) and 「全局错误码」.

Settings: YINFIN_WECOM_CORP_ID, YINFIN_WECOM_SECRET (the approval app's secret),
YINFIN_WECOM_AGENT_ID, YINFIN_WECOM_TOKEN, YINFIN_WECOM_AES_KEY (43 chars),
YINFIN_WECOM_API_URL (default https://qyapi.weixin.qq.com), YINFIN_WECOM_CONTACT_SECRET,
YINFIN_WECOM_DEPARTMENT_MAP, _DEPARTMENT_PREFIX and _USER_CODE (see :mod:`connectors.org`).
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
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
from .http import Http, body_json, need_object, reading
from .org import Department, OrgOptions, OrgSync, Person, merge_people, text_or_none
from .tokens import TokenCache

NAME = "wecom"
TOKEN_CODES = {40014, 42001}
RETRY_CODES = {-1, 45009, 45033}
READ = "sys_approval_change"
ACTIONS = {"2": "approve", "3": "reject", "4": "transfer", "10": "comment"}
FINAL = {"2": "approved", "3": "rejected"}
EMPLOYED = {1, 4}  # active, not yet activated (2 disabled, 5 left)
SETTINGS = ("YINFIN_WECOM_CORP_ID", "YINFIN_WECOM_SECRET", "YINFIN_WECOM_AGENT_ID",
            "YINFIN_WECOM_TOKEN", "YINFIN_WECOM_AES_KEY")


def _xml(text: str | bytes) -> ET.Element:
    # ElementTree resolves no external entities and the bundled expat (>= 2.4.1)
    # refuses entity-expansion bombs, so untrusted XML is safe to parse here.
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        raise SignatureError(f"bad XML: {err}", connector=NAME) from None


def control_value(content: Mapping[str, Any]) -> str:
    """One ``apply_data.contents`` control as text (money keeps WeCom's string)."""
    value = content.get("value") or {}
    control = content.get("control")
    if control in ("Text", "Textarea"):
        return str(value.get("text", ""))
    if control == "Number":
        return str(value.get("new_number", ""))
    if control == "Money":
        return str(value.get("new_money", ""))
    if control == "Date":
        return str((value.get("date") or {}).get("s_timestamp", ""))
    if control == "Selector":
        options = (value.get("selector") or {}).get("options") or []
        return ",".join(v.get("text", "") for o in options for v in o.get("value", []))
    return json.dumps(value, ensure_ascii=False, default=str)


class WeComConnector(OrgSync):
    name = NAME

    def __init__(self, *, corp_id: str, secret: str, agent_id: str, token: str, aes_key: str,
                 api_url: str = "https://qyapi.weixin.qq.com", fetch_forms: bool = True,
                 contact_secret: str | None = None, org_options: OrgOptions | None = None,
                 timeout: float | tuple[float, float] = (5.0, 30.0)) -> None:
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.contact_secret = contact_secret or secret
        self.crypto = BizMsgCrypt(NAME, token, aes_key, corp_id)
        self.fetch_forms = fetch_forms
        self.http = Http(NAME, api_url, timeout=timeout)
        self.org_options = org_options or OrgOptions()
        self._tokens: dict[str, TokenCache] = {}  # secret -> its token
        self._tokens_lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> WeComConnector:
        return cls(corp_id=s["YINFIN_WECOM_CORP_ID"], secret=s["YINFIN_WECOM_SECRET"],
                   agent_id=s["YINFIN_WECOM_AGENT_ID"], token=s["YINFIN_WECOM_TOKEN"],
                   aes_key=s["YINFIN_WECOM_AES_KEY"],
                   api_url=s.get("YINFIN_WECOM_API_URL") or "https://qyapi.weixin.qq.com",
                   contact_secret=s.get("YINFIN_WECOM_CONTACT_SECRET") or None,
                   org_options=OrgOptions.from_settings(s, "YINFIN_WECOM"))

    # -- inbound --------------------------------------------------------------------

    def verify_and_parse(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
                         *, now: datetime, seen: SeenFn) -> InboundResult:
        signature, ts, nonce = (query.get("msg_signature", ""), query.get("timestamp", ""),
                                query.get("nonce", ""))
        if "echostr" in query and not body:
            echostr = query["echostr"].replace(" ", "+")  # a '+' that lost its URL escaping
            self.crypto.verify(signature, ts, nonce, echostr)
            check_fresh(NAME, from_epoch(ts, NAME), now)
            return InboundResult([], self.crypto.decrypt(echostr).encode())
        encrypt = _xml(body).findtext("Encrypt") or ""
        self.crypto.verify(signature, ts, nonce, encrypt)
        check_fresh(NAME, from_epoch(ts, NAME), now)
        plain = self.crypto.decrypt(encrypt)
        msg = _xml(plain)
        event_id = digest_id(plain)
        kind = msg.findtext("Event") or msg.findtext("MsgType") or "(no type)"
        events = self._events(msg, event_id, plain) if kind == READ else []
        check_replay(NAME, event_id, seen)  # after the form fetch: its failure allows a retry
        # anything else (a user's message to the app, menu clicks, contact changes) is
        # answered the same, or WeCom re-sends it, and reported
        return InboundResult(events, b"", ignored=() if kind == READ else (kind,))

    def _events(self, msg: ET.Element, event_id: str, plain: str) -> list[InboundEvent]:
        info = msg.find("ApprovalInfo")
        if info is None:
            return []
        change = info.findtext("StatuChangeEvent") or ""
        sp_status = info.findtext("SpStatus") or ""
        common: dict[str, Any] = dict(connector=NAME, external_instance_id=info.findtext("SpNo") or "",
                      occurred_at=from_epoch(msg.findtext("CreateTime") or "0", NAME),
                      template=info.findtext("TemplateId"), raw={"xml": plain})
        applicant = info.findtext("Applyer/UserId")
        if change == "1":
            form = self.approval_form(common["external_instance_id"]) if self.fetch_forms else {}
            return [InboundEvent(event_id=event_id, kind="form_submitted", form=form,
                                 external_user_id=applicant, **common)]
        if change in ("6", "8"):
            return [InboundEvent(event_id=event_id, kind="instance_withdrawn", status="withdrawn",
                                 external_user_id=applicant, **common)]
        out: list[InboundEvent] = []
        if change in ACTIONS:
            actor, speech = self._last_actor(info)
            out.append(InboundEvent(event_id=event_id, kind="task_acted", action=ACTIONS[change],
                                    comment=speech, external_user_id=actor, **common))
        if sp_status in FINAL:
            out.append(InboundEvent(event_id=f"{event_id}:status", kind="instance_status",
                                    status=FINAL[sp_status], external_user_id=applicant,
                                    **common))
        return out

    @staticmethod
    def _last_actor(info: ET.Element) -> tuple[str | None, str | None]:
        """The approver whose record has the latest ``SpTime`` (who just acted)."""
        best: tuple[int, str | None, str | None] = (-1, None, None)
        for d in info.iter("Details"):
            when = int(d.findtext("SpTime") or 0)
            if when > best[0]:
                best = (when, d.findtext("Approver/UserId"), d.findtext("Speech") or None)
        return best[1], best[2]

    def approval_form(self, sp_no: str) -> dict[str, str]:
        data = self._api("POST", "/cgi-bin/oa/getapprovaldetail", json={"sp_no": sp_no})
        contents = ((data.get("info") or {}).get("apply_data") or {}).get("contents") or []
        form = {}
        for c in contents:
            titles = c.get("title") or []
            label = next((t.get("text") for t in titles if t.get("lang") == "zh_CN"),
                         titles[0].get("text") if titles else c.get("id"))
            form[str(label)] = control_value(c)
        return form

    # -- outbound -------------------------------------------------------------------

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        if not message.user_ids:
            raise PermanentError("no user to tell: StatusMessage.user_ids is empty",
                                 connector=NAME)
        description = f"{message.status}" + (f": {message.comment}" if message.comment else "")
        return self._api("POST", "/cgi-bin/message/send", json={
            "touser": "|".join(message.user_ids), "msgtype": "textcard",
            "agentid": int(self.agent_id),
            # the console's task (or request) page; WeCom's card has one link for all devices
            "textcard": {"title": message.title, "description": description,
                         "url": message.url or message.request_url or "", "btntxt": "详情"},
            # WeCom drops an identical message within the interval: a retried
            # delivery does not notify twice
            "enable_duplicate_check": 1, "duplicate_check_interval": 1800,
        })

    # -- organisation ---------------------------------------------------------------

    def org_snapshot(self) -> tuple[list[Department], list[Person]]:
        """Every department and person the secret may see; any failure raises."""
        answer = self._api("GET", "/cgi-bin/department/list", secret=self.contact_secret)
        depts = [Department(str(d["id"]), str(d.get("name") or d["id"]),
                            str(d["parentid"]) if d.get("parentid") else None,
                            text_or_none((d.get("department_leader") or [None])[0]))
                 for d in answer.get("department") or []]
        people = []
        for dept in depts:
            members = self._api("GET", "/cgi-bin/user/list", secret=self.contact_secret,
                                params={"department_id": dept.id}).get("userlist") or []
            for u in members:
                main = u.get("main_department") or (u.get("department") or [dept.id])[0]
                people.append(Person(
                    id=str(u["userid"]), name=str(u.get("name") or u["userid"]),
                    department=str(main),
                    manager=text_or_none((u.get("direct_leader") or [None])[0]),
                    email=text_or_none(u.get("biz_mail") or u.get("email")),
                    active=u.get("status", 1) in EMPLOYED))
        return depts, merge_people(people)

    # -- plumbing -------------------------------------------------------------------

    def _cache(self, secret: str) -> TokenCache:
        """One token per secret (the approval app's, the contacts one), made on first use."""
        cache = self._tokens.get(secret)
        if cache is None:
            with self._tokens_lock:
                cache = self._tokens.setdefault(secret, TokenCache(
                    NAME, lambda: self._fetch_token(secret), expired_codes=TOKEN_CODES))
        return cache

    def _fetch_token(self, secret: str) -> tuple[str, float]:
        resp = self.http.request("GET", "/cgi-bin/gettoken",
                                 params={"corpid": self.corp_id, "corpsecret": secret})
        data = need_object(body_json(resp, NAME), NAME, "the access token answer")
        if data.get("errcode") != 0:
            cls = RetryableError if data.get("errcode") in RETRY_CODES else PermanentError
            raise cls(str(data.get("errmsg")), connector=NAME, status=resp.status_code)
        with reading(NAME, "the access token answer"):
            return str(data["access_token"]), int(data.get("expires_in", 7200))

    def access_token(self, *, secret: str | None = None) -> str:
        return self._cache(secret or self.secret).get()

    def _api(self, method: str, path: str, *, secret: str | None = None,
             **kwargs: Any) -> dict[str, Any]:
        cache = self._cache(secret or self.secret)
        return cache.call(lambda token: self._once(cache, method, path, token, **kwargs))

    def _once(self, cache: TokenCache, method: str, path: str, token: str,
              **kwargs: Any) -> dict[str, Any]:
        params = {**kwargs.pop("params", {}), "access_token": token}
        resp = self.http.request(method, path, params=params, **kwargs)
        data = need_object(body_json(resp, NAME), NAME, f"the answer to {method} {path}")
        code = data.get("errcode", 0)
        if code == 0:
            return dict(data)
        msg = str(data.get("errmsg") or data)
        cache.check(code, msg)
        if code in RETRY_CODES:
            raise RetryableError(msg, connector=NAME, status=resp.status_code)
        raise PermanentError(msg, connector=NAME, status=resp.status_code)
