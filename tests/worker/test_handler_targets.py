"""The event handlers' targets follow the environment at every event (parsed once per
value, never stale), and only the targets: a bad setting of the worker's own does not
fail the actions that queue messages (the worker checks those where it reads them)."""

from __future__ import annotations

from ..integration.test_engine_core import act, submit
from ..integration.test_engine_support import pending, world
from .helpers import rows


def test_targets_are_read_at_each_event(db, monkeypatch):
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    org = world(db)
    rid = submit(db, org)
    assert rows(db) == []  # no target: nothing queued
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", "fake")
    [(task, _, who)] = pending(db, rid)
    act(db, task, who)
    queued = len(rows(db))
    assert queued and {m.target for m in rows(db)} == {"fake"}
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", " Fake , other")  # changed: parsed again
    other = submit(db, org)
    assert {m.target for m in rows(db)[queued:]} == {"fake", "other"}
    monkeypatch.delenv("YINFIN_OA_CONNECTOR")
    before = len(rows(db))
    [(task, _, who)] = pending(db, other)
    act(db, task, who)
    assert len(rows(db)) == before  # unset again: nothing more


def test_a_bad_worker_setting_does_not_fail_an_action(db, monkeypatch):
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", "fake")
    monkeypatch.setenv("YINFIN_OUTBOX_BATCH", "lots")
    org = world(db)
    rid = submit(db, org)
    assert {m.document_key for m in rows(db)} == {f"request:{rid}"}
