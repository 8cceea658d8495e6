"""Integration commands: ``outbox`` (list, status, dead-letters, replay, deliver, purge),
``sync`` (master data from the ERP) and ``reconcile`` (our vouchers vs the ERP's).

``outbox`` is registered through :data:`yinfin_flow.cli.GROUPS`; ``sync`` and
``reconcile`` attach themselves to the main command when this module is imported.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from yinfin_flow.db.engine import Database
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.masterdata import KINDS as SYNC_KINDS

from .common import handle_errors, settings, unit_of_work
from .output import Col, emit, format_option, json_option, progress, render, working


def _db() -> Database:
    s = settings()
    return Database(s.database_url, schema=s.database_schema)


def _when(value: object) -> str:
    return "" if value is None else str(value)[:19]


@click.group("outbox")
def command() -> None:
    """Messages owed to the OA and ERP: see them, replay dead letters, deliver now."""


@command.command("list")
@click.option("--status", type=click.Choice(["pending", "in_flight", "delivered", "dead"]))
@click.option("--target", help="Connector name, e.g. kingdee.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@format_option
@json_option
@handle_errors
def list_cmd(status: str | None, target: str | None, limit: int, fmt: str, as_json: bool) -> None:
    """Messages, oldest first."""
    from yinfin_flow.worker import outbox

    with unit_of_work(readonly=True) as s:
        found = outbox.messages(s, status=status, target=target, limit=limit)
    _show(found, "json" if as_json else fmt)


MESSAGE_KEYS = ["id", "target", "kind", "document_key", "idempotency_key", "status", "attempts",
                "next_attempt_at", "last_error", "external_id", "delivered_at", "created_at"]


def _show(found: list[Any], fmt: str) -> None:
    rows = [asdict(m) for m in found]
    if fmt != "table":
        emit(rows, [Col(k) for k in MESSAGE_KEYS], fmt)
        return
    emit(rows, [Col("id", right=True), Col("target"), Col("kind"), Col("document_key", "document"), Col("status"),
                Col("attempts", "tries", right=True),
                Col("next_attempt_at", "next/at", shown=lambda v, r: _when(r["delivered_at"] or v)),
                Col("last_error", "error", shown=lambda v, r: (v or "")[:60])], fmt)


@command.command("dead-letters")
@click.option("--target", help="Connector name.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@format_option
@json_option
@handle_errors
def dead_letters_cmd(target: str | None, limit: int, fmt: str, as_json: bool) -> None:
    """Messages given up on, with the outside system's last error."""
    from yinfin_flow.worker import outbox

    with unit_of_work(readonly=True) as s:
        found = outbox.dead_letters(s, target=target, limit=limit)
    _show(found, "json" if as_json else fmt)


@command.command("replay")
@click.argument("message_id", required=False, type=int)
@click.option("--all", "everything", is_flag=True, help="Every dead letter (of --target).")
@click.option("--target", help="With --all: only this connector's.")
@handle_errors
def replay_cmd(message_id: int | None, everything: bool, target: str | None) -> None:
    """Give a dead letter (or all) fresh tries. A delivered message stays delivered."""
    from yinfin_flow.worker import outbox

    if (message_id is None) == (not everything):
        raise ValidationError("message_id", "give a message id or --all (not both)")
    with unit_of_work() as s:
        if everything:
            click.echo(f"replayed {outbox.replay_all(s, target=target)} dead letter(s)")
            return
        view = outbox.replay(s, message_id)  # type: ignore[arg-type]
    click.echo(f"message {view.id}: {view.status}"
               + (" (already delivered: nothing to do)" if view.status == "delivered" else ""))


