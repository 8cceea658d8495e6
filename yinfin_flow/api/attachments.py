"""``/api/v1/requests/<id>/attachments`` and ``/api/v1/attachments/<id>``: receipts and
invoices (multipart upload, list, metadata, download).

Thin: the service (:mod:`yinfin_flow.attachments.service`) decides who may do what and
keeps one claim per invoice. Files are always served as downloads
(``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff`` and a
sandboxing ``Content-Security-Policy``), never rendered inline; their types are only
ever the four the upload accepts by content.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Response, current_app, request, send_file

from yinfin_flow.attachments import service
from yinfin_flow.attachments.storage import storage_from
from yinfin_flow.domain.attachments import ACCEPTED, AttachmentTooLarge

from ..extension import state
from .attachment_schemas import (
    AttachmentInSchema,
    AttachmentListSchema,
    AttachmentSchema,
    MultipartBlueprint,
)
from .errors import handle_domain_error, register_blueprint_handlers
from .identity import require_actor

blp = MultipartBlueprint("attachments", __name__, url_prefix="",
                         description="Receipts and invoices on requests: upload, list, download.")
register_blueprint_handlers(blp)

RID = "<int(min=1, max=2147483647):request_id>"
AID = "<int(min=1, max=2147483647):attachment_id>"
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}
#: room for the multipart envelope and the small fields beside the file
ENVELOPE = 64 * 1024


def _limit() -> int:
    return state(current_app).settings.attachment_max_bytes


@blp.url_value_preprocessor
def _cap_upload(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Runs before every before_request hook (the gate reads the body for an
    # Idempotency-Key): nothing past the limit is ever read into memory.
    if endpoint == "attachments.add_attachment":
        request.max_content_length = _limit() + ENVELOPE


@blp.errorhandler(413)
def _too_large(_exc: Exception) -> Response:
    return handle_domain_error(AttachmentTooLarge(request.content_length, _limit()))


@blp.post(f"/requests/{RID}/attachments")
@blp.arguments(AttachmentInSchema, location="multipart")
@blp.response(201, AttachmentSchema)
@blp.doc(**AUTH)
def add_attachment(body: dict[str, Any], request_id: int) -> dict[str, Any]:
    """Attach a receipt or invoice (``multipart/form-data``): the requester, or finance.

    PDF, JPEG, PNG or OFD by content; 413 ``attachment_too_large`` over the limit. With
    ``invoice_code`` / ``invoice_number`` the invoice is claimed for this request: one
    already claimed by a request that has not ended rejected, withdrawn or cancelled is
    409 ``duplicate_invoice`` naming it (``details.request_id``).
    """
    ident = require_actor()
    st = state(current_app)
    upload = body["file"]
    data = upload.read()  # at most the request's cap (_cap_upload)
    with st.db.unit_of_work() as s:
        return service.add(
            s, storage_from(st.settings), request_id=request_id, actor=ident,
            filename=upload.filename, content_type=upload.mimetype, data=data,
            line_ref=body["line_ref"], invoice_code=body["invoice_code"],
            invoice_number=body["invoice_number"])


@blp.get(f"/requests/{RID}/attachments")
@blp.response(200, AttachmentListSchema)
@blp.doc(**AUTH)
def list_attachments(request_id: int) -> dict[str, Any]:
    """The request's attachments (metadata), for whoever may see the request."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return {"items": service.list_for_request(s, request_id, require_actor())}


@blp.get(f"/attachments/{AID}")
@blp.response(200, AttachmentSchema)
@blp.doc(**AUTH)
def get_attachment(attachment_id: int) -> dict[str, Any]:
    """One attachment's metadata."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return service.get(s, attachment_id, require_actor())


@blp.get(f"/attachments/{AID}/content")
@blp.doc(**AUTH, responses={"200": {
    "description": "the file, as a download (Content-Disposition: attachment)",
    "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED}}})
def download_attachment(attachment_id: int) -> Response:
    """The file itself, for the requester, the request's approvers and finance."""
    st = state(current_app)
    with st.db.unit_of_work(readonly=True) as s:
        meta, data = service.read(s, storage_from(st.settings), attachment_id, require_actor())
    resp = send_file(io.BytesIO(data), mimetype=meta["content_type"], as_attachment=True,
                     download_name=meta["filename"], etag=meta["sha256"], conditional=True,
                     max_age=0)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp
