"""Wiring for the ledger: post on ``posting.requested``, reverse on ``reversal.requested``.

The ledger's verify checks are listed in :mod:`yinfin_flow.verify`, not registered here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow import events

from .posting import post
from .reversal import reverse_document


def on_posting_requested(session: Session, event: events.Event) -> None:
    """Post the event's document in the publisher's transaction (idempotent per ``key``).

    Any error propagates, so the engine's action rolls back with it: a request is
    never completed without its voucher.
    """
    post(session, **event.payload)


def on_reversal_requested(session: Session, event: events.Event) -> None:
    """Reverse every voucher of a document (a completed request being reversed), budget actual included.

    Payload: ``key, document {type, id}, actor, reason`` and optionally ``posting_date``.
    """
    p = event.payload
    doc = p["document"]
    reverse_document(session, str(doc["type"]), str(doc["id"]), key=p["key"], actor=p["actor"],
                     reason=p["reason"], posting_date=p.get("posting_date"))


def register() -> None:
    events.subscribe("posting.requested", on_posting_requested)
    events.subscribe("reversal.requested", on_reversal_requested)
