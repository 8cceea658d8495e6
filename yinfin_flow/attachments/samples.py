"""Small, valid receipt files made in code (the demo's receipts, the tests' uploads).

Nothing here reads a file from disk: a PNG drawn row by row, a one-page PDF with a few
lines of text, and a minimal OFD container, each a few hundred bytes.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def receipt_png(width: int = 48, height: int = 64, seed: int = 0) -> bytes:
    """A greyscale 'receipt': white paper with a darker line every few rows (``seed``
    shifts the lines, so different seeds give different files)."""
    rows = bytearray()
    for y in range(height):
        ink = (y + seed) % 6 == 0 and 4 <= y < height - 4
        rows.append(0)  # filter: none
        rows.extend(bytes(80 if ink and 4 <= x < width - 4 else 250 for x in range(width)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b""))


def _pdf_text(text: str) -> str:
    return text.encode("ascii", "replace").decode().replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def receipt_pdf(lines: list[str]) -> bytes:
    """A one-page A6 PDF showing ``lines`` (ASCII; other characters print as ``?``)."""
    text = "BT /F1 10 Tf 20 380 Td 14 TL " + " ".join(f"({_pdf_text(ln)}) '" for ln in lines) + " ET"
    stream = text.encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 298 420] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def receipt_ofd(invoice_number: str = "00000000") -> bytes:
    """A minimal OFD container (GB/T 33190): ``OFD.xml`` pointing at one document."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("OFD.xml", (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD">'
            f"<ofd:DocBody><ofd:DocInfo><ofd:DocID>{invoice_number}</ofd:DocID></ofd:DocInfo>"
            "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"))
        z.writestr("Doc_0/Document.xml", '<?xml version="1.0" encoding="UTF-8"?>\n'
                   '<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"/>')
    return buf.getvalue()
