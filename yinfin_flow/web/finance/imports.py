"""Budget import: upload a CSV or XLSX budget file, see its dry run per line (a new line,
adjusted by how much, unchanged; or every error with its row and column), then submit it
as one budget journal proposal that another finance user approves.

The file is read, rehearsed and proposed by the budget package
(:mod:`yinfin_flow.budget.import_preview`, :func:`~yinfin_flow.budget.journal_proposals.propose_import`),
as the API's ``POST /budget/imports`` does. The submit sends the same file again (the
page keeps it chosen); its SHA-256 must be the dry run's, so what is proposed is what
was shown.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, render_template, request, url_for

from yinfin_flow.budget import io
from yinfin_flow.budget import journal_proposals as jp
from yinfin_flow.budget.import_preview import dry_run, read_upload
from yinfin_flow.domain.errors import ValidationError

from .. import i18n
from ..common import db, htmx, me
from . import add_nav
from .shared import back, flow, form_text


def _file() -> tuple[str, bytes]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("file", "choose a CSV or XLSX budget file")
    return Path(upload.filename).name, upload.read()


def imports_page() -> str:
    return render_template("yinfin/finance/imports.html", result=None)


def post_import() -> Any:
    ident, st = me(), flow()
    action = request.form.get("action") or "preview"
    if action not in ("preview", "submit"):
        raise ValidationError("action", "must be preview or submit")
    name, data = _file()
    digest = hashlib.sha256(data).hexdigest()
    header, rows = read_upload(name, data, limits=st.settings.limits, field="file")
    reason = form_text("reason")
    mode = st.settings.default_control_mode
    if action == "preview":
        with db().unit_of_work() as s:  # a writing transaction: the rehearsal is rolled back
            result = dry_run(s, header, rows, source=name, actor=ident.id, default_mode=mode, reason=reason)
        template = "yinfin/finance/_import_result.html" if htmx() else "yinfin/finance/imports.html"
        return render_template(template, result=result, filename=name, sha256=digest)
    if form_text("sha256") != digest:
        raise ValidationError("file", "is not the file of the dry run: run the dry run of this file first")
    with db().unit_of_work() as s:
        if st.settings.budget_journal_approval == jp.REQUIRED:
            proposal_id = jp.propose_import(s, header, rows, source=name, actor=ident.id, reason=reason,
                                            default_mode=mode).id
        else:
            jp.require_person(s, ident.id)
            io.import_rows(s, header, rows, source=name, actor=ident.id, default_mode=mode, reason=reason)
            proposal_id = None
    if proposal_id is None:
        flash(i18n._("Imported."))
        return back(url_for("console.finance_budget"))
    flash(i18n._("Proposed: another finance user approves it."))
    return back(url_for("console.finance_journal", proposal_id=proposal_id))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/imports", "finance_imports", imports_page)
    bp.add_url_rule("/finance/imports", "finance_import_post", post_import, methods=["POST"])
    add_nav("console.finance_imports", "Budget import", frozenset({"finance"}))
