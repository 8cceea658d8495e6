"""Attachment rules without a database: types by content, file names, invoice numbers,
the directory store."""

from __future__ import annotations

import io
import zipfile

import pytest

from yinfin_flow.attachments import samples
from yinfin_flow.attachments.storage import ContentMissing, DirectoryStorage, sha256_of
from yinfin_flow.domain.attachments import (
    FILENAME_MAX,
    JPEG,
    OFD,
    PDF,
    PNG,
    AttachmentTooLarge,
    UnsupportedFileType,
    check_content,
    clean_filename,
    detect_type,
    parse_invoice,
)
from yinfin_flow.domain.errors import ValidationError

JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32


def _zip(**members: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name.replace("__", "/"), text)
    return buf.getvalue()


@pytest.mark.parametrize(("data", "kind"), [
    (samples.receipt_pdf(["x"]), PDF),
    (JPEG_BYTES, JPEG),
    (samples.receipt_png(), PNG),
    (samples.receipt_ofd(), OFD),
])
def test_each_accepted_type_is_known_by_its_content(data: bytes, kind: str) -> None:
    assert detect_type(data) == kind
    assert check_content(data, None, max_bytes=10_000) == kind
    assert check_content(data, "application/octet-stream", max_bytes=10_000) == kind


@pytest.mark.parametrize("data", [
    b"<html><script>alert(1)</script></html>",
    b"GIF89a" + b"\x00" * 20,
    _zip(**{"word__document.xml": "<w/>"}),            # a ZIP, but not an OFD (a .docx)
    _zip(**{"Doc_0__OFD.xml": "<x/>"}),                 # OFD.xml not at the root
    samples.receipt_ofd()[:40],                         # a truncated ZIP
    b"PK\x03\x04" + b"\x00" * 100,
    b" %PDF-1.4",                                       # the header must come first
])
def test_other_content_is_refused_naming_the_file(data: bytes) -> None:
    assert detect_type(data) is None
    with pytest.raises(UnsupportedFileType) as err:
        check_content(data, "image/png", max_bytes=10_000)
    assert err.value.code == "unsupported_file_type"
    assert err.value.details["field"] == "file"


def test_html_declared_as_an_image_is_refused_and_a_declared_type_must_match() -> None:
    with pytest.raises(UnsupportedFileType):
        check_content(b"<!DOCTYPE html><p>hi", "image/png", max_bytes=10_000)
    with pytest.raises(UnsupportedFileType, match="declared as image/png but the content is application/pdf"):
        check_content(samples.receipt_pdf(["x"]), "image/png", max_bytes=10_000)
    # other names for the same type are fine
    assert check_content(JPEG_BYTES, "image/jpg", max_bytes=10_000) == JPEG
    assert check_content(samples.receipt_pdf(["x"]), "application/pdf; name=a.pdf", max_bytes=10_000) == PDF


def test_size_limit_and_empty_file() -> None:
    data = samples.receipt_png()
    assert check_content(data, PNG, max_bytes=len(data)) == PNG
    with pytest.raises(AttachmentTooLarge) as err:
        check_content(data, PNG, max_bytes=len(data) - 1)
    assert err.value.http_status == 413
    assert err.value.details == {"field": "file", "size": len(data), "limit": len(data) - 1}
    with pytest.raises(ValidationError, match="file: the file is empty"):
        check_content(b"", PNG, max_bytes=10)


@pytest.mark.parametrize(("name", "kind", "clean"), [
    ("receipt.pdf", PDF, "receipt.pdf"),
    ("../../etc/passwd", PDF, "passwd"),
    ("C:\\Users\\amy\\发票 2026.png", PNG, "发票 2026.png"),
    ("a\x00b\r\nc.jpg", JPEG, "abc.jpg"),
    ("invoice\u202egpj.exe", PNG, "invoicegpj.exe"),    # right-to-left override removed
    ("...", PDF, "attachment.pdf"),
    ("", OFD, "attachment.ofd"),
    (None, PNG, "attachment.png"),
])
def test_file_names_lose_paths_and_control_characters(name: str | None, kind: str, clean: str) -> None:
    assert clean_filename(name, kind) == clean


