"""Outbox payloads of OA messages: the links and times survive the round trip, and a
message queued by an earlier version (without them) still delivers."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import StatusMessage
from yinfin_flow.worker.messages import status_from_json, status_to_json

AT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_links_times_and_applicants_round_trip() -> None:
    m = StatusMessage(kind="task", request_id="7", title="t", status="pending", occurred_at=AT,
                      user_ids=("ou_wang",), task_id="12", url="https://c/tasks/12",
                      request_url="https://c/requests/7", applicant_ids=("ou_amy",),
                      started_at=AT.replace(hour=7), task_created_at=AT.replace(minute=30),
                      request_status="pending")
    assert status_from_json(status_to_json(m)) == m


def test_a_message_queued_before_links_still_delivers() -> None:
    old = {"kind": "status", "request_id": "7", "title": "t", "status": "approved",
           "occurred_at": AT.isoformat(), "user_ids": ["amy"], "external_instance_id": None,
           "template": None, "comment": None, "url": None, "form": {}, "task_id": None,
           "external_task_id": None}
    m = status_from_json(old)
    assert (m.request_url, m.applicant_ids, m.started_at, m.task_created_at) == (None, (), None, None)
