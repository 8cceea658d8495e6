"""Operations: delivery to the OA and ERP as finance and admins watch it. Outbox status
and health per connector, dead letters with their last error and replay (one, or all
of a connector), master-data sync results, reconciliation (the last run per ERP with
the count of each problem, or a run for a month), and ``verify`` on demand with its
findings. The functions are the API's and the CLI's (:mod:`yinfin_flow.worker.outbox`,
:mod:`~yinfin_flow.worker.status`, :mod:`~yinfin_flow.worker.reconcile`,
:mod:`yinfin_flow.verify`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from yinfin_flow import verify
from yinfin_flow.api.health import run_checks
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.extension import state
from yinfin_flow.worker import outbox, reconcile
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.status import connector_status

from .. import i18n
from ..common import db
from . import add_nav, books

MAX_SHOWN = 200


def _target() -> str | None:
    value = (request.form.get("target") or request.args.get("target") or "").strip()
    if len(value) > 64:
        raise ValidationError("target", "at most 64 characters")
    return value or None


def _page(**extra: Any) -> str:
    target = _target()
    with db().unit_of_work(readonly=True) as s:
        connectors = connector_status(s)
        letters = outbox.dead_letters(s, target=target, limit=MAX_SHOWN)
        runs = reconcile.last_runs(s)
    health = {name.split(":", 1)[1]: part
              for name, part in run_checks(state(current_app), "connector:").items()}
    erps = list(DeliverySettings.from_env().erp)
    syncs = [{"connector": c["name"], **w} for c in connectors for w in c["sync"]]
    return render_template("yinfin/finance/operations.html", connectors=connectors, letters=letters,
                           syncs=syncs,
                           target=target, runs=runs, health=health, erps=erps, shown=MAX_SHOWN, **extra)


def operations() -> str:
    return _page()


def replay(message_id: int) -> Response:
    with db().unit_of_work() as s:
        view = outbox.replay(s, message_id)
    if view.status == "pending":
        flash(i18n._("Message %(id)s will be delivered again.", id=message_id))
    else:
        flash(i18n._("Message %(id)s is %(status)s: nothing to replay.", id=message_id, status=view.status))
    return redirect(url_for("console.finance_operations", target=_target()))


def replay_all() -> Response:
    target = _target()
    with db().unit_of_work() as s:
        n = outbox.replay_all(s, target=target)
    flash(i18n._("%(n)s dead letter(s) will be delivered again.", n=n))
    return redirect(url_for("console.finance_operations", target=target))


def run_verify() -> str:
    with db().unit_of_work(readonly=True) as s:
        problems = verify.verify(s)
    names = [c.__name__ for c in verify.all_checks()]
    return _page(verified={"problems": problems, "checks": names})


def run_reconcile() -> str:
    period = books.period_arg("period", required=True)
    assert period is not None
    target = _target() or next(iter(DeliverySettings.from_env().erp), None)
    if not target:
        raise ValidationError("target", "no ERP is configured (YINFIN_ERP_CONNECTOR)")
    report = reconcile.reconcile(db(), period, target)
    categories = Counter(d.problem for d in report.differences)
    return _page(reconciled={"report": report, "categories": dict(sorted(categories.items()))})


def register(bp: Blueprint) -> None:
    mid = "<int(min=1, max=9223372036854775807):message_id>"
    bp.add_url_rule("/finance/operations", "finance_operations", operations)
    bp.add_url_rule(f"/finance/operations/dead-letters/{mid}/replay", "finance_replay", replay,
                    methods=["POST"])
    bp.add_url_rule("/finance/operations/dead-letters/replay", "finance_replay_all", replay_all,
                    methods=["POST"])
    bp.add_url_rule("/finance/operations/verify", "finance_verify", run_verify, methods=["POST"])
    bp.add_url_rule("/finance/operations/reconcile", "finance_reconcile", run_reconcile, methods=["POST"])
    add_nav("console.finance_operations", i18n.lazy("Operations"), books.BOOKS_ROLES)