def test_long_file_names_keep_their_extension() -> None:
    got = clean_filename("报" * 500 + ".pdf", PDF)
    assert len(got) == FILENAME_MAX and got.endswith(".pdf")
    assert len(clean_filename("x" * 500, PDF)) == FILENAME_MAX


@pytest.mark.parametrize(("code", "number", "key"), [
    ("1100182130", "12345678", "1100182130:12345678"),       # 10-digit code: paper VAT invoice
    ("044031900111", "00123456", "044031900111:00123456"),   # 12-digit code: electronic ordinary
    (None, "24442000000012345678", ":24442000000012345678"),  # 全电 (fully digital): no code
    ("", "2444 2000 0000 1234 5678", ":24442000000012345678"),  # spaces as people copy them
    (None, None, None),
    ("", "", None),
])
def test_valid_invoice_numbers(code: str | None, number: str | None, key: str | None) -> None:
    inv = parse_invoice(code, number)
    assert (inv.key if inv else None) == key


@pytest.mark.parametrize(("code", "number", "field", "problem"), [
    ("1100182130", None, "invoice_number", "required"),
    (None, "12345678", "invoice_code", "required"),
    ("110018213", "12345678", "invoice_code", "10 or 12 digits"),
    ("11001821301", "12345678", "invoice_code", "10 or 12 digits"),
    ("11001821AB", "12345678", "invoice_code", "digits only"),
    ("1100182130", "1234567", "invoice_number", "8 digits"),
    ("1100182130", "1234567X", "invoice_number", "digits only"),
    ("1100182130", "24442000000012345678", "invoice_code", "全电"),
    (None, "2444200000001234567", "invoice_number", "20 digits"),
    (None, "１２３４５６７８", "invoice_number", "digits only"),  # full-width digits
])
def test_invalid_invoice_numbers_name_the_field(code: str | None, number: str, field: str, problem: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_invoice(code, number)
    assert err.value.details["field"] == field
    assert problem in err.value.details["problem"]


def test_directory_storage_is_content_addressed(tmp_path) -> None:
    store = DirectoryStorage(tmp_path)
    data = samples.receipt_png(seed=3)
    sha = store.put(data)
    assert sha == sha256_of(data) and len(sha) == 64
    assert store.put(data) == sha  # the same bytes again: stored once
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / sha[:2] / sha[2:4] / sha]
    assert store.exists(sha) and store.get(sha) == data
    other = store.put(samples.receipt_png(seed=4))
    assert other != sha and store.exists(other)
    assert not store.exists("0" * 64) and not store.exists("../../etc/passwd")
    with pytest.raises(ContentMissing):
        store.get("0" * 64)
    with pytest.raises(ContentMissing):
        store.get("../" * 5 + "etc/passwd")
    (tmp_path / sha[:2] / sha[2:4] / sha).write_bytes(b"tampered")
    with pytest.raises(ContentMissing, match="damaged"):
        store.get(sha)


def test_storage_from_settings_uses_the_configured_directory(tmp_path) -> None:
    from yinfin_flow.attachments.storage import storage_from
    from yinfin_flow.config import Settings

    settings = Settings.from_env({"YINFIN_ATTACHMENTS_DIR": str(tmp_path / "files"),
                                  "YINFIN_ATTACHMENT_MAX_BYTES": "1234"})
    store = storage_from(settings)
    assert isinstance(store, DirectoryStorage) and store.root == tmp_path / "files"
    assert settings.attachment_max_bytes == 1234
    assert Settings.from_env({"YINFIN_INSTANCE_DIR": str(tmp_path)}).attachments_dir == tmp_path / "attachments"
