"""Structured JSON logs with request and document ids.

:func:`setup` installs a :class:`JsonFormatter` on the root logger (one JSON object
per line: ``ts``, ``level``, ``logger``, ``message``, plus ``request_id``,
``document``, ``message_id``, ``target`` when set, plus anything passed in
``extra=``). Ids travel in context variables, so code deep inside a delivery logs
them without passing them around: wrap work in :func:`document_context` (the
dispatcher does) or set ``request_id`` (the web app can, per HTTP request).

``YINFIN_LOG_FORMAT=text`` keeps the plain format for a developer's terminal;
``YINFIN_LOG_LEVEL`` sets the level (default INFO).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "yinfin_log", default=None)


def current_ids() -> dict[str, Any]:
    """The ids bound in this context (a copy)."""
    return dict(_context.get() or {})

# attributes every LogRecord has; anything else came in through extra=
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextmanager
def document_context(document: str | None = None, **ids: Any) -> Iterator[None]:
    """Add ``document`` (e.g. "voucher:17") and other ids to every log line inside."""
    new = {**current_ids(), **({"document": document} if document else {}), **ids}
    token = _context.set(new)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add ids (e.g. ``request_id``) for the rest of this context; returns a reset token."""
    return _context.set({**current_ids(), **ids})


def reset(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Undo a :func:`bind`."""
    try:
        _context.reset(token)
    except ValueError:  # bound in another context (a thread handed over): just clear
        _context.set(None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; non-JSON values are written with ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(current_ids())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def setup(level: str | None = None, fmt: str | None = None) -> None:
    """Configure the root logger once (the worker, beat and ``serve`` call this)."""
    root = logging.getLogger()
    if any(getattr(h, "_yinfin", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._yinfin = True  # type: ignore[attr-defined]
    if (fmt or os.environ.get("YINFIN_LOG_FORMAT", "json")) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("YINFIN_LOG_LEVEL") or "INFO").upper())
