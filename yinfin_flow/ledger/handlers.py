"""Wiring for the ledger: post on ``posting.requested``.

The ledger's verify checks are listed in :mod:`yinfin_flow.verify`, not registered here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow import events

from .posting import post


def on_posting_requested(session: Session, event: events.Event) -> None:
    """Post the event's document in the publisher's transaction (idempotent per ``key``).

    Any error propagates, so the engine's action rolls back with it: a request is
    never completed without its voucher.
    """
    post(session, **event.payload)


def register() -> None:
    events.subscribe("posting.requested", on_posting_requested)
