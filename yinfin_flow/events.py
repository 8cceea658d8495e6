"""Domain events, handled inside the transaction that raised them.

The engine publishes what happened (``request.approved``, ``task.urged``…); other
areas subscribe (the ledger posts a journal entry, the outbox queues a message to
the OA). Handlers run synchronously in the publisher's session, so everything an
event causes commits or rolls back with it.

Subscriptions are wired in one place, :mod:`yinfin_flow.bootstrap`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Session, Event], None]

_handlers: dict[str, list[Handler]] = defaultdict(list)


def subscribe(name: str, handler: Handler) -> None:
    """Call ``handler(session, event)`` for every ``name`` event (``*`` for all)."""
    if handler not in _handlers[name]:
        _handlers[name].append(handler)


def publish(session: Session, name: str, **payload: Any) -> Event:
    """Run every subscriber of ``name`` now, in ``session``'s transaction."""
    from yinfin_flow import bootstrap

    bootstrap.wire()
    event = Event(name, payload)
    for handler in [*_handlers[name], *_handlers["*"]]:
        handler(session, event)
    return event


def clear() -> None:
    """Forget every subscription (tests that wire their own)."""
    _handlers.clear()
