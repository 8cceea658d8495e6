"""Feishu / Lark (飞书) OA: approval events in, external approval instances out.

Inbound: event subscription POSTs, encrypted as ``{"encrypt": "..."}`` when an
Encrypt Key is set (AES-256-CBC with SHA256(key), see :mod:`connectors.crypto`), and
signed with ``X-Lark-Signature`` = SHA256(``X-Lark-Request-Timestamp`` +
``X-Lark-Request-Nonce`` + encrypt_key + raw body). The first delivery of a new URL
is ``{"type": "url_verification", "challenge": ...}``: it is checked against the
Verification Token and answered with ``{"challenge": ...}``. Every event's token
must equal the Verification Token too.

Approval events, schema 1.0 and 2.0 alike (subscribed per definition with
``POST /open-apis/approval/v4/approvals/:approval_code/subscribe``):

* ``approval_instance`` (2.0: ``approval.instance.status_changed_v4``, the applicant in
  ``start_user``): PENDING → ``form_submitted`` (the form is read from
  ``GET /open-apis/approval/v4/instances/:instance_code``, whose ``form`` is a JSON
  string; numbers are kept as decimal text); APPROVED / REJECTED / DELETED →
  ``instance_status``; CANCELED and REVERTED (the applicant revoked an approved
  instance) → ``instance_withdrawn``; OVERTIME_CLOSE / OVERTIME_RECOVER are ignored.
* ``approval_task`` (2.0: ``approval.task.status_changed_v4``, the approver in
  ``assigned_user``): APPROVED / REJECTED / TRANSFERRED → ``task_acted``.

Any other event type is answered ``{"code":0}`` (Feishu stops re-sending) and named in
``InboundResult.ignored``. The event's ``uuid`` (2.0: ``header.event_id``) is the
replay/idempotency id.

Outbound (``push_status``): our requests are synced into Feishu's approval centre as
external instances (``POST /open-apis/approval/v4/external_instances``, the body in
:mod:`connectors.feishu_instance`) with ``instance_id`` = our request id and
``update_time`` = the message time, so Feishu keeps the newest state whatever order
retries arrive in. ``tenant_access_token``
from ``/open-apis/auth/v3/tenant_access_token/internal`` is refreshed once when
Feishu answers 99991663/99991661/99991664/99991668.

Organisation (``changed_master_data``, see :mod:`connectors.org`), contact v3 with
``department_id_type=open_department_id`` and ``user_id_type=open_id``: departments
from ``GET /open-apis/contact/v3/departments/0/children?fetch_child=true`` (every
department under the root ``0``; ``parent_department_id``, ``leader_user_id``,
``status.is_deleted``), members from ``GET /open-apis/contact/v3/users/find_by_department``
for the root and each department (direct members only), both paged by ``page_size``
/ ``page_token`` (``has_more``). A person is ``open_id`` (kept in ``feishu_open_id``),
our user id is the tenant's ``user_id`` where the app may read it (else the open_id),
the main department is the ``orders`` entry with ``is_primary_dept`` (else the first
of ``department_ids``), the manager ``leader_user_id``; ``status.is_resigned`` /
``is_frozen`` / ``is_exited`` make a user inactive (not yet activated stays active).
Members of the root itself have no department here unless ``0`` is mapped.
Followed: open.feishu.cn/document/server-docs/contact-v3 「获取子部门列表」 and
「获取部门直属用户列表」, and the lark-oapi SDK's contact v3 request models.

Settings: YINFIN_FEISHU_APP_ID, YINFIN_FEISHU_APP_SECRET,
YINFIN_FEISHU_VERIFICATION_TOKEN, YINFIN_FEISHU_ENCRYPT_KEY (optional but
recommended), YINFIN_FEISHU_APPROVAL_CODE (the external approval definition
created in the Feishu admin console), YINFIN_FEISHU_API_URL (default
https://open.feishu.cn; Lark: https://open.larksuite.com), YINFIN_FEISHU_DEPARTMENT_MAP,
_DEPARTMENT_PREFIX and _USER_CODE (see :mod:`connectors.org`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
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
    from_epoch,
    lower_keys,
)
from .crypto import feishu_decrypt, feishu_signature
from .feishu_instance import external_instance
from .http import Http, body_json, loads, need_object, reading, retry_after
from .org import Department, OrgOptions, OrgSync, Person, merge_people, paged, text_or_none
from .tokens import TokenCache

NAME = "feishu"
TOKEN_CODES = {99991661, 99991663, 99991664, 99991668}
RATE_CODES = {99991400, 99991401}
RATE_RESET = "x-ogw-ratelimit-reset"
INSTANCE_STATUS = {"APPROVED": "approved", "REJECTED": "rejected", "DELETED": "deleted"}
TASK_ACTIONS = {"APPROVED": "approve", "REJECTED": "reject", "TRANSFERRED": "transfer"}
#: the event types read, schema 1.0 (``event.type``) and 2.0 (``header.event_type``, the
#: events lark-oapi models as ``P2ApprovalInstanceStatusChangedV4`` / ``...TaskStatus...``)
READ = {"approval_instance": "instance", "approval.instance.status_changed_v4": "instance",
        "approval_task": "task", "approval.task.status_changed_v4": "task"}
ROOT = "0"
CONTACT_IDS = {"department_id_type": "open_department_id", "user_id_type": "open_id"}
SETTINGS = ("YINFIN_FEISHU_APP_ID", "YINFIN_FEISHU_APP_SECRET", "YINFIN_FEISHU_VERIFICATION_TOKEN")


def text_value(value: Any) -> str:
    """A form value as text: decimals exactly, structures as JSON."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


