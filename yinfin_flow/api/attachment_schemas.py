"""Schemas of the attachment resource: the multipart upload and the metadata answer."""

from __future__ import annotations

from typing import Any

import flask
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from yinfin_flow.domain.attachments import ACCEPTED

from .blueprint import Blueprint, StrictQueryParser
from .fields import Text


class MultipartParser(StrictQueryParser):
    """webargs' Flask parser with one more location, ``multipart``: a form's files and
    fields together (webargs reads ``files`` and ``form`` separately, and OpenAPI has
    one request body per operation)."""

    __location_map__ = dict(multipart="load_multipart", **StrictQueryParser.__location_map__)

    def load_multipart(self, req: flask.Request, schema: Schema) -> Any:
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


class MultipartBlueprint(Blueprint):  # type: ignore[misc] # flask-smorest is untyped
    """A flask-smorest blueprint that documents ``location="multipart"`` as
    ``multipart/form-data``."""

    ARGUMENTS_PARSER = MultipartParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING, "multipart": "multipart/form-data"}


class FileField(Upload):  # type: ignore[misc]
    """A file part of a multipart form (a plain text part with the same name is refused)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ValidationError("must be a file part of a multipart/form-data body")
        return value


class AttachmentInSchema(Schema):
    file = FileField(required=True, metadata={
        "description": f"the receipt or invoice: {', '.join(ACCEPTED)} (checked by content); "
                       "at most YINFIN_ATTACHMENT_MAX_BYTES (10 MiB by default)"})
    line_ref = Text(load_default=None, max_length=64,
                    metadata={"description": "the form line (its ``ref``) the file belongs to"})
    invoice_code = Text(load_default=None, max_length=40,
                        metadata={"description": "发票代码: 10 or 12 digits; empty for a 全电 invoice"})
    invoice_number = Text(load_default=None, max_length=40,
                          metadata={"description": "发票号码: 8 digits, or 20 digits for a 全电 invoice"})


class AttachmentSchema(Schema):
    id = fields.Integer(required=True)
    request_id = fields.Integer(required=True)
    line_ref = fields.String(allow_none=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sha256 = fields.String(required=True, metadata={"description": "of the content (hex)"})
    invoice_code = fields.String(allow_none=True)
    invoice_number = fields.String(allow_none=True)
    invoice_status = fields.String(allow_none=True, metadata={
        "description": "claimed: this request holds the invoice; released: the request ended "
                       "rejected, withdrawn or cancelled and the invoice is free again"})
    uploaded_by = fields.String(required=True)
    created_at = fields.String(allow_none=True)


class AttachmentListSchema(Schema):
    items = fields.List(fields.Nested(AttachmentSchema), required=True)
