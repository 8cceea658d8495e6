"""OA inbound over HTTP with the generic signed webhook: a form becomes a request
through the form's mapping, an OA approval acts on the task, forged or stale
deliveries are refused, and an authentic re-delivery gets the vendor's success answer
without being applied twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connectors.generic import sign
from yinfin_flow.db.models.engine import ApprovalRequest, RequestHistory
from yinfin_flow.extension import state

from ..factories import Org
from ..integration.test_engine_support import world

SECRET = "oa-shared-secret"
URL = "/api/v1/oa/weaver/events"
MAPPING = """
users: same
forms:
  EXP-01:
    workflow: expense
    company: ACME
    title: reason
    lines:
      - {ref: "=1", line_id: budget_line, amount: amount, currency: "=CNY",
         budget_date: date, memo: reason}
"""


@pytest.fixture
def oa(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Org:
    monkeypatch.setenv("YINFIN_WEAVER_SECRET", SECRET)
    (tmp_path / "weaver.yaml").write_text(MAPPING, encoding="utf-8")
    app.config["YINFIN_OA_MAPPING_DIR"] = str(tmp_path)
    return world(state(app).db)


def deliver(client: FlaskClient, payload: dict, event_id: str, *, ts: int | None = None,
            secret: str = SECRET):
    body = json.dumps(payload).encode()
    stamp = str(ts if ts is not None else int(time.time()))
    return client.post(URL, data=body, content_type="application/json", headers={
        "X-Yinfin-Timestamp": stamp, "X-Yinfin-Event-Id": event_id,
        "X-Yinfin-Signature": sign(secret, stamp, body)})


def form(org: Org, amount: str = "120.00") -> dict:
    return {"kind": "form_submitted", "instance_id": "WF-1", "user_id": "amy", "template": "EXP-01",
            "form": {"reason": "Shanghai visit", "amount": amount, "budget_line": str(org.child_line),
                     "date": "2026-01-15"}}


def test_a_form_becomes_a_request_and_an_oa_approval_acts(anonymous: FlaskClient, app: Flask, oa: Org):
    resp = deliver(anonymous, form(oa), "e1")
    assert (resp.status_code, resp.get_json()) == (200, {"ok": True})  # what the OA expects
    db = state(app).db
    with db.unit_of_work(readonly=True) as s:
        req = s.scalar(select(ApprovalRequest))
        assert (req.requester, req.title, req.state) == ("amy", "Shanghai visit", "approval")
        assert req.form["lines"][0]["amount"] == "120.00"
    act = {"kind": "task_acted", "instance_id": "WF-1", "user_id": "wang", "action": "approve"}
    assert deliver(anonymous, act, "e2").status_code == 200
    with db.unit_of_work(readonly=True) as s:
        req = s.scalar(select(ApprovalRequest))
        assert req.route[req.step_index] == "finance"  # wang's manager step is done


def redeliveries(client: FlaskClient) -> dict:
    return client.get("/api/v1/health").get_json()["checks"]["oa_inbound"]["details"]


def test_forged_and_stale_deliveries_are_refused(anonymous: FlaskClient, app: Flask, oa: Org):
    forged = deliver(anonymous, form(oa), "e1", secret="guess")
    assert (forged.status_code, forged.get_json()["code"]) == (401, "bad_signature")
    stale = deliver(anonymous, form(oa), "e1", ts=int(time.time()) - 301)
    assert stale.status_code == 401
    assert deliver(anonymous, form(oa), "e1").status_code == 200
    # a forged copy of an applied event is still refused, and not counted
    forged = deliver(anonymous, form(oa), "e1", secret="guess")
    assert (forged.status_code, forged.get_json()["code"]) == (401, "bad_signature")
    assert redeliveries(anonymous)["redeliveries"] == 0


def test_a_redelivered_event_gets_the_vendors_success_answer_and_applies_nothing(
        anonymous: FlaskClient, app: Flask, oa: Org):
    """OA platforms re-deliver what they did not see acknowledged: the re-delivery of an
    applied event is answered as the vendor expects (it was 401 bad_signature, so the
    vendor kept retrying), counted in health, and applied once."""
    assert deliver(anonymous, form(oa), "e1").status_code == 200
    act = {"kind": "task_acted", "instance_id": "WF-1", "user_id": "wang", "action": "approve"}
    assert deliver(anonymous, act, "e2").status_code == 200
    for event_id, payload in (("e1", form(oa)), ("e2", act), ("e2", act)):
        again = deliver(anonymous, payload, event_id)
        assert (again.status_code, again.get_json()) == (200, {"ok": True})
    db = state(app).db
    with db.unit_of_work(readonly=True) as s:
        (req,) = s.scalars(select(ApprovalRequest)).all()
        assert req.route[req.step_index] == "finance"  # approved once: still at finance
        actions = list(s.scalars(select(RequestHistory.action)
                                 .where(RequestHistory.request_id == req.id)))
    assert actions.count("approve") == 1 and actions.count("submit") == 1, actions
    seen = redeliveries(anonymous)
    assert (seen["redeliveries"], seen["by_connector"]) == (3, {"weaver": 3})
    assert seen["last_redelivery_at"] is not None
    # A new event id for the same OA instance still makes one request (keyed by instance).
    assert deliver(anonymous, form(oa), "e1-redelivered").status_code == 200
    with state(app).db.unit_of_work(readonly=True) as s:
        assert len(s.scalars(select(ApprovalRequest)).all()) == 1


def test_a_failed_delivery_can_be_retried(anonymous: FlaskClient, app: Flask, oa: Org):
    over = deliver(anonymous, form(oa, amount="900.00"), "e9")
    assert over.status_code == 409  # over budget: nothing written, the id not remembered
    bad = deliver(anonymous, {**form(oa), "template": "NOPE"}, "e9")
    assert bad.status_code == 422 and bad.get_json()["details"]["field"] == "template"
    assert deliver(anonymous, form(oa), "e9").status_code == 200


def test_an_authentic_event_gets_the_same_limits_as_the_api(anonymous: FlaskClient, app: Flask, oa: Org):
    """A signed delivery is not a licence: a 5 MB form field, a thousand nested levels or
    an amount written "1e2" or "١٢٣" are refused by name, and nothing is applied."""
    long = {**form(oa), "form": {**form(oa)["form"], "reason": "x" * 10_001}}
    resp = deliver(anonymous, long, "big")
    assert (resp.status_code, resp.get_json()["details"]["field"]) == (422, "form.reason")
    for odd in ("1e2", "١٢٣", " 120.00"):
        resp = deliver(anonymous, form(oa, amount=odd), f"odd-{odd}")
        assert (resp.status_code, resp.get_json()["details"]["field"]) == (422, "form.lines[0].amount")
    resp = anonymous.post(URL, data="[" * 1000 + "]" * 1000, content_type="application/json")
    assert (resp.status_code, resp.get_json()["code"]) == (422, "validation_error")
    with state(app).db.unit_of_work(readonly=True) as s:
        assert s.scalars(select(ApprovalRequest)).all() == []
    assert deliver(anonymous, form(oa), "big").status_code == 200  # nothing remembered either


def test_unknown_connectors_are_404(anonymous: FlaskClient, oa: Org):
    resp = anonymous.post("/api/v1/oa/nobody/events", data=b"{}")
    assert (resp.status_code, resp.get_json()["code"]) == (404, "unknown_connector")


def test_a_purge_keeps_every_event_id_a_replay_could_still_use(anonymous: FlaskClient, app: Flask, oa: Org):
    from datetime import timedelta

    from connectors import registry
    from connectors.base import MemorySeen, SignatureError
    from yinfin_flow.db.types import utcnow
    from yinfin_flow.worker import retention
    from yinfin_flow.worker.config import DeliverySettings

    ts = int(time.time()) + 290  # the OA's clock runs almost 5 minutes ahead: the longest life
    assert deliver(anonymous, form(oa), "e1", ts=ts).status_code == 200
    db = state(app).db
    shortest = DeliverySettings.from_env({"YINFIN_INBOUND_SEEN_RETENTION": "600"})
    assert retention.purge(db, shortest).inbound_seen == 0
    replay = deliver(anonymous, form(oa), "e1", ts=ts)
    assert (replay.status_code, replay.get_json()) == (200, {"ok": True})
    assert redeliveries(anonymous)["redeliveries"] == 1
    # the id goes only once the same delivery's timestamp is refused as stale anyway
    gone_at = utcnow() + timedelta(minutes=10, seconds=1)
    assert retention.purge(db, shortest, now=gone_at).inbound_seen == 1
    body = json.dumps(form(oa)).encode()
    headers = {"X-Yinfin-Timestamp": str(ts), "X-Yinfin-Event-Id": "e1",
               "X-Yinfin-Signature": sign(SECRET, str(ts), body)}
    with pytest.raises(SignatureError, match="stale"):
        registry.get("weaver").verify_and_parse(headers, {}, body, now=gone_at, seen=MemorySeen())


def test_two_copies_of_one_event_at_once_are_applied_once(pg_db, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    """A vendor's retry can arrive while the first delivery is still being applied: the
    second waits on the event id's key and is then answered as a re-delivery (it was a
    401 when it lost the race)."""
    import threading

    from .conftest import make_app

    monkeypatch.setenv("YINFIN_WEAVER_SECRET", SECRET)
    (tmp_path / "weaver.yaml").write_text(MAPPING, encoding="utf-8")
    app = make_app(pg_db)
    app.config["YINFIN_OA_MAPPING_DIR"] = str(tmp_path)
    org = world(pg_db)
    answers: list[tuple[int, object]] = []
    start = threading.Barrier(4)

    def send() -> None:
        client = app.test_client()
        start.wait()
        resp = deliver(client, form(org), "twin")
        answers.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [(200, {"ok": True})] * 4
    with pg_db.unit_of_work(readonly=True) as s:
        assert len(s.scalars(select(ApprovalRequest)).all()) == 1
    assert redeliveries(app.test_client())["redeliveries"] == 3
