"""``yinfin-flow demo load``: the demo organisation ``make run`` starts with.

Every loader in :data:`yinfin_flow.demo.LOADERS` runs, in order, in ONE
transaction: the demo is there completely or not at all.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from yinfin_flow.db.models import Company
from yinfin_flow.demo import loaders

from .common import handle_errors, unit_of_work
from .output import progress


@click.group("demo")
def command() -> None:
    """Demo data."""


@command.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when any company exists already.")
@handle_errors
def load(if_empty: bool) -> None:
    """Load the demo organisation (company ACME, departments, budgets, rules, rates)."""
    with unit_of_work() as session:
        if if_empty and session.scalar(select(Company.id).limit(1)) is not None:
            click.echo("demo: the database already has a company; nothing loaded")
            return
        done = []
        steps = list(loaders())
        for name, loader in progress(steps, "loading the demo", length=len(steps)):
            loader(session)
            done.append(name)
    click.echo(f"demo loaded: {', '.join(done)}")
