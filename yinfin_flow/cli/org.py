"""``yinfin-flow org …``: the organisation directory (users, managers, roles, delegations)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from yinfin_flow.budget.io_tables import check_file
from yinfin_flow.cli.common import (
    actor_option,
    directory_actor,
    handle_errors,
    settings,
    unit_of_work,
)
from yinfin_flow.cli.output import Col, emit, emit_one, format_option, working
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

    --actor must be an active person of the directory once the file is imported (on an
    empty directory: one of the file's users), else nothing is imported.
    """
    check_file(path, settings().limits)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise click.ClickException(f"{path} is not {encoding} ({err.reason}); try --encoding gb18030") from None
    with unit_of_work() as session, working(f"importing users from {path.name}"):
        result = directory.import_users_csv(session, text, actor=actor,
                                            deactivate_missing=deactivate_missing)
        directory_actor(session, actor)  # checked in the same transaction: refused, nothing stays
    click.echo(f"{path.name}: {result.summary()}")
    if result.deactivated:
        click.echo("deactivated: " + ", ".join(result.deactivated))


@command.command("show")
@click.argument("user", required=False)
@click.option("--company", default=None, help="Only users of this company code.")
@click.option("--inactive/--no-inactive", default=True, show_default=True, help="Include inactive users.")
@format_option
@handle_errors
def show(user: str | None, company: str | None, inactive: bool, fmt: str) -> None:
    """List the directory, or show one USER with their roles and delegations (exit 1 if no such user)."""
    with unit_of_work(readonly=True) as session:
        if user is None:
            rows = [r for r in directory.listing(session, company) if inactive or r["active"]]
            emit(rows, [Col("id"), Col("name"), Col("company"), Col("department"), Col("manager"),
                        Col("active", shown=lambda v, r: "yes" if v else "no"),
                        Col("roles", shown=lambda v, r: ";".join(v))], fmt)
            return
        ctx = directory.user_context(session, directory.get_user(session, user).id)
        delegations = [{"id": d.id, "deputy": d.deputy_id, "start": d.start_date, "end": d.end_date,
                        "workflow": d.workflow} for d in directory.live_delegations(session, user)]
    obj = {k: ctx[k] for k in ("id", "name", "email", "company", "department", "manager", "active")}
    obj["roles"] = list(ctx["role_grants"])
    obj["delegations"] = delegations
    cols = [*(Col(k) for k in ("id", "name", "email", "company", "department", "manager")),
            Col("active", shown=lambda v, r: "yes" if v else "no"),
            Col("roles", shown=lambda v, r: ";".join(v)),
            Col("delegations", shown=lambda v, r: "; ".join(
                f"#{d['id']} to {d['deputy']} {d['start']}..{d['end']} ({d['workflow'] or 'all workflows'})"
                for d in v))]
    emit_one(obj, fmt, cols)


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
    s: date = start.date()  # type: ignore[attr-defined]
    e: date = end.date()  # type: ignore[attr-defined]
    with unit_of_work() as session:
        actor = directory_actor(session, actor)
        row = directory.delegate(session, user, deputy, s, e, workflow=workflow, reason=reason, actor=actor)
        click.echo(f"delegation #{row.id}: {user} -> {deputy} {s}..{e} ({workflow or 'all workflows'})")
