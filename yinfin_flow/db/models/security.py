"""Security tables: API tokens, the hash-chained audit log, idempotency records, seen
inbound event ids. Owned by the security area (:mod:`yinfin_flow.security`).

``audit_log`` is append-only in the database (triggers in migration 0006, like
``budget_entries``); ``audit_head`` has one row per hash chain naming its last id and
hash, locked by an append to that chain (:mod:`yinfin_flow.security.audit`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base
from .budget import BigId


class ApiToken(Base):
    """A bearer token for one directory user. Only the sha256 of the token is stored;
    ``prefix`` (its first characters) lets people tell their tokens apart and lets
    rate limiting count failures per token without knowing the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """One state-changing API call: who, what, when, from where, and the result.

    ``hash`` = sha256(``prev_hash`` + canonical JSON of the row's content); the first
    row of a chain has 64 zeros as ``prev_hash``. The id says the chain (chain c owns
    ids (c-1)*2^40+1 …). Editing, deleting or inserting a row breaks its chain, which
    ``yinfin-flow verify`` reports.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor", "actor", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    endpoint: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[int] = mapped_column(Integer)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    idempotency_key: Mapped[str | None] = mapped_column(String(160))
    detail: Mapped[str | None] = mapped_column(Text)  # error code, replay marker…
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """A chain's head (row c for chain c; row 1, the first chain, from the migration):
    locked by an append to that chain until it commits."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class IdempotencyRecord(Base):
    """The first answer to a mutating call made with an ``Idempotency-Key``.

    ``status`` is NULL while the first call is still running (a concurrent duplicate
    gets 409). Kept at least 24 hours (:data:`yinfin_flow.security.idempotency.RETENTION`).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"), Index("ix_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(160))
    method_path: Mapped[str] = mapped_column(String(520))
    body_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundSeen(Base):
    """An OA event id already applied (``<connector>:<event id>``): a re-delivery of it is
    answered as a success and counted in ``duplicates``, never applied again."""

    __tablename__ = "inbound_seen"

    id: Mapped[str] = mapped_column(String(240), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_duplicate_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAInstance(Base):
    """Which of our requests an OA instance became (inbound form submissions)."""

    __tablename__ = "oa_instances"
    __table_args__ = (UniqueConstraint("connector", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundIgnored(Base):
    """An OA event type a connector does not read, as delivered: how many, when last,
    the last event's id. Answered as the vendor expects all the same; counted here so
    health shows a subscription nobody reads (:mod:`yinfin_flow.api.oa_ignored`)."""

    __tablename__ = "inbound_ignored"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(120), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
