"""The host's Alembic environment: DATABASE_URL, the host's models, the default schema.

Autogenerate compares only the default schema (``include_schemas`` is off), so
yinfin-flow's tables, in their own schema, never show up as tables to drop.
"""

from __future__ import annotations

import os

from alembic import context
from hostapp.models import Base
from sqlalchemy import create_engine

URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/hostapp")


def run() -> None:
    engine = create_engine(URL)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
