"""``yinfin-flow db …``: schema migrations (Alembic is the only way the schema is made)."""

from __future__ import annotations

import click

from yinfin_flow.config import Settings
from yinfin_flow.db import migrate


@click.group("db")
def command() -> None:
    """Database schema."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Migrate the database in YINFIN_DATABASE_URL up to REVISION."""
    settings = Settings.from_env()
    migrate.upgrade(settings.database_url, revision, schema=settings.database_schema)
    click.echo(f"database at {revision}: {settings.database_url}")


@command.command("downgrade")
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="Downgrade drops tables and data. Continue?")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (default: empty)."""
    settings = Settings.from_env()
    migrate.downgrade(settings.database_url, revision, schema=settings.database_schema)
    click.echo(f"database at {revision}")
