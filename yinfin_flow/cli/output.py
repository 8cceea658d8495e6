"""How every ``yinfin-flow`` command speaks: ``--format``, ``-o -``, progress, exit codes.

- :func:`format_option` and :func:`emit` / :func:`emit_one`: every list and show command
  prints a table (header row, lined up), CSV (header row) or JSON (an array of objects
  for a list, one object for a show). Amounts are strings in JSON and CSV, never floats.
- :func:`output_path`: ``-o -`` means standard output.
- :func:`progress` / :func:`working`: a progress bar (or a one-line status) on standard
  error when it is a terminal, nothing when it is piped or redirected.
- :data:`EXIT_CODES`: 0 ok, 1 error, 2 usage, 3 differences found.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import table

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

OK, ERROR, USAGE, DIFFERENCES = 0, 1, 2, 3
EXIT_CODES = """\b
Exit codes:
  0  ok
  1  error (refused, not found, bad input file, database unreachable); on stderr
  2  usage (unknown option, missing --actor, bad value); on stderr
  3  differences found (verify, reconcile)"""

FORMATS = ("table", "json", "csv")


def format_option(fn: F) -> F:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="table (aligned, header row), csv (header row) or json.")(fn)


def json_option(fn: F) -> F:
    """``--json``: kept for scripts written before ``--format``; the same as ``--format json``."""
    return click.option("--json", "as_json", is_flag=True, hidden=True)(fn)


def plain(value: Any) -> Any:
    """A value as JSON and CSV carry it: amounts and dates as strings, never floats."""
    if isinstance(value, (Decimal, float)):  # a float is no amount: shown as written, never as a number
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_json(data: Any) -> str:
    return json.dumps(plain(data), ensure_ascii=False, indent=2)


@dataclass(frozen=True)
class Col:
    """One column: its key (JSON and CSV), its table title, and how the table shows it."""

    key: str
    title: str | None = None
    right: bool = False
    shown: Callable[[Any, Mapping[str, Any]], str] | None = None

    def text(self, row: Mapping[str, Any]) -> str:
        value = row.get(self.key)
        if self.shown is not None:
            return self.shown(value, row)
        if value is None:
            return ""
        return str(plain(value))


def _csv_cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(rows: Sequence[Mapping[str, Any]], cols: Sequence[Col], fmt: str) -> str:
    """``rows`` as a table, CSV or a JSON array (only the columns' keys, in their order)."""
    if fmt == "json":
        return to_json([{c.key: row.get(c.key) for c in cols} for row in rows])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c.key for c in cols])
        for row in rows:
            w.writerow([_csv_cell(row.get(c.key)) for c in cols])
        return buf.getvalue().rstrip("\n")
    return table([c.title or c.key for c in cols], [[c.text(r) for c in cols] for r in rows],
                 right=[i for i, c in enumerate(cols) if c.right])


def emit(rows: Sequence[Mapping[str, Any]], cols: Sequence[Col], fmt: str) -> None:
    click.echo(render(rows, cols, fmt))


def emit_one(obj: Mapping[str, Any], fmt: str, cols: Sequence[Col] | None = None) -> None:
    """One thing shown: a JSON object; a one-row CSV with a header; a field/value table."""
    if fmt == "json":
        click.echo(to_json(obj))
        return
    cols = cols or [Col(k) for k in obj]
    if fmt == "csv":
        click.echo(render([obj], cols, "csv"))
        return
    click.echo(table(["field", "value"], [[c.title or c.key, c.text(obj)] for c in cols]))


def output_path(fn: F) -> F:
    """``-o/--output FILE``; ``-`` writes to standard output."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                        required=True, help="File to write; - for standard output.")(fn)


def is_stdout(path: Path) -> bool:
    return str(path) == "-"


def write_stdout(data: bytes) -> None:
    """A file's bytes, as they are, to standard output (``-o -``)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress(items: Iterable[T], label: str, length: int | None = None) -> Iterator[T]:
    """``items`` one by one, with a bar on a terminal's standard error; plain when piped."""
    if not stderr_is_terminal():
        yield from items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr,
                           show_pos=True) as bar:
        yield from bar


@contextmanager
def working(label: str) -> Iterator[None]:
    """One step without parts to count: ``label…`` then ``done`` on a terminal; silent when piped."""
    if not stderr_is_terminal():
        yield
        return
    started = time.monotonic()
    click.echo(f"{label}…", err=True, nl=False)
    try:
        yield
    except BaseException:
        click.echo(" failed", err=True)
        raise
    click.echo(f" done ({time.monotonic() - started:.1f} s)", err=True)
