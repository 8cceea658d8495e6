"""Our request as a Feishu external approval instance (同步三方审批实例).

The body of ``POST /open-apis/approval/v4/external_instances`` as lark-oapi's
``ExternalInstance`` / ``ExternalInstanceTaskNode`` models define it:

* ``instance_id`` = our request id; ``open_id`` = the **applicant** (the requester's
  Feishu open_id) on every message, a task's own ``open_id`` = its approver;
* times are integers (milliseconds): ``start_time`` = when the request was submitted
  (the same on every message of the instance), ``end_time`` = 0 while the instance
  (task) is open and the message time once it is finished, ``update_time`` = the
  message time (Feishu keeps the newest of several, whatever order retries arrive in);
* ``links`` (``pc_link`` and ``mobile_link``) lead to the request's page in the console,
  a task's to the task's page (:mod:`yinfin_flow.links`);
* ``title``, the form's names and values and the task titles are ``@i18n@`` keys, their
  texts in ``i18n_resources`` in Chinese (``zh-CN``, the default) and English (``en-US``);
* ``update_mode`` ``UPDATE``: a message carries only the task it is about; Feishu keeps
  the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .base import StatusMessage

#: our status → the instance's
INSTANCE_STATUS = {"pending": "PENDING", "approved": "APPROVED", "rejected": "REJECTED",
                   "withdrawn": "CANCELED", "cancelled": "CANCELED"}
#: a task's outcome → the task's status (a task that ended without its approver's say is DONE)
TASK_STATUS = {"pending": "PENDING", "approved": "APPROVED", "rejected": "REJECTED",
               "withdrawn": "DONE", "cancelled": "DONE"}
LOCALES = ("zh-CN", "en-US")
WORDS = {
    "zh-CN": {"request": "申请单", "status": "状态", "pending": "审批中", "approved": "已通过",
              "rejected": "已拒绝", "withdrawn": "已撤回", "cancelled": "已取消"},
    "en-US": {"request": "Request", "status": "Status", "pending": "In approval",
              "approved": "Approved", "rejected": "Rejected", "withdrawn": "Withdrawn",
              "cancelled": "Cancelled"},
}


def millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def external_instance(message: StatusMessage, approval_code: str, key: str) -> dict[str, Any]:
    """The request body for one message (``key`` names a task that has no id of ours)."""
    now = millis(message.occurred_at)
    status = message.request_status if message.kind == "task" else message.status
    status = status or "pending"
    request_url = message.request_url or message.url or ""
    texts: dict[str, dict[str, str]] = {loc: {} for loc in LOCALES}

    def text(key: str, **by_locale: str) -> str:
        for loc in LOCALES:
            texts[loc][f"@i18n@{key}"] = by_locale[loc.replace("-", "_")]
        return f"@i18n@{key}"

    def same(key: str, value: str) -> str:
        return text(key, zh_CN=value, en_US=value)

    zh, en = WORDS["zh-CN"], WORDS["en-US"]
    form = [{"name": text("form_request", zh_CN=zh["request"], en_US=en["request"]),
             "value": same("form_request_value", f"#{message.request_id}")},
            {"name": text("form_status", zh_CN=zh["status"], en_US=en["status"]),
             "value": text("form_status_value", zh_CN=zh.get(status, status),
                           en_US=en.get(status, status))}]
    for n, (name, value) in enumerate(message.form.items()):
        form.append({"name": same(f"form_{n}", str(name)), "value": same(f"form_{n}_value", str(value))})
    body: dict[str, Any] = {
        "approval_code": approval_code, "instance_id": message.request_id,
        "status": INSTANCE_STATUS.get(status, "PENDING"), "title": same("title", message.title),
        "links": {"pc_link": request_url, "mobile_link": request_url},
        "start_time": millis(message.started_at or message.occurred_at),
        "end_time": 0 if status == "pending" else now, "update_time": now,
        "update_mode": "UPDATE", "form": form,
    }
    if message.applicant_ids:  # our directory keeps Feishu's open_id (feishu_open_id)
        body["open_id"] = message.applicant_ids[0]
    if message.kind == "task":
        task_url = message.url or request_url
        created = millis(message.task_created_at or message.occurred_at)
        title = same("task_title", message.title)
        body["task_list"] = [{
            "task_id": message.task_id or key, "open_id": uid, "title": title,
            "links": {"pc_link": task_url, "mobile_link": task_url},
            "status": TASK_STATUS.get(message.status, "DONE"),
            "create_time": created, "end_time": 0 if message.status == "pending" else now,
            "update_time": now,
        } for uid in message.user_ids]
    body["i18n_resources"] = [
        {"locale": loc, "is_default": loc == LOCALES[0],
         "texts": [{"key": k, "value": v} for k, v in texts[loc].items()]}
        for loc in LOCALES]
    return body
