"""Run Alembic from code (the CLI, ``make run`` and the tests all come through here).

The migrations ship inside the package (``yinfin_flow/migrations`` in a wheel; the
repository's top-level ``migrations/`` in a checkout): no ``alembic.ini`` is needed.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from yinfin_flow.config import database_schema, shipped
from yinfin_flow.db import layout
from yinfin_flow.db.engine import make_engine


def alembic_config(url: str, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(shipped("migrations")))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["schema"] = schema or database_schema()
    return cfg


def upgrade(url: str, revision: str = "head", *, schema: str | None = None) -> None:
    command.upgrade(alembic_config(url, schema), revision)


def downgrade(url: str, revision: str = "base", *, schema: str | None = None) -> None:
    """Down to ``revision``; at ``base`` the history table (and on PostgreSQL the emptied
    schema) goes too, so only what is not yinfin-flow's is left."""
    schema = schema or database_schema()
    command.downgrade(alembic_config(url, schema), revision)
    if revision == "base":
        engine = make_engine(url, schema=schema)
        try:
            layout.drop_history(engine, schema)
        finally:
            engine.dispose()
