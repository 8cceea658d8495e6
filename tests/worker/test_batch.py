"""A pass's batch look-up (``prepare_vouchers``): fewer calls, the same outcomes."""

from __future__ import annotations

from typing import Any

from connectors.base import Voucher
from yinfin_flow.worker import dispatcher
from yinfin_flow.worker.config import DeliverySettings

from .conftest import RETRY, FakeERP
from .helpers import books, post, rows


class BatchERP(FakeERP):
    """A fake ERP with a batch look-up step, as ERPNext has."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[list[str]] = []
        self.prepare_failures: list[Exception] = []
        self.got: dict[str, Any] = {}

    def prepare_vouchers(self, items: list[tuple[Voucher, str]]) -> dict[str, Any]:
        if self.prepare_failures:
            raise self.prepare_failures.pop(0)
        keys = [k for _, k in items]
        self.prepared.append(keys)
        return {"keys": keys, "known": {k for k in keys if k in self.vouchers}}

    def post_voucher(self, voucher: Voucher, idempotency_key: str, prepared: Any = None) -> str:
        self.got[idempotency_key] = prepared
        return super().post_voucher(voucher, idempotency_key)


def test_a_pass_prepares_each_targets_vouchers_once(db, erp_env, settings) -> None:
    erp = BatchERP()
    books(db)
    post(db, 4)
    keys = [m.idempotency_key for m in rows(db)]
    r = dispatcher.run_once(db, settings, lookup=lambda name: erp)
    assert len(r.delivered) == 4 and erp.prepared == [keys]
    assert all(erp.got[k] == {"keys": keys, "known": set()} for k in keys)
    assert {m.status for m in rows(db)} == {"delivered"}
    assert sorted(erp.order) == sorted(keys)


def test_a_failed_batch_look_up_leaves_each_message_to_look_up_on_its_own(db, erp_env,
                                                                       settings) -> None:
    erp = BatchERP()
    erp.prepare_failures.append(RETRY)
    books(db)
    post(db, 3)
    r = dispatcher.run_once(db, settings, lookup=lambda name: erp)
    assert len(r.delivered) == 3 and erp.prepared == []
    assert set(erp.got.values()) == {None}  # posted the one-by-one way


def test_a_single_message_is_not_prepared(db, erp_env) -> None:
    erp = BatchERP()
    books(db)
    post(db, 1)
    r = dispatcher.run_once(db, DeliverySettings(erp=("fake",)), lookup=lambda name: erp)
    assert len(r.delivered) == 1 and erp.prepared == [] and set(erp.got.values()) == {None}


def test_a_connector_is_looked_up_once_per_pass(db, erp_env, settings) -> None:
    erp, asked = BatchERP(), []

    def lookup(name: str) -> BatchERP:
        asked.append(name)
        return erp

    books(db)
    post(db, 5)
    dispatcher.run_once(db, settings, lookup=lookup)
    assert asked == ["fake"]
