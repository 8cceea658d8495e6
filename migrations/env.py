"""Alembic environment: the URL comes from ``-x url=…``, the config, or YINFIN_DATABASE_URL.

yinfin-flow's history is kept in ``yinfin_alembic_version`` and, on PostgreSQL, every
object in its own schema (``-x schema=…``, the config, or YINFIN_DATABASE_SCHEMA):
see ``yinfin_flow/db/layout.py``.
"""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory

from yinfin_flow.config import Settings, database_schema
from yinfin_flow.db import layout
from yinfin_flow.db.engine import make_engine
from yinfin_flow.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    return x.get("url") or config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def _schema() -> str:
    x = context.get_x_argument(as_dictionary=True)
    name = x.get("schema") or config.attributes.get("schema")
    return database_schema({"YINFIN_DATABASE_SCHEMA": name} if name else None)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, version_table=layout.VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), schema=_schema())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    schema = _schema()
    script = ScriptDirectory.from_config(config)
    known = {s.revision for s in script.walk_revisions()}

    def ancestors(heads: tuple[str, ...]) -> set[str]:
        return {s.revision for s in script.iterate_revisions(heads, "base")}

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=layout.VERSION_TABLE,
        version_table_schema=layout.version_table_schema(connection, schema),
    )
    with context.begin_transaction():
        layout.prepare(connection, schema, known.__contains__, ancestors)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
