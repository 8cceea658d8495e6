"""``yinfin-flow token …``: API tokens for directory users (create prints it once)."""

from __future__ import annotations

from datetime import timedelta

import click

from yinfin_flow.cli.common import actor_option, directory_actor, handle_errors, unit_of_work
from yinfin_flow.cli.output import Col, emit, format_option
from yinfin_flow.db.types import utcnow
from yinfin_flow.security import tokens


@click.group("token")
def command() -> None:
    """API tokens (Authorization: Bearer …), stored as hashes."""


@command.command("create")
@click.argument("user")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
@click.option("--expires", "days", type=click.IntRange(0, 3650), default=90, show_default=True,
              help="Days until it expires (0: never).")
@actor_option
@handle_errors
def create(user: str, name: str, days: int, actor: str) -> None:
    """Issue a token for USER and print it; it cannot be shown again."""
    with unit_of_work() as s:
        actor = directory_actor(s, actor)
        issued = tokens.create_token(s, user, name=name, created_by=actor,
                                     expires_at=utcnow() + timedelta(days=days) if days else None)
    click.echo(issued.token)
    expiry = issued.expires_at.date().isoformat() if issued.expires_at else "never"
    click.echo(f"token {issued.id} ({issued.prefix}…) for {user}, expires {expiry}; "
               "store it now, it is not kept", err=True)


@command.command("list")
@click.option("--user", default=None, help="Only this user's tokens.")
@format_option
@handle_errors
def list_(user: str | None, fmt: str) -> None:
    """Tokens (id, user, name, prefix, expiry, revoked), never the secrets."""
    with unit_of_work(readonly=True) as s:
        rows = [{"id": t.id, "user": t.user_id, "name": t.name, "prefix": t.prefix + "…",
                 "expires": t.expires_at, "revoked": t.revoked_at} for t in tokens.tokens_of(s, user)]
    emit(rows, [Col("id", right=True), Col("user"), Col("name"), Col("prefix"),
                Col("expires", shown=lambda v, r: v.isoformat() if v else "never"), Col("revoked")], fmt)


@command.command("revoke")
@click.argument("token_id", type=int)
@handle_errors
def revoke(token_id: int) -> None:
    """Revoke a token by id; it stops working at once."""
    with unit_of_work() as s:
        tokens.revoke(s, token_id)
    click.echo(f"token {token_id} revoked")
