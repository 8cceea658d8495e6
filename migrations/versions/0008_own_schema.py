"""own schema: yinfin-flow's tables leave public for a schema of their own

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 22:30:00

A database made before this layout has its tables (and the append-only trigger
function) in ``public``. On PostgreSQL this moves them into yinfin-flow's schema (the
first one on the run's ``search_path``: ``YINFIN_DATABASE_SCHEMA``, default ``yinfin``,
see ``yinfin_flow/db/layout.py``). ``ALTER … SET SCHEMA`` keeps every row, index,
constraint, trigger, owned sequence and grant; nothing is copied. A database made in
the schema from the start has nothing in ``public`` to move (and a host's own table
that happens to share a name is never taken: yinfin-flow's own is already in the
schema then). Tables made by later migrations are created in the schema directly.

SQLite keeps yinfin-flow in a file of its own: nothing moves.

Downgrading leaves the tables in the schema: moving them back into ``public`` could
collide with the host's tables, and the older migrations, run below this one, find
them in the schema as well.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from yinfin_flow.db.layout import moved_tables, quoted

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Every table migrations 0001-0007 make: what an installation of the old layout has.
TABLES = (
    "budget_movements", "companies", "exchange_rates", "budget_items", "budget_periods",
    "cost_centres", "projects", "budget_lines", "budget_alerts", "budget_balances",
    "control_rules", "reservations", "budget_entries",
    "approval_requests", "workflow_definitions", "approval_tasks", "request_cc",
    "request_history", "engine_timers",
    "accounting_periods", "accounts", "ledger_settings", "partners", "journal_entries",
    "journal_syncs", "journal_lines",
    "outbox_messages", "sync_watermarks", "job_leases",
    "users", "user_roles", "delegations",
    "api_tokens", "audit_log", "audit_head", "idempotency_keys", "inbound_seen", "oa_instances",
    "rule_changes",
)
FUNCTIONS = ("yinfin_append_only()",)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    for table in moved_tables(bind, TABLES, schema):
        op.execute(f"ALTER TABLE public.{quoted(table)} SET SCHEMA {quoted(schema)}")
    for function in FUNCTIONS:
        name = function.split("(")[0]
        here = bind.execute(sa.text(
            "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname = :f AND n.nspname IN ('public', :s)"), {"f": name, "s": schema}
        ).scalars().all()
        if "public" in here and schema not in here:
            op.execute(f"ALTER FUNCTION public.{function} SET SCHEMA {quoted(schema)}")


def downgrade() -> None:
    pass
