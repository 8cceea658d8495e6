"""Wiring for attachments: a request that ends rejected, withdrawn or cancelled releases
its invoices, in the transaction that ends it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yinfin_flow import events

from .service import RELEASING_STATES, release_invoices


def on_status_changed(session: Session, event: events.Event) -> None:
    if event.payload.get("new_state") in RELEASING_STATES:
        release_invoices(session, int(event.payload["request_id"]))


def register() -> None:
    events.subscribe("request.status_changed", on_status_changed)
