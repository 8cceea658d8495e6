"""The shared HTTP client: Retry-After in whole seconds, the environment read per origin."""

from __future__ import annotations

import pytest

from connectors.http import Http, retry_after

from .stubs.server import StubServer


def test_retry_after_is_whole_seconds_never_sooner_than_asked() -> None:
    assert retry_after("7") == 7 and isinstance(retry_after("7"), int)
    assert retry_after(" 1.5 ") == 2 and retry_after("0") == 0
    assert retry_after(None) is None and retry_after("") is None
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None  # a date: not honoured
    assert retry_after("-3") is None and retry_after("nan") is None


def _ok(_req):
    return 200, {"ok": True}


@pytest.fixture
def two_servers(start_stub):
    proxy, target = StubServer(), StubServer()
    proxy.routes[("GET", "/x")] = target.routes[("GET", "/x")] = _ok
    return start_stub(proxy), start_stub(target)


def test_proxy_variables_are_honoured_per_origin(two_servers, monkeypatch) -> None:
    proxy, target = two_servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    http = Http("t", target.url)
    for _ in range(3):
        assert http.request("GET", "/x").status_code == 200
    assert (len(proxy.requests), len(target.requests)) == (3, 0)  # all through the proxy
    # NO_PROXY names the target (host:port): a client made now goes straight there, and
    # the same client's calls to another origin still go through the proxy
    port = target.url.rsplit(":", 1)[1]
    monkeypatch.setenv("NO_PROXY", f"localhost:{port}")
    direct = Http("t", f"http://localhost:{port}")
    for _ in range(2):
        assert direct.request("GET", "/x").status_code == 200
        # the same server under another origin (its IP) is not exempt
        assert direct.request("GET", f"{target.url}/x").status_code == 200
    assert (len(proxy.requests), len(target.requests)) == (5, 2)
