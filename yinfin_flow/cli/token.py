"""``yinfin-flow token …``: API tokens for directory users (create prints it once)."""

from __future__ import annotations

from datetime import timedelta

import click

from yinfin_flow.cli.common import actor_option, handle_errors, require_actor, table, unit_of_work
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
    require_actor(actor)
    with unit_of_work() as s:
        issued = tokens.create_token(s, user, name=name, created_by=actor,
                                     expires_at=utcnow() + timedelta(days=days) if days else None)
    click.echo(issued.token)
    expiry = issued.expires_at.date().isoformat() if issued.expires_at else "never"
    click.echo(f"token {issued.id} ({issued.prefix}…) for {user}, expires {expiry}; "
               "store it now, it is not kept", err=True)


@command.command("list")
@click.option("--user", default=None, help="Only this user's tokens.")
@handle_errors
def list_(user: str | None) -> None:
    """Tokens (id, user, name, prefix, expiry, revoked), never the secrets."""
    with unit_of_work(readonly=True) as s:
        rows = [[str(t.id), t.user_id, t.name, t.prefix + "…",
                 t.expires_at.isoformat() if t.expires_at else "never",
                 t.revoked_at.isoformat() if t.revoked_at else ""] for t in tokens.tokens_of(s, user)]
    click.echo(table(["id", "user", "name", "prefix", "expires", "revoked"], rows))


@command.command("revoke")
@click.argument("token_id", type=int)
@handle_errors
def revoke(token_id: int) -> None:
    """Revoke a token by id; it stops working at once."""
    with unit_of_work() as s:
        tokens.revoke(s, token_id)
    click.echo(f"token {token_id} revoked")