def event_type(payload: Mapping[str, Any]) -> str:
    """The event's type: 2.0 says it in ``header.event_type``, 1.0 in ``event.type``."""
    header = payload.get("header") or {}
    if header.get("event_type"):
        return str(header["event_type"])
    return str((payload.get("event") or {}).get("type") or "")


def _open_id(user: Any) -> str | None:
    """The open_id of a 2.0 ``UserId`` (``{user_id, open_id, union_id}``)."""
    if not isinstance(user, Mapping):
        return None
    return text_or_none(user.get("open_id")) or text_or_none(user.get("user_id"))


class FeishuConnector(OrgSync):
    name = NAME

    def __init__(self, *, app_id: str, app_secret: str, verification_token: str,
                 encrypt_key: str = "", approval_code: str = "",
                 api_url: str = "https://open.feishu.cn", fetch_forms: bool = True,
                 org_options: OrgOptions | None = None,
                 timeout: float | tuple[float, float] = (5.0, 30.0)) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.approval_code = approval_code
        self.fetch_forms = fetch_forms
        # Feishu answers a rate limit with HTTP 429 (older APIs: 400) and code 99991400, and
        # states the wait in x-ogw-ratelimit-reset (「频控策略」)
        self.http = Http(NAME, api_url, timeout=timeout, retry_after_header=RATE_RESET)
        self.org_options = org_options or OrgOptions()
        self.tokens = TokenCache(NAME, self._fetch_token, expired_codes=TOKEN_CODES)

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> FeishuConnector:
        return cls(app_id=s["YINFIN_FEISHU_APP_ID"], app_secret=s["YINFIN_FEISHU_APP_SECRET"],
                   verification_token=s["YINFIN_FEISHU_VERIFICATION_TOKEN"],
                   encrypt_key=s.get("YINFIN_FEISHU_ENCRYPT_KEY", ""),
                   approval_code=s.get("YINFIN_FEISHU_APPROVAL_CODE", ""),
                   api_url=s.get("YINFIN_FEISHU_API_URL") or "https://open.feishu.cn",
                   org_options=OrgOptions.from_settings(s, "YINFIN_FEISHU"))

    # -- inbound --------------------------------------------------------------------

    def verify_and_parse(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
                         *, now: datetime, seen: SeenFn) -> InboundResult:
        h = lower_keys(headers)
        try:
            outer = loads(body)
        except ValueError:
            raise SignatureError("body is not JSON", connector=NAME) from None
        if "encrypt" in outer:
            if not self.encrypt_key:
                raise SignatureError("encrypted event but no encrypt key set", connector=NAME)
            payload = loads(feishu_decrypt(self.encrypt_key, outer["encrypt"]))
        else:
            payload = outer
        token = payload.get("token") or (payload.get("header") or {}).get("token") or ""
        if not hmac.compare_digest(str(token), self.verification_token):
            raise SignatureError("verification token does not match", connector=NAME)
        if payload.get("type") == "url_verification":
            reply = json.dumps({"challenge": payload.get("challenge", "")}).encode()
            return InboundResult([], reply, "application/json")
        if self.encrypt_key:
            ts, nonce = h.get("x-lark-request-timestamp", ""), h.get("x-lark-request-nonce", "")
            expected = feishu_signature(ts, nonce, self.encrypt_key, body)
            if not hmac.compare_digest(expected, h.get("x-lark-signature", "")):
                raise SignatureError("X-Lark-Signature does not match", connector=NAME)
            check_fresh(NAME, from_epoch(ts, NAME), now)
        else:
            # unsigned deployments: the event's own time is all there is to go on
            check_fresh(NAME, self._sent_at(payload), now)
        event_id = str(payload.get("uuid") or (payload.get("header") or {}).get("event_id") or "")
        if not event_id:
            raise SignatureError("event has no uuid / event_id", connector=NAME)
        typ = event_type(payload)
        event = self._event(payload, event_id, typ)
        check_replay(NAME, event_id, seen)  # after the form fetch: its failure allows a retry
        return InboundResult([event] if event else [], b'{"code":0}', "application/json",
                             ignored=() if typ in READ else (typ or "(no type)",))

    @staticmethod
    def _sent_at(payload: Mapping[str, Any]) -> datetime:
        if "ts" in payload:
            return from_epoch(str(payload["ts"]), NAME)
        return from_epoch((payload.get("header") or {}).get("create_time") or 0, NAME)

    def _event(self, payload: Mapping[str, Any], event_id: str, typ: str) -> InboundEvent | None:
        ev = payload.get("event") or {}
        kind, status = READ.get(typ), ev.get("status")
        instance = str(ev.get("instance_code") or "")
        when_raw = ev.get("operate_time") or ev.get("instance_operate_time")
        when = from_epoch(when_raw, NAME) if when_raw else self._sent_at(payload)
        common: dict[str, Any] = dict(connector=NAME, event_id=event_id, external_instance_id=instance,
                      occurred_at=when, template=ev.get("approval_code"), raw=dict(payload))
        if kind == "instance":
            if status == "PENDING":
                form, user = (self.instance_form(instance) if self.fetch_forms else ({}, None))
                user = user or _open_id(ev.get("start_user"))
                return InboundEvent(kind="form_submitted", form=form, external_user_id=user,
                                    **common)
            if status in ("CANCELED", "REVERTED"):  # withdrawn; revoked after approval
                return InboundEvent(kind="instance_withdrawn", status="withdrawn",
                                    external_user_id=_open_id(ev.get("start_user")), **common)
            if status in INSTANCE_STATUS:
                return InboundEvent(kind="instance_status", status=INSTANCE_STATUS[status],
                                    external_user_id=None, **common)
        if kind == "task" and status in TASK_ACTIONS:
            # 1.0 names the approver in open_id / user_id, 2.0 in assigned_user
            user = ev.get("open_id") or ev.get("user_id") or _open_id(ev.get("assigned_user"))
            return InboundEvent(kind="task_acted", action=TASK_ACTIONS[status],
                                external_user_id=user, task_id=str(ev.get("task_id") or ""),
                                **common)
        return None

    def instance_form(self, instance_code: str) -> tuple[dict[str, str], str | None]:
        """(``{label: value}``, applicant user id) of an approval instance."""
        data = self._api("GET", f"/open-apis/approval/v4/instances/{instance_code}")["data"]
        widgets = loads(data.get("form") or "[]")
        form = {str(w.get("name") or w.get("id")): text_value(w.get("value")) for w in widgets}
        return form, data.get("open_id") or data.get("user_id")

    # -- outbound -------------------------------------------------------------------

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        code = message.template or self.approval_code
        if not code:
            raise PermanentError("no approval_code: set YINFIN_FEISHU_APPROVAL_CODE",
                                 connector=NAME)
        return self._api("POST", "/open-apis/approval/v4/external_instances",
                         json=external_instance(message, code, idempotency_key))

    # -- organisation ---------------------------------------------------------------

    def org_snapshot(self) -> tuple[list[Department], list[Person]]:
        """Every department and person the app may see; any failure raises (no half answer)."""
        depts = [
            Department(str(d["open_department_id"]), str(d.get("name") or ""),
                       text_or_none(d.get("parent_department_id")),
                       text_or_none(d.get("leader_user_id")))
            for d in paged(self._pages(f"/open-apis/contact/v3/departments/{ROOT}/children",
                                       fetch_child="true"), connector=NAME, what="departments")
            if not (d.get("status") or {}).get("is_deleted")]
        people: list[Person] = []
        for dept in [ROOT] + [d.id for d in depts]:
            for u in paged(self._pages("/open-apis/contact/v3/users/find_by_department",
                                       department_id=dept), connector=NAME,
                           what=f"users of department {dept}"):
                people.append(self._person(u))
        return depts, merge_people(people)

    @staticmethod
    def _person(u: Mapping[str, Any]) -> Person:
        status = u.get("status") or {}
        primary = [o.get("department_id") for o in u.get("orders") or [] if o.get("is_primary_dept")]
        depts = primary + list(u.get("department_ids") or [])
        return Person(
            id=str(u["open_id"]), code=text_or_none(u.get("user_id")),
            name=str(u.get("name") or u["open_id"]), department=text_or_none(depts[0] if depts else None),
            manager=text_or_none(u.get("leader_user_id")),
            email=text_or_none(u.get("enterprise_email") or u.get("email")),
            employee_no=text_or_none(u.get("employee_no")),
            active=not any(status.get(k) for k in ("is_resigned", "is_frozen", "is_exited")))

    def _pages(self, path: str, **params: str
               ) -> Callable[[str | None], tuple[list[Any], str | None]]:
        def page(token: str | None) -> tuple[list[Any], str | None]:
            query = {**CONTACT_IDS, **params, "page_size": "50"}
            if token:
                query["page_token"] = token
            data = self._api("GET", path, params=query).get("data") or {}
            more = data.get("has_more") and data.get("page_token")
            return list(data.get("items") or []), str(data["page_token"]) if more else None
        return page

    # -- plumbing -------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        resp = self.http.request("POST", "/open-apis/auth/v3/tenant_access_token/internal",
                                 json={"app_id": self.app_id, "app_secret": self.app_secret})
        data = need_object(body_json(resp, NAME), NAME, "the access token answer")
        if data.get("code") != 0:
            raise PermanentError(str(data.get("msg")), connector=NAME, status=resp.status_code)
        with reading(NAME, "the access token answer"):
            return str(data["tenant_access_token"]), int(data.get("expire", 7200))

    def tenant_token(self) -> str:
        return self.tokens.get()

    def _api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.tokens.call(lambda token: self._once(method, path, token, **kwargs))

    def _once(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.http.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                 **kwargs)
        data = need_object(body_json(resp, NAME), NAME, f"the answer to {method} {path}")
        code = data.get("code")
        if code == 0:
            return dict(data)
        msg = str(data.get("msg") or data)
        self.tokens.check(code, msg)
        if code in RATE_CODES:  # Feishu says when the window resets
            raise RetryableError(msg, connector=NAME, status=resp.status_code,
                                 retry_after=retry_after(resp.headers.get(RATE_RESET)))
        raise PermanentError(msg, connector=NAME, status=resp.status_code)
