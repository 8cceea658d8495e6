"""Attachment rules: which files are accepted, how names are cleaned, what an invoice
number looks like. Pure Python (no I/O beyond reading the bytes handed in).

**File types** are decided by content (the first bytes, "magic numbers"), never by the
name or the type a client declares: PDF (``%PDF-``), JPEG (``FF D8 FF``), PNG (the
8-byte PNG signature) and OFD, China's fixed-layout format for e-invoices
(GB/T 33190-2016): a ZIP container whose root holds ``OFD.xml``. A declared type that
names one of these but disagrees with the content is refused; ``application/octet-stream``
or no declared type is fine. Four signatures are a few lines, so no library (libmagic)
is needed for them.

**Invoice numbers** (发票代码 / 发票号码), after the State Taxation Administration's
formats:

- paper and electronic VAT invoices issued before the fully digitalised invoice: a
  10-digit code (增值税专用发票 / 普通发票, paper) or a 12-digit code (增值税电子普通发票,
  roll and toll invoices), and an 8-digit number;
- the fully digitalised e-invoice (全面数字化的电子发票, 全电发票 / 数电票, piloted from
  December 2021): a 20-digit number (2 digits year, 2 digits tax bureau region, 1 digit
  channel, 15 digits sequence) and no code.

An invoice is identified by its code and number together (the same 8-digit number
recurs under other codes); :func:`invoice_key` is that identity, the value the
database keeps unique among claimed invoices.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from .errors import Conflict, DomainError, ValidationError

PDF, JPEG, PNG, OFD = "application/pdf", "image/jpeg", "image/png", "application/ofd"
#: content type -> the file name extension it is served under
EXTENSIONS = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png", OFD: ".ofd"}
ACCEPTED = tuple(EXTENSIONS)
#: declared types that say nothing about the content
UNSPECIFIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
#: other names clients use for our types
ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "application/x-pdf": PDF,
           "application/vnd.ofd": OFD, "application/x-ofd": OFD, "application/zip": OFD}

FILENAME_MAX = 200
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_DIGITS = re.compile(r"^[0-9]+$")


class UnsupportedFileType(ValidationError):
    code = "unsupported_file_type"


class AttachmentTooLarge(DomainError):
    """The file is over the configured limit (413, naming the field)."""

    code = "attachment_too_large"
    http_status = 413

    def __init__(self, size: int | None, limit: int, field: str = "file") -> None:
        said = f"{size} bytes" if size is not None else "the upload"
        super().__init__(f"{field}: {said} is over the limit of {limit} bytes",
                         field=field, size=size, limit=limit)


class DuplicateInvoice(Conflict):
    """The invoice is already claimed by a request that has not ended (409, naming it)."""

    code = "duplicate_invoice"

    def __init__(self, invoice: Invoice, request_id: int, attachment_id: int | None = None) -> None:
        super().__init__(
            f"invoice_number: invoice {invoice.label} is already on request {request_id}",
            field="invoice_number", invoice_code=invoice.code, invoice_number=invoice.number,
            request_id=request_id, attachment_id=attachment_id)


class RequestEnded(Conflict):
    """Nothing is attached to a request that has ended without being carried out."""

    code = "request_ended"


def detect_type(data: bytes) -> str | None:
    """The accepted content type ``data`` is, by its content; None when it is none of them."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"PK\x03\x04") and _is_ofd(data):
        return OFD
    return None


def _is_ofd(data: bytes) -> bool:
    """A ZIP whose root holds ``OFD.xml`` (only the central directory is read, nothing
    is decompressed, so a ZIP bomb costs nothing here)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "OFD.xml" in z.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):  # corrupt or truncated
        return False


def check_content(data: bytes, declared: str | None, *, max_bytes: int) -> str:
    """The content type to store for ``data``: refuses an empty or over-size file, a
    type we do not accept, or a declared type the content contradicts."""
    if len(data) > max_bytes:
        raise AttachmentTooLarge(len(data), max_bytes)
    if not data:
        raise ValidationError("file", "the file is empty")
    found = detect_type(data)
    if found is None:
        raise UnsupportedFileType("file", "the content is not a PDF, JPEG, PNG or OFD file",
                                  accepted=list(ACCEPTED))
    said = (declared or "").split(";", 1)[0].strip().lower()
    said = ALIASES.get(said, said)
    if said not in UNSPECIFIC and said != found:
        raise UnsupportedFileType("file", f"declared as {said[:100]} but the content is {found}",
                                  declared=said[:100], detected=found)
    return found


def clean_filename(name: str | None, content_type: str) -> str:
    """A safe display and download name: no directories, no control or format
    characters (a right-to-left override could disguise ``gpj.exe`` as ``exe.jpg``),
    NFC-normalised, at most :data:`FILENAME_MAX` characters with the extension kept.
    An empty result becomes ``attachment`` plus the type's extension."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = text.strip().strip(".").strip()
    if not text:
        return "attachment" + EXTENSIONS.get(content_type, "")
    if len(text) > FILENAME_MAX:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = stem[: FILENAME_MAX - len(ext) - 1].rstrip() + "." + ext
        else:
            text = text[:FILENAME_MAX]
    return text


@dataclass(frozen=True)
class Invoice:
    """A Chinese VAT invoice's identity: ``code`` is None for a 全电 (fully digital) invoice."""

    code: str | None
    number: str

    @property
    def key(self) -> str:
        return invoice_key(self.code, self.number)

    @property
    def label(self) -> str:
        return f"{self.code}/{self.number}" if self.code else self.number


def invoice_key(code: str | None, number: str) -> str:
    """``code:number``, or ``:number`` for a 全电 invoice (unique among claimed invoices)."""
    return f"{code or ''}:{number}"


def parse_invoice(code: str | None, number: str | None) -> Invoice | None:
    """The invoice the two fields describe, or None when both are empty.

    Refuses, naming the field: a code without a number, non-digits, a number that is
    neither 8 nor 20 digits, a 20-digit (全电) number with a code, an 8-digit number
    without a code, a code that is neither 10 nor 12 digits. Spaces are ignored
    (people copy the numbers in groups).
    """
    code = re.sub(r"\s+", "", code or "") or None
    number = re.sub(r"\s+", "", number or "") or None
    if code is None and number is None:
        return None
    if number is None:
        raise ValidationError("invoice_number", "required with invoice_code (发票号码)")
    if not _DIGITS.match(number):
        raise ValidationError("invoice_number", "digits only")
    if code is not None and not _DIGITS.match(code):
        raise ValidationError("invoice_code", "digits only")
    if len(number) == 20:
        if code is not None:
            raise ValidationError("invoice_code", "a 20-digit (全电) invoice number has no invoice code; "
                                                  "leave invoice_code empty")
        return Invoice(None, number)
    if len(number) != 8:
        raise ValidationError("invoice_number", "8 digits (with a 10 or 12-digit invoice_code), "
                                                "or 20 digits for a 全电 invoice")
    if code is None:
        raise ValidationError("invoice_code", "required with an 8-digit invoice number (发票代码)")
    if len(code) not in (10, 12):
        raise ValidationError("invoice_code", "10 or 12 digits")
    return Invoice(code, number)
