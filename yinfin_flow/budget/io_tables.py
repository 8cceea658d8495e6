"""Reading and writing the flat tables finance exchanges with us: CSV and XLSX.

Both formats come in as ``(header, rows)`` where every cell is a stripped string
(``""`` when empty) and each row carries the row number a spreadsheet user sees
(the header is row 1). Nothing here knows what the columns mean.

Details a caller may rely on:

- CSV is read as UTF-8 (with or without the BOM Excel writes); a file that is not
  valid UTF-8 is read as GB18030, which is what Chinese Excel saves "CSV" as.
  CSV is written as UTF-8 with a BOM so Excel shows Chinese text correctly.
- XLSX: the first worksheet. Numbers Excel stores as binary floats are turned into
  the shortest decimal text that round-trips (``repr``), which is exactly what the
  user typed for any amount with up to 15 significant digits. A date cell in a
  ``period`` column is read as its month (``2026-01``), because Excel turns a typed
  ``2026-01`` into a date.
- Header names are matched case-insensitively, spaces and dashes become ``_``, and
  the Chinese headers in :data:`HEADER_ALIASES` are accepted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits, check_cells, check_size

FORMATS = ("csv", "xlsx")

#: Chinese column headers finance teams use, mapped to ours.
HEADER_ALIASES: dict[str, str] = {
    "公司": "company",
    "期间": "period",
    "预算期间": "period",
    "成本中心": "cost_centre",
    "部门": "cost_centre",
    "预算科目": "item",
    "科目": "item",
    "项目": "project",
    "上级": "parent",
    "上级预算": "parent",
    "币种": "currency",
    "金额": "amount",
    "预算金额": "amount",
    "负责人": "owner",
    "原因": "reason",
    "说明": "reason",
    "编码": "code",
    "预算编码": "code",
    "cost_center": "cost_centre",
    "源币种": "from_currency",
    "目标币种": "to_currency",
    "日期": "date",
    "汇率": "rate",
}

Row = tuple[int, dict[str, str]]

#: Columns read as numbers: their text goes to the money grammar untouched.
NUMBER_COLUMNS = frozenset({"amount", "rate"})


def format_of(path: Path, explicit: str | None = None) -> str:
    """``csv`` or ``xlsx``: ``explicit`` if given, else from the file name."""
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValidationError("format", f"must be csv or xlsx (got {fmt or path.name!r})")
    return fmt


def normalise_header(name: object) -> str:
    text = "" if name is None else str(name).strip()
    key = text.lower().replace(" ", "_").replace("-", "_")
    return HEADER_ALIASES.get(text, HEADER_ALIASES.get(key, key))


def check_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a file that is missing or past ``max_file_bytes`` before reading it."""
    if not path.exists():
        raise ValidationError("file", f"{path} does not exist")
    check_size(path.stat().st_size, limits.max_file_bytes, "file")


def read_table(path: Path, fmt: str | None = None,
               limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], list[Row]]:
    """The header (normalised) and the non-empty rows of a CSV or XLSX file, within
    ``limits`` (file size, then the length of every cell)."""
    check_file(path, limits)
    kind = format_of(path, fmt)
    raw = _read_xlsx(path) if kind == "xlsx" else _read_csv(path)
    if not raw:
        raise ValidationError("file", f"{path.name} is empty: the first row must name the columns")
    header = [normalise_header(h) for h in raw[0]]
    rows: list[Row] = []
    for number, values in enumerate(raw[1:], start=2):
        cells = {
            name: _cell_text(values[i] if i < len(values) else None, name)
            for i, name in enumerate(header)
            if name
        }
        if any(cells.values()):
            rows.append((number, cells))
    check_cells(rows, limits)
    return header, rows


def _read_csv(path: Path) -> list[list[Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    return [list(r) for r in csv.reader(io.StringIO(text, newline=""))]


def _read_xlsx(path: Path) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        raise ValidationError("file", f"{path.name} is not a readable .xlsx file ({err})") from None
    try:
        ws = wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def _cell_text(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        # repr is the shortest text that reads back as the same float: what was typed.
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime | date):
        if column == "period":
            return f"{value.year}-{value.month:02d}"
        return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()
    if column in NUMBER_COLUMNS:
        return str(value)  # the money grammar has no spaces: " 100.00" is refused, not trimmed
    return str(value).strip()


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]],
                fmt: str | None = None, *, money_columns: Sequence[str] = ()) -> None:
    """Write ``rows`` under ``header``; Decimal cells stay exact (text in CSV, numbers in XLSX)."""
    kind = format_of(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for r in rows:
                writer.writerow(["" if v is None else v for v in r])
        return
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "budgets"
    ws.append(list(header))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    money_idx = {i for i, h in enumerate(header) if h in money_columns}
    for r in rows:
        ws.append(list(r))
        if money_idx:
            for i in money_idx:
                ws.cell(row=ws.max_row, column=i + 1).number_format = "#,##0.00"
    ws.freeze_panes = "A2"
    wb.save(path)
