"""Wiring for the ledger: post on ``posting.requested``, and add the ledger's verify checks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.budget import verify as budget_verify

from . import verify
from .posting import post


def on_posting_requested(session: Session, event: events.Event) -> None:
    """Post the event's document in the publisher's transaction (idempotent per ``key``).

    Any error propagates, so the engine's action rolls back with it: a request is
    never completed without its voucher.
    """
    post(session, **event.payload)


def register_checks() -> None:
    """Add the ledger's checks to ``verify`` (once)."""
    for check in verify.CHECKS:
        if check not in budget_verify.CHECKS:
            budget_verify.CHECKS.append(check)


def register() -> None:
    events.subscribe("posting.requested", on_posting_requested)
    register_checks()