@command.command("status")
@format_option
@handle_errors
def status_cmd(fmt: str) -> None:
    """Backlog, dead letters and last success per connector, and what the last
    reconciliation with each ERP found (JSON and CSV: one row per connector, with
    ``last_reconcile`` for an ERP)."""
    from yinfin_flow.worker import outbox
    from yinfin_flow.worker.reconcile import last_runs

    with unit_of_work(readonly=True) as s:
        found = outbox.target_status(s, DeliverySettings.from_env().targets)
        runs = last_runs(s)
    rows = [{**asdict(t), "last_reconcile": runs.get(t.target)} for t in found]
    rows += [{"target": name, "last_reconcile": run} for name, run in runs.items()
             if name not in {t.target for t in found}]
    if fmt != "table":
        emit(rows, [Col(k) for k in ("target", "backlog", "in_flight", "dead_letters", "delivered",
                                     "last_success", "oldest_pending", "last_reconcile")], fmt)
        return
    emit([r for r in rows if "backlog" in r],
         [Col("target"), Col("backlog", right=True), Col("in_flight", "in flight", right=True),
          Col("dead_letters", "dead", right=True), Col("delivered", right=True),
          Col("last_success", "last success", shown=lambda v, r: _when(v))], fmt)
    for target, run in runs.items():
        counts = ", ".join(f"{n} {problem}" for problem, n in sorted(run["findings"].items()))
        click.echo(f"last reconcile with {target} ({run['period']}, {_when(run['finished_at'])}): "
                   f"{run['checked']} checked, {run['matched']} match"
                   + (f"; findings: {counts}" if counts else "; no findings"))


@command.command("deliver")
@click.option("--once", is_flag=True, help="One pass only (default: until nothing is due).")
@handle_errors
def deliver_cmd(once: bool) -> None:
    """Run the dispatcher in this process now (what the worker does)."""
    from yinfin_flow.worker import dispatcher

    db = _db()
    try:
        r = dispatcher.run_once(db) if once else dispatcher.drain(db)
    finally:
        db.dispose()
    click.echo(f"delivered {len(r.delivered)}, retry later {len(r.retried)}, dead {len(r.dead)}")


@command.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@handle_errors
def purge_cmd(dry_run: bool) -> None:
    """Delete delivered messages older than YINFIN_OUTBOX_RETENTION and seen OA event ids
    older than YINFIN_INBOUND_SEEN_RETENTION (what the hourly job does).

    Pending, in-flight and dead messages are never deleted.
    """
    from yinfin_flow.worker import leases, retention

    ds = DeliverySettings.from_env()
    db = _db()
    try:
        if dry_run:
            done = retention.purge(db, ds, dry_run=True)
        else:
            with leases.held(db, "retention-purge", ttl=1800) as mine:
                if not mine:
                    raise ValidationError("purge", "another purge is running")
                done = retention.purge(db, ds)
    finally:
        db.dispose()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {done.outbox} delivered outbox message(s) older than "
               f"{_days(ds.outbox_retention)} and {done.inbound_seen} seen OA event id(s) older than "
               f"{_days(ds.inbound_seen_retention)}")


def _days(d: timedelta) -> str:
    if d and d % timedelta(days=1) == timedelta(0):
        return f"{d.days} day(s)"
    return f"{d.total_seconds():g} s"


@click.command("sync")
@click.option("--connector", "names", multiple=True,
              help="Connector to read (default: YINFIN_ERP_CONNECTOR, and the directory of "
                   "YINFIN_OA_CONNECTOR when it offers one).")
@click.option("--company", envvar="YINFIN_SYNC_COMPANY", help="Company to sync into.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(SYNC_KINDS),
              help="Only these kinds (an OA directory: cost_centres for its departments, users).")
