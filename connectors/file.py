"""File drop for ERPs without an API: the voucher import layout (CSV / XLSX) plus beancount.

Each voucher is written to YINFIN_FILE_DIR as ``<name>.csv`` (and ``.xlsx`` /
``.beancount`` when listed in YINFIN_FILE_FORMATS, default ``csv,xlsx,beancount``),
where ``<name>`` is the idempotency key made file-safe plus a short hash of the exact
key (so ``je:1`` and ``je_1`` never share a file). A re-delivery writes the same
name again, replacing the file atomically (temp file + rename), so an ERP import job
watching the folder never sees a half-written or a duplicate voucher. The columns
are the ledger's :data:`yinfin_flow.ledger.exports.VOUCHER_COLUMNS` and the writers
are the ledger's own export functions.

The voucher number returned is ``<name>``; :meth:`FileConnector.read_voucher` reads
the CSV back by that name or by the key.

Master data: an ERP without an API can drop ``masterdata/<kind>.csv`` (columns
``code,name,active,modified``; ``modified`` ISO 8601) into the same folder;
``changed_master_data`` returns rows with ``modified`` after the watermark.

Settings: YINFIN_FILE_DIR, YINFIN_FILE_FORMATS.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from yinfin_flow.ledger.exports import VoucherRow, to_beancount, to_csv, write_xlsx

from .base import MASTER_DATA_KINDS, PermanentError, RetryableError, Voucher, VoucherLine

NAME = "file"
SETTINGS = ("YINFIN_FILE_DIR",)
FORMATS = ("csv", "xlsx", "beancount")


def file_name(key: str) -> str:
    """At most 64 characters: it is the voucher number, kept in journal_syncs.erp_voucher_id."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:55] or "voucher"
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def voucher_rows_of(v: Voucher, key: str) -> list[VoucherRow]:
    """A :class:`Voucher` in the ledger export's row shape (so its writers can be reused)."""
    digits = re.findall(r"\d+", v.number or "")
    number = int(digits[-1]) if digits else 0
    rows = []
    for i, ln in enumerate(v.lines, start=1):
        signed = ln.amount if ln.debit or not ln.credit else -ln.amount
        rows.append(VoucherRow(
            entry_id=0, voucher=v.number or key, word=v.word, number=number,
            period=v.date.strftime("%Y-%m"), posting_date=v.date, summary=v.memo, key=key,
            document=None, reverses_id=None, posted_by="yinfin-flow",
            base_currency=v.currency, line_no=i, kind="normal", account_code=ln.account,
            account_erp_code=ln.account, account_name=ln.account_name or ln.account,
            account_type=ln.account_type, debit=ln.debit, credit=ln.credit,
            currency=ln.currency, amount=signed, rate=ln.rate, cost_centre=ln.cost_centre,
            project=ln.project, partner=ln.partner, memo=ln.memo or None))
    return rows


class FileConnector:
    name = NAME
    master_data_kinds = MASTER_DATA_KINDS

    def __init__(self, *, directory: str | Path, formats: str = "csv,xlsx,beancount") -> None:
        self.dir = Path(directory)
        self.formats = [f.strip() for f in formats.split(",") if f.strip()]
        if bad := [f for f in self.formats if f not in FORMATS]:
            raise ValueError(f"unknown formats {bad}; choose from {FORMATS}")
        if "csv" not in self.formats:
            self.formats.insert(0, "csv")  # the read-back needs it

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> FileConnector:
        return cls(directory=s["YINFIN_FILE_DIR"],
                   formats=s.get("YINFIN_FILE_FORMATS") or "csv,xlsx,beancount")

    def _atomic(self, path: Path, write: Callable[[Path], object]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def post_voucher(self, voucher: Voucher, idempotency_key: str) -> str:
        name = file_name(idempotency_key)
        rows = voucher_rows_of(voucher, idempotency_key)
        writers: dict[str, Callable[[Path], object]] = {
            "csv": lambda p: p.write_text(to_csv(rows), encoding="utf-8-sig"),
            "xlsx": lambda p: write_xlsx(rows, p),
            "beancount": lambda p: p.write_text(to_beancount(rows, voucher.company or "yinfin"),
                                                encoding="utf-8"),
        }
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for fmt in self.formats:
                self._atomic(self.dir / f"{name}.{fmt}", writers[fmt])
        except OSError as err:  # a full disk or a vanished share may come back
            raise RetryableError(f"cannot write {self.dir}: {err}", connector=NAME) from err
        return name

    def read_voucher(self, number_or_key: str) -> Voucher | None:
        for stem in (number_or_key, file_name(number_or_key)):
            path = self.dir / f"{stem}.csv"
            if path.is_file():
                return self._read_csv(path, stem)
        return None

    @staticmethod
    def _read_csv(path: Path, stem: str) -> Voucher:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        lines = tuple(VoucherLine(
            account=r["科目编码"], debit=Decimal(r["借方"]), credit=Decimal(r["贷方"]),
            currency=r["币别"], amount=Decimal(r["原币金额"]), rate=Decimal(r["汇率"]),
            memo=r["摘要"], cost_centre=r["核算项目-部门"] or None,
            project=r["核算项目-项目"] or None, partner=r["核算项目-往来单位"] or None,
            account_name=r["科目名称"]) for r in rows)
        first = rows[0]
        return Voucher(company="", date=date.fromisoformat(first["凭证日期"]), memo=lines[0].memo,
                       lines=lines, word=first["凭证字"], number=stem, key=first["参考信息"])

    def keyed_vouchers(self, start: date, end: date) -> list[tuple[str, str]]:
        """(key, voucher number) of every voucher file dated ``start`` … ``end``: what
        reconciliation checks for vouchers the ERP holds that we do not."""
        found = []
        for path in sorted(self.dir.glob("*.csv")) if self.dir.is_dir() else ():
            with path.open(encoding="utf-8-sig", newline="") as fh:
                first = next(csv.DictReader(fh), None)
            if first and first.get("参考信息") and start <= date.fromisoformat(first["凭证日期"]) <= end:
                found.append((first["参考信息"], path.stem))
        return found

    def changed_master_data(self, kind: str, watermark: str | None
                            ) -> tuple[list[dict[str, Any]], str | None]:
        if kind not in MASTER_DATA_KINDS:
            raise PermanentError(f"unknown master data kind {kind!r}", connector=NAME)
        path = self.dir / "masterdata" / f"{kind}.csv"
        if not path.is_file():
            return [], watermark
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("modified", "") > (watermark or "")]
        rows.sort(key=lambda r: (r["modified"], r["code"]))
        records: list[dict[str, Any]] = [
            {**r, "active": r.get("active", "true").strip().lower() not in ("0", "false", "no")}
            for r in rows]
        return records, (str(records[-1]["modified"]) if records else watermark)
