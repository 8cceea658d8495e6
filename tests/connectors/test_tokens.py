"""connectors.tokens.TokenCache: the OA connectors' one access-token cache."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.base import PermanentError, RetryableError
from connectors.tokens import TokenCache, TokenExpired


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Vendor:
    """Hands out tok1, tok2, …; can be told to fail the next fetch."""

    def __init__(self, lifetime: float = 7200) -> None:
        self.issued: list[str] = []
        self.lifetime = lifetime
        self.fail: Exception | None = None
        self.delay = 0.0

    def fetch(self) -> tuple[str, float]:
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            err, self.fail = self.fail, None
            raise err
        self.issued.append(f"tok{len(self.issued) + 1}")
        return self.issued[-1], self.lifetime


def test_kept_until_the_margin_before_expiry() -> None:
    clock, vendor = Clock(), Vendor()
    cache = TokenCache("t", vendor.fetch, margin=300, clock=clock)
    assert cache.get() == "tok1"
    clock.now += 7200 - 301
    assert cache.get() == "tok1"
    clock.now += 1  # 300 s before the vendor's expiry: renewed early
    assert cache.get() == "tok2" and len(vendor.issued) == 2


def test_a_short_lived_token_is_kept_half_its_life_not_zero() -> None:
    clock, vendor = Clock(), Vendor(lifetime=100)
    cache = TokenCache("t", vendor.fetch, margin=300, clock=clock)
    assert cache.get() == "tok1"
    clock.now += 49
    assert cache.get() == "tok1"
    clock.now += 1
    assert cache.get() == "tok2"


def test_renew_once_on_an_expired_answer() -> None:
    clock, vendor = Clock(), Vendor()
    cache = TokenCache("t", vendor.fetch, expired_codes={42001}, clock=clock)
    sent: list[str] = []

    def once(token: str) -> str:
        sent.append(token)
        if token == "tok1":
            cache.check(42001, "access_token expired")
        cache.check(0, "ok")  # other codes pass
        return "done"

    assert cache.call(once) == "done"
    assert sent == ["tok1", "tok2"] and cache.get() == "tok2"


def test_refused_twice_is_permanent_with_the_vendor_message() -> None:
    vendor = Vendor()
    cache = TokenCache("feishu", vendor.fetch, expired_codes={99991663}, clock=Clock())

    def once(token: str) -> str:
        cache.check(99991663, "Invalid access token for authorization.")
        return "never"

    with pytest.raises(PermanentError, match="Invalid access token") as err:
        cache.call(once)
    assert err.value.connector == "feishu" and len(vendor.issued) == 2  # one renewal only


def test_a_failed_fetch_caches_nothing() -> None:
    clock, vendor = Clock(), Vendor()
    cache = TokenCache("t", vendor.fetch, clock=clock)
    vendor.fail = RetryableError("HTTP 503")
    with pytest.raises(RetryableError):
        cache.get()
    assert cache.get() == "tok1"  # the next caller fetches again
    vendor.fail = PermanentError("app secret invalid")
    with pytest.raises(PermanentError):
        cache.renew("tok1")
    # the refused token is not kept either: the next call fetches anew
    assert cache.get() == "tok2" and vendor.issued == ["tok1", "tok2"]


def test_renew_takes_a_token_another_thread_already_renewed() -> None:
    vendor = Vendor()
    cache = TokenCache("t", vendor.fetch, clock=Clock())
    old = cache.get()
    assert cache.renew(old) == "tok2"
    assert cache.renew(old) == "tok2"  # a second caller refused with tok1: no third fetch
    assert vendor.issued == ["tok1", "tok2"]


def test_concurrent_callers_fetch_once() -> None:
    vendor = Vendor()
    vendor.delay = 0.05  # a slow token endpoint: every thread arrives while it is fetching
    cache = TokenCache("t", vendor.fetch)
    got: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        got.append(cache.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["tok1"] * 8 and vendor.issued == ["tok1"]

    got.clear()
    barrier = threading.Barrier(8)

    def renewer() -> None:
        barrier.wait()
        got.append(cache.renew("tok1"))

    threads = [threading.Thread(target=renewer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["tok2"] * 8 and vendor.issued == ["tok1", "tok2"]


def test_token_expired_is_not_a_connector_error() -> None:
    # it never leaves TokenCache.call: callers see PermanentError at worst
    assert not issubclass(TokenExpired, PermanentError)
