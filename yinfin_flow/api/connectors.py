"""``/api/v1/connectors``: which connectors are configured, and the dead-letter queue.

Status comes from ``connectors.registry`` (names whose ``YINFIN_*`` settings are all
present; secrets are never shown). Dead letters and replays belong to the outbox,
which is not built yet. The seam: a *dead-letter source* registered on the app with
:func:`set_dead_letter_source` (an object with ``list(session, page, page_size) ->
(items, total)`` and ``replay(session, letter_id, actor) -> dict``). Until one is
registered, the list shows the vouchers whose ERP sync failed (the one kind of
failed delivery that exists today, from ``journal_syncs``) and replay answers 501
``outbox_not_available`` rather than pretending to redeliver anything.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from flask import Flask, current_app
from marshmallow import Schema, fields
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models.ledger import JournalSync

from ..extension import state
from .blueprint import Blueprint
from .engine_schemas import PageQuery, PaginationSchema
from .errors import error_response, register_blueprint_handlers
from .identity import require_actor

blp = Blueprint("connectors", __name__, url_prefix="/connectors",
                description="Connector status and the dead-letter queue (admins).")
register_blueprint_handlers(blp)
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}
SOURCE_KEY = "yinfin_flow.dead_letters"


class DeadLetterSource(Protocol):
    def list(self, session: Session, page: int, page_size: int) -> tuple[list[dict[str, Any]], int]: ...

    def replay(self, session: Session, letter_id: int, actor: str) -> dict[str, Any]: ...


def set_dead_letter_source(app: Flask, source: DeadLetterSource) -> None:
    """Where the outbox plugs in its dead letters and replay."""
    app.extensions[SOURCE_KEY] = source


class ConnectorSchema(Schema):
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"enum": ["oa", "erp"]})
    configured = fields.Boolean(required=True)


class ConnectorListSchema(Schema):
    items = fields.List(fields.Nested(ConnectorSchema), required=True)


class DeadLetterSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    target = fields.String(required=True)
    status = fields.String(required=True)
    message = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class DeadLetterPageSchema(Schema):
    items = fields.List(fields.Nested(DeadLetterSchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)
    replay_available = fields.Boolean(required=True)


class ReplaySchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)


def _failed_syncs(session: Session, page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
    stmt = select(JournalSync).where(JournalSync.status == "failed")
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(JournalSync.entry_id).offset((page - 1) * page_size).limit(page_size))
    return [{"id": r.entry_id, "kind": "voucher", "target": r.target, "status": r.status,
             "message": r.message, "updated_at": r.updated_at.isoformat() if r.updated_at else None}
            for r in rows], total


@blp.get("")
@blp.response(200, ConnectorListSchema)
@blp.doc(**AUTH)
def list_connectors() -> dict[str, Any]:
    """Known connectors and whether their settings are complete (no secrets shown)."""
    from connectors import registry

    configured = set(registry.configured(os.environ))
    names = sorted(set(registry._BUILDERS) | configured)  # noqa: SLF001 - the registry's table
    return {"items": [{"name": n, "kind": registry.kind(n), "configured": n in configured} for n in names]}


@blp.get("/dead-letters")
@blp.arguments(PageQuery, location="query", as_kwargs=True)
@blp.response(200, DeadLetterPageSchema)
@blp.doc(**AUTH)
def list_dead_letters(page: int, page_size: int) -> dict[str, Any]:
    """Deliveries that gave up; ``replay_available`` says whether the outbox is there."""
    source = current_app.extensions.get(SOURCE_KEY)
    with state(current_app).db.unit_of_work(readonly=True) as s:
        items, total = source.list(s, page, page_size) if source else _failed_syncs(s, page, page_size)
    return {"items": items, "replay_available": source is not None,
            "pagination": {"page": page, "page_size": page_size, "total": total,
                           "pages": (total + page_size - 1) // page_size}}


@blp.post("/dead-letters/<int(min=1, max=2147483647):letter_id>/replay")
@blp.response(200, ReplaySchema)
@blp.alt_response(501, description="no outbox is installed to redeliver")
@blp.doc(**AUTH)
def replay_dead_letter(letter_id: int) -> Any:
    """Queue a dead letter for delivery again (the outbox's job)."""
    ident = require_actor()
    source = current_app.extensions.get(SOURCE_KEY)
    if source is None:
        return error_response(501, "outbox_not_available",
                              "no outbox is installed; nothing can be redelivered yet",
                              {"letter_id": letter_id})
    with state(current_app).db.unit_of_work() as s:
        return source.replay(s, letter_id, ident.id)
