"""Generic signed webhook: any OA that can call a URL (Weaver e-cology, Seeyon, in-house).

Inbound: ``POST /api/v1/oa/<name>/events`` with headers

* ``X-Yinfin-Timestamp``: Unix seconds when the OA sent it,
* ``X-Yinfin-Event-Id``: unique per event, the same on re-delivery,
* ``X-Yinfin-Signature``: hex HMAC-SHA256 with the shared secret over
  ``timestamp + "." + raw body`` (a ``sha256=`` prefix is accepted),

and a JSON body::

    {"kind": "form_submitted" | "task_acted" | "instance_withdrawn" | "instance_status",
     "instance_id": "WF-2026-0001", "user_id": "zhangsan",
     "form": {"amount": "1200.00", "cost_centre": "CC-01"},      # form_submitted
     "action": "approve" | "reject" | ..., "comment": "...",     # task_acted
     "status": "approved" | "rejected" | ...,                    # instance_status
     "task_id": "...", "template": "expense", "occurred_at": "2026-11-25T08:00:00Z"}

Form values should be strings; JSON numbers are accepted and kept as their exact
decimal text. An authentic but malformed body raises :class:`PermanentError`
(answer 422); the answer to a good one is ``{"ok": true}``.

Outbound (``push_status``): ``POST`` to the configured status URL with the same three
headers (``X-Yinfin-Event-Id`` = the idempotency key, also sent as
``Idempotency-Key``) and the :class:`StatusMessage` as JSON: ``url`` is where its reader
acts (the console's task page for a task, else the request's page), ``request_url`` the
request's page (see :mod:`yinfin_flow.links`).

Settings, per connector name (``generic``, or e.g. ``weaver``/``seeyon`` to run
several): YINFIN_<NAME>_SECRET (required), YINFIN_<NAME>_STATUS_URL (optional).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .base import (
    EVENT_KINDS,
    InboundEvent,
    InboundResult,
    PermanentError,
    SeenFn,
    SignatureError,
    StatusMessage,
    check_fresh,
    check_replay,
    from_epoch,
    lower_keys,
)
from .crypto import hmac_sha256_hex
from .http import Http, loads


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac_sha256_hex(secret, timestamp.encode() + b"." + body)


class GenericWebhookConnector:
    def __init__(self, *, secret: str, status_url: str = "", name: str = "generic",
                 timeout: float | tuple[float, float] = (5.0, 30.0)) -> None:
        if not secret:
            raise ValueError("a shared secret is required")
        self.name = name
        self.secret = secret
        self.status_url = status_url
        self.http = Http(name, status_url or "http://invalid", timeout=timeout)

    @classmethod
    def from_settings(cls, s: Mapping[str, str], name: str = "generic") -> GenericWebhookConnector:
        prefix = f"YINFIN_{name.upper()}_"
        return cls(secret=s[prefix + "SECRET"], status_url=s.get(prefix + "STATUS_URL", ""),
                   name=name)

    def verify_and_parse(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
                         *, now: datetime, seen: SeenFn) -> InboundResult:
        h = lower_keys(headers)
        ts, event_id = h.get("x-yinfin-timestamp", ""), h.get("x-yinfin-event-id", "")
        given = h.get("x-yinfin-signature", "").removeprefix("sha256=")
        if not hmac.compare_digest(sign(self.secret, ts, body), given):
            raise SignatureError("X-Yinfin-Signature does not match", connector=self.name)
        check_fresh(self.name, from_epoch(ts, self.name), now)
        if not event_id:
            raise SignatureError("X-Yinfin-Event-Id is missing", connector=self.name)
        event = self._event(body, event_id, now)
        check_replay(self.name, event_id, seen)
        return InboundResult([event], b'{"ok": true}', "application/json")

    def _bad(self, field: str, problem: str) -> PermanentError:
        return PermanentError(f"{field}: {problem}", connector=self.name, status=422)

    def _event(self, body: bytes, event_id: str, now: datetime) -> InboundEvent:
        try:
            p = loads(body)
        except ValueError:
            raise self._bad("body", "is not JSON") from None
        if not isinstance(p, dict):
            raise self._bad("body", "must be a JSON object")
        if p.get("kind") not in EVENT_KINDS:
            raise self._bad("kind", f"must be one of {', '.join(EVENT_KINDS)}")
        if not isinstance(p.get("instance_id"), str | int) or not str(p["instance_id"]):
            raise self._bad("instance_id", "is required")
        form = p.get("form") or {}
        if not isinstance(form, dict):
            raise self._bad("form", "must be an object of field: value")
        for key, value in form.items():
            if not isinstance(value, str | int | Decimal) or isinstance(value, bool):
                raise self._bad(f"form.{key}", "must be a string or a number")
        occurred = now
        if p.get("occurred_at"):
            try:
                occurred = datetime.fromisoformat(str(p["occurred_at"]).replace("Z", "+00:00"))
            except ValueError:
                raise self._bad("occurred_at", "must be ISO 8601") from None
            if occurred.tzinfo is None:
                raise self._bad("occurred_at", "needs a UTC offset")
            occurred = occurred.astimezone(UTC)
        return InboundEvent(
            connector=self.name, event_id=event_id, kind=p["kind"],
            external_instance_id=str(p["instance_id"]), external_user_id=p.get("user_id"),
            occurred_at=occurred,
            form={str(k): format(v, "f") if isinstance(v, Decimal) else str(v)
                  for k, v in form.items()},
            action=p.get("action"), comment=p.get("comment"), status=p.get("status"),
            task_id=p.get("task_id"), template=p.get("template"), raw=p)

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        if not self.status_url:
            raise PermanentError(f"YINFIN_{self.name.upper()}_STATUS_URL is not set",
                                 connector=self.name)
        payload = dataclasses.asdict(message)
        for name, value in payload.items():  # occurred_at, started_at, task_created_at
            if isinstance(value, datetime):
                payload[name] = value.isoformat()
        payload["user_ids"] = list(message.user_ids)
        payload["applicant_ids"] = list(message.applicant_ids)
        payload["form"] = dict(message.form)
        body = json.dumps(payload, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        resp = self.http.request("POST", self.status_url, data=body, headers={
            "Content-Type": "application/json", "X-Yinfin-Timestamp": ts,
            "X-Yinfin-Event-Id": idempotency_key, "Idempotency-Key": idempotency_key,
            "X-Yinfin-Signature": sign(self.secret, ts, body)})
        if resp.status_code >= 400:
            raise PermanentError(resp.text[:1000] or f"HTTP {resp.status_code}",
                                 connector=self.name, status=resp.status_code)
        try:
            return dict(loads(resp.content)) if resp.content else {}
        except (ValueError, TypeError):
            return {"body": resp.text[:1000]}
