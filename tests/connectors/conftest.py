"""Stub servers start per test (cheap: a thread and an ephemeral port) and always stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from .stubs.server import StubServer

#: A fixed "now" for inbound tests; deliveries are stamped relative to it.
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def start_stub() -> Iterator[Callable[[StubServer], StubServer]]:
    started: list[StubServer] = []

    def start(stub: StubServer) -> StubServer:
        started.append(stub.start())
        return stub

    yield start
    for stub in started:
        stub.stop()
