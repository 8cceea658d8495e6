"""Organisation directory (users, roles, delegations). Owned by the approvers area.

Who manages whom: each user has a direct ``manager_id`` (the manager chain the
``manager`` approver rule walks). A department's head is ``cost_centres.manager``
(the ``department_head`` rule). The two are kept apart on purpose: a team lead can be
someone's line manager without heading a cost centre, and HR and finance each own one.

Users are never deleted (requests, tasks and audit rows name them): they are
deactivated, and the resolver skips inactive users.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base


class User(Base):
    """A person who submits or approves: ``id`` is the login people type (``amy``)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    # The user's department: a cost centre of their company (None: not in any department).
    cost_centre_id: Mapped[int | None] = mapped_column(ForeignKey("cost_centres.id"), index=True)
    manager_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The same person in each OA system, for inbound events and outbound task pushes.
    dingtalk_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    feishu_open_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    wecom_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRole(Base):
    """A role a user holds in a company, company-wide or for one department.

    ``scope_key`` is ``company_id|cost_centre_id or -``: a NULL-safe uniqueness key
    (NULLs never collide in a UNIQUE constraint on PostgreSQL or SQLite).
    """

    __tablename__ = "user_roles"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "scope_key"),
        Index("ix_user_roles_role_company", "role", "company_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    cost_centre_id: Mapped[int | None] = mapped_column(ForeignKey("cost_centres.id"))
    scope_key: Mapped[str] = mapped_column(String(40))
    granted_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delegation(Base):
    """``user_id`` hands their approvals to ``deputy_id`` from ``start_date`` to ``end_date``.

    Both dates are inclusive; ``workflow`` None covers every workflow. Revoking sets
    ``revoked_at`` (the row stays for the audit trail).
    """

    __tablename__ = "delegations"
    __table_args__ = (
        CheckConstraint("start_date <= end_date", name="dates"),
        CheckConstraint("user_id <> deputy_id", name="not_self"),
        Index("ix_delegations_user_dates", "user_id", "start_date", "end_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    deputy_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    workflow: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