@handle_errors
def sync_cmd(names: tuple[str, ...], company: str | None, kinds: tuple[str, ...]) -> None:
    """Pull changed master data from the ERP and the OA directory now (incremental, from
    the stored watermark): what the scheduled sync does."""
    from yinfin_flow.worker import leases, masterdata

    plan = _sync_plan(names, kinds, DeliverySettings.from_env())
    db = _db()
    try:
        with leases.held(db, "masterdata-sync", ttl=1800) as mine:
            if not mine:
                raise ValidationError("sync", "another master-data sync is running")
            failed = []
            for name, wanted in progress(plan, "syncing master data", length=len(plan)):
                done = masterdata.sync_connector(db, name, company=company, kinds=wanted)
                for kind, counts in done.items():
                    click.echo(f"{name} {kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
                    if counts.get("error"):
                        failed.append(f"{name} {kind}")
    finally:
        db.dispose()
    if failed:  # the others were applied; these are read again from where they stood
        click.echo(f"error sync: {', '.join(failed)} not applied (see above)", err=True)
        raise SystemExit(1)


def _sync_plan(names: tuple[str, ...], kinds: tuple[str, ...],
               ds: DeliverySettings) -> list[tuple[str, tuple[str, ...] | None]]:
    """(connector, kinds) to sync: named connectors as asked (a kind one does not offer is
    refused by the sync), else the configured ERPs and OA directories, each with those
    of ``kinds`` it offers."""
    from yinfin_flow.worker.dispatcher import registry_lookup

    if names:
        return [(n, kinds or None) for n in names]
    if not ds.erp and not ds.oa:
        raise ValidationError("connector", "name one with --connector or set YINFIN_ERP_CONNECTOR "
                                           "or YINFIN_OA_CONNECTOR")
    plan: list[tuple[str, tuple[str, ...] | None]] = []
    for name in ds.erp + ds.oa:
        try:
            offered = tuple(getattr(registry_lookup(name), "master_data_kinds", ()))
        except LookupError as err:
            raise ValidationError("connector", str(err), connector=name) from None
        if name in ds.oa and name not in ds.erp and "users" not in offered:
            continue  # an OA without a directory to read
        take = tuple(k for k in offered if k in kinds) if kinds else None
        if take != ():
            plan.append((name, take))
    if not plan:
        raise ValidationError("kind", f"no configured connector offers {', '.join(kinds)}: "
                                      "name one with --connector")
    return plan


@click.command("reconcile")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--connector", "name", help="ERP connector (default: the first of YINFIN_ERP_CONNECTOR).")
@click.option("--company", help="Only this company's vouchers.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the differences as CSV.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the differences as XLSX.")
@format_option
@handle_errors
def reconcile_cmd(period: str, name: str | None, company: str | None, csv_path: Path | None,
                  xlsx_path: Path | None, fmt: str) -> None:
    """Compare every voucher of a period with the ERP's copy; list the differences
    (table: a summary line, then the differences; JSON and CSV: the differences only,
    the summary on standard error).

    Exits 0 when everything matches, 3 when there are differences.
    """
    from yinfin_flow.worker import reconcile

    target = name or next(iter(DeliverySettings.from_env().erp), None)
    if not target:
        raise ValidationError("connector", "name one with --connector or set YINFIN_ERP_CONNECTOR")
    db = _db()
    try:
        with working(f"reconciling {period} with {target}"):
            report = reconcile.reconcile(db, period, target, company=company)
    finally:
        db.dispose()
    click.echo(f"{period} vs {target}: {report.checked} voucher(s), {report.matched} match, "
               f"{len(report.differences)} difference(s)", err=fmt != "table")
    rows = [{"entry": d.entry_id, "voucher": d.voucher, "problem": d.problem, "detail": d.detail,
             "erp_voucher_id": d.erp_voucher_id, "ours_debit": d.ours_debit, "erp_debit": d.erp_debit}
            for d in report.differences]
    if fmt != "table":
        emit(rows, [Col(k) for k in ("entry", "voucher", "problem", "detail", "erp_voucher_id", "ours_debit",
                                     "erp_debit")], fmt)
    elif rows:
        click.echo(render(rows, [Col("entry", right=True), Col("voucher"), Col("problem"),
                                 Col("detail", shown=lambda v, r: v[:80])], "table"))
    if csv_path:
        csv_path.write_text(report.to_csv(), encoding="utf-8")
    if xlsx_path:
        reconcile.write_xlsx(report, xlsx_path)
    if report.differences:
        raise SystemExit(3)


def _attach() -> None:
    from yinfin_flow import cli

    main = getattr(cli, "main", None)
    if main is None:
        return
    for c in (sync_cmd, reconcile_cmd):
        if c.name not in main.commands:
            main.add_command(c)


_attach()
__all__ = ["command"]
