"""Receipts and invoices on the request and task pages: upload, list, download.

The attachments service (:mod:`yinfin_flow.attachments.service`) decides who may add
or read, checks the type by content and the size, and keeps one claim per invoice;
these views only carry the file. A file is always served as a download, never
rendered inline, with the API's headers.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, current_app, flash, request, send_file, url_for

from yinfin_flow.attachments import service
from yinfin_flow.attachments.storage import storage_from
from yinfin_flow.domain.attachments import AttachmentTooLarge
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.extension import state

from . import i18n
from .common import db, me
from .views_tasks import _back

#: room for the multipart envelope and the small fields beside the file
ENVELOPE = 64 * 1024


def limit() -> int:
    return int(state(current_app).settings.attachment_max_bytes)


def cap_upload() -> None:
    """Nothing past the configured size is read into memory (a 413 instead)."""
    request.max_content_length = limit() + ENVELOPE


def posted_file(required: bool) -> dict[str, Any] | None:
    """The uploaded file and its invoice fields as the service takes them."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        if required:
            raise ValidationError("file", "choose a PDF, JPEG, PNG or OFD file")
        return None
    data = upload.read(limit() + 1)
    if len(data) > limit():
        raise AttachmentTooLarge(len(data), limit())
    fields = {k: (request.form.get(k) or "").strip() or None
              for k in ("line_ref", "invoice_code", "invoice_number")}
    return {"filename": upload.filename, "content_type": upload.mimetype, "data": data, **fields}


def add(session: Any, request_id: int, upload: dict[str, Any]) -> dict[str, Any]:
    return service.add(session, storage_from(current_app), request_id=request_id, actor=me(), **upload)


def attachment_add(request_id: int) -> Response:
    cap_upload()
    upload = posted_file(required=True)
    assert upload is not None
    with db().unit_of_work() as s:
        added = add(s, request_id, upload)
    flash(i18n._("Attached %(name)s.", name=added["filename"]))
    return _back(url_for("console.request", request_id=request_id))


def attachment_content(attachment_id: int) -> Response:
    with db().unit_of_work(readonly=True) as s:
        meta, data = service.read(s, storage_from(current_app), attachment_id, me())
    resp = send_file(io.BytesIO(data), mimetype=meta["content_type"], as_attachment=True,
                     download_name=meta["filename"], etag=meta["sha256"], conditional=True, max_age=0)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


def listed(session: Any, request_id: int) -> list[dict[str, Any]]:
    return service.list_for_request(session, request_id, me())


def _cap_uploads(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before every before_request hook (the CSRF check reads the form).
    if endpoint in ("console.attachment_add", "console.new_request"):
        cap_upload()


def _too_large(_exc: Exception) -> Response:
    from .common import on_domain_error

    return on_domain_error(AttachmentTooLarge(request.content_length, limit()))


def register(bp: Blueprint) -> None:
    bp.url_value_preprocessor(_cap_uploads)
    bp.register_error_handler(413, _too_large)
    rid = "<int(min=1, max=2147483647):request_id>"
    bp.add_url_rule(f"/requests/{rid}/attachments", "attachment_add", attachment_add, methods=["POST"])
    bp.add_url_rule("/attachments/<int(min=1, max=2147483647):attachment_id>/content",
                    "attachment_content", attachment_content)
