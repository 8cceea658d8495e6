"""Workflow definitions (admin; finance may read): each definition and the versions
requests started on, drawn in the page from the Mermaid text ``workflows diagram``
writes (rendered by the vendored Mermaid), how many requests run on each version,
and a draft checked in the page: the parse and static check of ``POST
/api/v1/workflows/validate``, findings shown inline. Definitions are files under
version control: the console reads and checks them, never writes them."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.engine import catalogue
from yinfin_flow.extension import state

from .. import i18n
from ..common import db, htmx
from . import add_nav, books

MAX_DRAFT = 200_000


def _dir():  # noqa: ANN202 - a Path
    return state(current_app).settings.workflows_dir


def workflows() -> str:
    with db().unit_of_work(readonly=True) as s:
        found = catalogue.overview(s, _dir())
        drawings = {w["name"]: catalogue.drawing(s, _dir(), w["name"])
                    for w in found["items"] if w["version"] is not None}
    return render_template("yinfin/finance/workflows.html", items=found["items"], invalid=found["invalid"],
                           drawings=drawings, draft=None, result=None)


def workflow(name: str) -> str:
    raw = request.args.get("version") or ""
    if raw and (not raw.isdigit() or not 0 < int(raw) < 2**31):
        raise ValidationError("version", "must be a version number")
    with db().unit_of_work(readonly=True) as s:
        drawn = catalogue.drawing(s, _dir(), name, int(raw) if raw else None)
        found = catalogue.overview(s, _dir())
        running = catalogue.requests_on(s, name, drawn["version"])
    entry = next((w for w in found["items"] if w["name"] == name), None)
    return render_template("yinfin/finance/workflow.html", d=drawn, entry=entry, running=running)


def check_draft() -> str:
    text = request.form.get("yaml") or ""
    if not text.strip():
        raise ValidationError("yaml", "paste the definition's YAML")
    if len(text) > MAX_DRAFT:
        raise ValidationError("yaml", f"at most {MAX_DRAFT} characters")
    result = catalogue.validate_draft(text)
    if htmx():
        return render_template("yinfin/finance/_draft_result.html", result=result)
    with db().unit_of_work(readonly=True) as s:
        found = catalogue.overview(s, _dir())
    return render_template("yinfin/finance/workflows.html", items=found["items"], invalid=found["invalid"],
                           drawings={}, draft=text, result=result)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/workflows", "finance_workflows", workflows)
    bp.add_url_rule("/finance/workflows/check", "finance_workflow_check", check_draft, methods=["POST"])
    bp.add_url_rule("/finance/workflows/<string(maxlength=64):name>", "finance_workflow", workflow)
    add_nav("console.finance_workflows", i18n.lazy("Workflows"), books.BOOKS_ROLES)
