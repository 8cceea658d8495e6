"""An ERPNext stub that is slow or unreliable on purpose, and counts what it stored.

:class:`FaultyERP` wraps the stub's list (GET) and insert (POST) routes: each insert
can take ``insert_delay`` seconds, and a seeded random share of the calls fails —
``fail`` answers 500 (half of the failed inserts store the voucher first: the answer
is lost, not the work), ``throttle`` answers 429 with ``Retry-After``. Inserts are
serialised, as the real ERP's naming series is.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

from connectors.erpnext import ERPNextConnector

from ..connectors.stubs.erpnext import ERPNextStub


def erp_keys(stub: ERPNextStub) -> Counter[str]:
    """Key -> how many Journal Entries the stub stored with it."""
    return Counter(d["user_remark"].rsplit("[yinfin:", 1)[1].rstrip("]")
                   for d in stub.docs["Journal Entry"])


def twice(stub: ERPNextStub) -> dict[str, int]:
    """Keys the stub stored more than once (must stay empty)."""
    return {k: n for k, n in erp_keys(stub).items() if n > 1}


def connector(stub: ERPNextStub, timeout: tuple[float, float] = (0.2, 0.4)) -> ERPNextConnector:
    """The real ERPNext connector on the stub (with the harness chart's company)."""
    return ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd",
                            timeout=timeout)


class FaultyERP:
    def __init__(self, stub: ERPNextStub, *, insert_delay: float = 0.0, fail: float = 0.0,
                 throttle: float = 0.0, retry_after: str = "1", seed: int = 13) -> None:
        self.stub, self.insert_delay, self.fail, self.throttle = stub, insert_delay, fail, throttle
        self.retry_after, self.rng, self.lock = retry_after, random.Random(seed), threading.Lock()
        self.insert_lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.get, self.insert = stub.get, stub.insert
        stub.routes[("GET", "/api/resource/*")] = self.on_get
        stub.routes[("POST", "/api/resource/*")] = self.on_insert

    def _roll(self) -> float:
        with self.lock:
            return self.rng.random()

    def _throttled(self, what: str) -> tuple:
        self.faults[f"{what} 429"] += 1
        return 429, "Too Many Requests", {"Retry-After": self.retry_after}

    def on_get(self, req: Any) -> tuple:
        x = self._roll()
        if x < self.fail:
            self.faults["get 500"] += 1
            return 500, "Internal Server Error"
        if x < self.fail + self.throttle:
            return self._throttled("get")
        return self.get(req)

    def on_insert(self, req: Any) -> tuple:
        if self.insert_delay:
            time.sleep(self.insert_delay)
        x = self._roll()
        if x < self.fail / 2:
            self.faults["insert 500"] += 1
            return 500, "Internal Server Error"
        if x < self.fail + self.throttle and x >= self.fail:
            return self._throttled("insert")
        with self.insert_lock:
            out = self.insert(req)
        if x < self.fail and out[0] == 200:
            self.faults["insert 500 after storing"] += 1
            return 500, "Internal Server Error"
        return out
