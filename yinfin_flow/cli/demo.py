"""``yinfin-flow demo load``: the demo organisation ``make run`` starts with.

Every loader in :data:`yinfin_flow.demo.LOADERS` runs, in order, in ONE
transaction: the demo is there completely or not at all.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import Company
from yinfin_flow.demo import delivery, loaders

from .common import handle_errors, settings, unit_of_work
from .output import progress


@click.group("demo")
def command() -> None:
    """Demo data."""


@command.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when any company exists already.")
@click.option("--connectors/--no-connectors", default=True, show_default=True,
              help="Write the demo's file-drop connectors to instance/yinfin.env (when none is "
                   "configured) and deliver to them.")
@handle_errors
def load(if_empty: bool, connectors: bool) -> None:
    """Load the demo organisation (company ACME, people, budgets, rules, rates, requests,
    books), with file-drop connectors in instance/yinfin.env when none is configured."""
    with unit_of_work(readonly=True) as session:
        if if_empty and session.scalar(select(Company.id).limit(1)) is not None:
            click.echo("demo: the database already has a company; nothing loaded")
            return
    written = delivery.configure() if connectors else None
    with unit_of_work() as session:
        done = []
        steps = list(loaders())
        for name, loader in progress(steps, "loading the demo", length=len(steps)):
            loader(session)
            done.append(name)
    click.echo(f"demo loaded: {', '.join(done)}")
    if written:
        click.echo(f"demo connectors written to {written}")
    if not connectors:
        return
    s = settings()
    db = Database(s.database_url, schema=s.database_schema)
    try:
        sent, dead = delivery.deliver(db)
    finally:
        db.dispose()
    if sent or dead:
        click.echo(f"delivered {sent} message(s); {dead} dead letter(s) to replay")
