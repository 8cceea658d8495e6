"""``/api/v1/tokens``: API tokens. Everyone lists, creates and revokes their own;
admins may issue and revoke anyone's. The token itself is in the create answer
only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.security import tokens
from yinfin_flow.security.policy import ADMIN

from ..extension import state
from .blueprint import Blueprint
from .errors import register_blueprint_handlers
from .fields import Code, Text
from .identity import require_actor

blp = Blueprint("tokens", __name__, url_prefix="/tokens", description="API tokens.")
register_blueprint_handlers(blp)
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}


class TokenSchema(Schema):
    id = fields.Integer(required=True)
    user_id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    created_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema), required=True)


class TokenInSchema(Schema):
    name = Text(load_default="api", min_length=1, max_length=100)
    user = Code(load_default=None, metadata={"description": "admins only: issue for this user"})
    expires_in_days = fields.Integer(load_default=90, allow_none=True,
                                     validate=validate.Range(min=1, max=3650),
                                     metadata={"description": "null: never expires"})


class IssuedSchema(TokenSchema):
    token = fields.String(required=True, metadata={"description": "shown once; store it now"})


@blp.get("")
@blp.response(200, TokenListSchema)
@blp.doc(**AUTH)
def list_tokens() -> dict[str, Any]:
    """Your tokens (admins: everyone's), without the secrets."""
    ident = require_actor()
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return {"items": tokens.tokens_of(s, None if ADMIN in ident.roles else ident.id)}


@blp.post("")
@blp.arguments(TokenInSchema)
@blp.response(201, IssuedSchema)
@blp.doc(**AUTH)
def create_token(body: dict[str, Any]) -> dict[str, Any]:
    """Issue a token for yourself (admins: for ``user``)."""
    ident = require_actor()
    user = body["user"] or ident.id
    if user != ident.id and ADMIN not in ident.roles:
        from yinfin_flow.engine.errors import Forbidden

        raise Forbidden("only admins issue tokens for someone else", field="user")
    days = body["expires_in_days"]
    with state(current_app).db.unit_of_work() as s:
        issued = tokens.create_token(s, user, name=body["name"], created_by=ident.id,
                                     expires_at=utcnow() + timedelta(days=days) if days else None)
        row = s.get(tokens.ApiToken, issued.id)
        return {**{k: getattr(row, k) for k in TokenSchema().fields}, "token": issued.token}


@blp.delete("/<int(min=1, max=2147483647):token_id>")
@blp.response(200, TokenSchema)
@blp.doc(**AUTH)
def revoke_token(token_id: int) -> Any:
    """Revoke one of your tokens (admins: anyone's). It stops working at once."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        row = s.get(tokens.ApiToken, token_id)
        if row is None or (row.user_id != ident.id and ADMIN not in ident.roles):
            raise NotFound(f"no token {token_id} of yours", field="token_id")
        return tokens.revoke(s, token_id)
