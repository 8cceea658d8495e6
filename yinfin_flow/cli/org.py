"""``yinfin-flow org …``: the organisation directory (users, managers, roles, delegations)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from yinfin_flow.budget.io_tables import check_file
from yinfin_flow.cli.budget import actor_option, handle_errors, require_actor, table, unit_of_work
from yinfin_flow.cli.common import settings
from yinfin_flow.engine import directory


@click.group("org")
def command() -> None:
    """Users, departments, managers, roles and delegations."""


@command.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", default="utf-8-sig", show_default=True,
              help="File encoding (gb18030 for files saved by Chinese Excel).")
@click.option("--deactivate-missing", is_flag=True,
              help="Deactivate users of the file's companies who are not in the file.")
@actor_option
@handle_errors
def import_(path: Path, encoding: str, deactivate_missing: bool, actor: str) -> None:
    """Import users from a CSV file (all rows or none; every bad row is listed).

    Columns: id,name,email,company,department,manager,roles,active (roles separated by
    ';', each ROLE or ROLE@DEPARTMENT), optionally dingtalk_userid, feishu_open_id,
    wecom_userid.
    """
    require_actor(actor)
    check_file(path, settings().limits)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise click.ClickException(f"{path} is not {encoding} ({err.reason}); try --encoding gb18030") from None
    with unit_of_work() as session:
        result = directory.import_users_csv(session, text, actor=actor,
                                            deactivate_missing=deactivate_missing)
    click.echo(f"{path.name}: {result.summary()}")
    if result.deactivated:
        click.echo("deactivated: " + ", ".join(result.deactivated))


@command.command("show")
@click.argument("user", required=False)
@click.option("--company", default=None, help="Only users of this company code.")
@click.option("--inactive/--no-inactive", default=True, show_default=True, help="Include inactive users.")
@handle_errors
def show(user: str | None, company: str | None, inactive: bool) -> None:
    """List the directory, or show one USER with their roles and delegations."""
    with unit_of_work(readonly=True) as session:
        if user is None:
            rows = [r for r in directory.listing(session, company) if inactive or r["active"]]
            click.echo(table(
                ["id", "name", "company", "department", "manager", "active", "roles"],
                [[r["id"], r["name"], r["company"], r["department"] or "", r["manager"] or "",
                  "yes" if r["active"] else "no", ";".join(r["roles"])] for r in rows],
            ))
            return
        ctx = directory.user_context(session, directory.get_user(session, user).id)
        for key in ("id", "name", "email", "company", "department", "manager", "active"):
            click.echo(f"{key:<11} {ctx[key] if ctx[key] is not None else ''}")
        click.echo(f"{'roles':<11} {';'.join(ctx['role_grants'])}")
        for d in directory.live_delegations(session, user):
            scope = d.workflow or "all workflows"
            click.echo(f"{'delegation':<11} #{d.id} to {d.deputy_id} {d.start_date}..{d.end_date} ({scope})")


@command.command("deactivate")
@click.argument("user")
@handle_errors
def deactivate(user: str) -> None:
    """Deactivate USER (never deleted: requests and history keep naming them)."""
    with unit_of_work() as session:
        directory.set_active(session, user, False)
    click.echo(f"{user} deactivated")


@command.command("delegate")
@click.argument("user")
@click.argument("deputy")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--workflow", default=None, help="Only this workflow (default: all).")
@click.option("--reason", default=None)
@actor_option
@handle_errors
def delegate(user: str, deputy: str, start: object, end: object, workflow: str | None,
             reason: str | None, actor: str) -> None:
    """USER hands approval tasks to DEPUTY from --start to --end (both inclusive)."""
    require_actor(actor)
    s: date = start.date()  # type: ignore[attr-defined]
    e: date = end.date()  # type: ignore[attr-defined]
    with unit_of_work() as session:
        row = directory.delegate(session, user, deputy, s, e, workflow=workflow, reason=reason, actor=actor)
        click.echo(f"delegation #{row.id}: {user} -> {deputy} {s}..{e} ({workflow or 'all workflows'})")
