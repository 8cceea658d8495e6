"""Input limits: sizes a finance user never reaches and an attacker always does.

Every door (the HTTP API, the signed OA webhook, CLI files, imports) checks its input
against one :class:`Limits` before anything parses it deeply, so a hostile input is a
4xx naming the field, never a ``RecursionError`` or a 6 MB answer:

- :func:`check_json_text` scans JSON text *without* building it (no recursion, one
  pass, stops at the first excess): nesting depth and string length, with the path of
  the offending field (``form.lines[3].memo``);
- :func:`check_value` does the same for data already parsed (an OA event's form after
  decryption, a YAML or JSON file read by the CLI), iteratively;
- :func:`check_lines` bounds the lines of one request.

Pure Python: the settings that fill a :class:`Limits` live in :mod:`yinfin_flow.config`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import DomainError, ValidationError


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one deployment enforces (``YINFIN_MAX_*``; see the README's table)."""

    #: bytes of one HTTP body (API and OA webhook)
    max_body_bytes: int = 1_048_576
    #: nesting of arrays and objects in one JSON document (a request's form is 4 deep)
    max_json_depth: int = 32
    #: characters of one string value or key
    max_string_length: int = 10_000
    #: lines of one request (a year of a travelling salesperson's receipts is ~600)
    max_request_lines: int = 1_000
    #: bytes of one file given to the CLI or an import
    max_file_bytes: int = 52_428_800


DEFAULT_LIMITS = Limits()


class TooLarge(DomainError):
    """A body or file past its byte limit (HTTP 413)."""

    code = "payload_too_large"
    http_status = 413


def check_size(size: int | None, limit: int, field: str = "body") -> None:
    """Raise :class:`TooLarge` when ``size`` (bytes) is over ``limit``."""
    if size is not None and size > limit:
        raise TooLarge(f"{field} is {size} bytes; the limit is {limit}", field=field,
                       limit=limit, size=size)


def _path(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _under(root: str, parts: list[str | int]) -> str:
    tail = _path(parts)
    if not root:
        return tail or "body"
    if not tail:
        return root
    return root + tail if tail.startswith("[") else f"{root}.{tail}"


# A string token (escapes included; an unterminated one runs to the end, so a
# malformed body costs one pass, never one pass per quote) or a structural character.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}:,]', re.S)


def _string_length(token: str) -> int:
    """Characters of a JSON string token (escapes counted once each)."""
    if "\\" not in token:
        return len(token) - 2 if token.endswith('"') and len(token) > 1 else len(token) - 1
    try:
        return len(json.loads(token))
    except ValueError:
        return len(token)


def _key(token: str) -> str:
    try:
        key = json.loads(token)
    except ValueError:
        return token.strip('"')
    return key if isinstance(key, str) else str(key)


def check_json_text(text: str | bytes, limits: Limits = DEFAULT_LIMITS, *, root: str = "",
                    strings: bool = True) -> None:
    """Refuse JSON text nested deeper than ``max_json_depth`` or holding a string longer
    than ``max_string_length`` (``strings=False`` skips the second), with a
    :class:`ValidationError` naming the field. Malformed JSON passes: the parser
    refuses it afterwards with its own message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # Nothing to find in the common small body: cheap counts settle it.
    if (not strings or len(text) <= limits.max_string_length) and (
            text.count("[") + text.count("{") <= limits.max_json_depth):
        return
    # frames: [container kind, current key or index, expecting a key]
    stack: list[list[Any]] = []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == '"':
            top = stack[-1] if stack else None
            if top is not None and top[0] == "{" and top[2]:
                if strings and _string_length(tok) > limits.max_string_length:
                    raise ValidationError(_under(root, [f[1] for f in stack[:-1] if f[1] is not None]),
                                          f"has a key longer than {limits.max_string_length} characters")
                top[1] = _key(tok)
            elif strings and _string_length(tok) > limits.max_string_length:
                raise ValidationError(_under(root, [f[1] for f in stack if f[1] is not None]),
                                      f"longer than {limits.max_string_length} characters")
        elif c in "[{":
            if len(stack) >= limits.max_json_depth:
                raise ValidationError(_under(root, [f[1] for f in stack if f[1] is not None]),
                                      f"nested deeper than {limits.max_json_depth} levels")
            stack.append([c, 0 if c == "[" else None, c == "{"])
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack:
                top = stack[-1]
                if top[0] == "[":
                    top[1] += 1
                else:
                    top[2] = True
        elif c == ":" and stack:
            stack[-1][2] = False


def check_value(value: Any, limits: Limits = DEFAULT_LIMITS, *, root: str = "") -> None:
    """:func:`check_json_text` for data already parsed (iterative: any depth is safe)."""
    todo: list[tuple[Any, list[str | int]]] = [(value, [])]
    while todo:
        node, parts = todo.pop()
        if isinstance(node, str):
            if len(node) > limits.max_string_length:
                raise ValidationError(_under(root, parts),
                                      f"longer than {limits.max_string_length} characters")
            continue
        if isinstance(node, (Mapping, list, tuple)) and len(parts) >= limits.max_json_depth:
            raise ValidationError(_under(root, parts[:-1]) if parts else _under(root, parts),
                                  f"nested deeper than {limits.max_json_depth} levels")
        if isinstance(node, Mapping):
            for k, v in node.items():
                key = str(k)
                if len(key) > limits.max_string_length:
                    raise ValidationError(_under(root, parts),
                                          f"has a key longer than {limits.max_string_length} characters")
                todo.append((v, [*parts, key]))
        elif isinstance(node, (list, tuple)):
            todo.extend((v, [*parts, i]) for i, v in enumerate(node))


def check_cells(rows: list[tuple[int, dict[str, str]]], limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a table (row number, column → text) holding a cell longer than
    ``max_string_length``, naming the row and the column."""
    for number, cells in rows:
        for column, text in cells.items():
            if len(text) > limits.max_string_length:
                raise ValidationError(f"row {number}, {column}",
                                      f"longer than {limits.max_string_length} characters")


def check_lines(count: int, limits: Limits = DEFAULT_LIMITS, field: str = "form.lines") -> None:
    """Refuse a request with more than ``max_request_lines`` lines."""
    if count > limits.max_request_lines:
        raise ValidationError(field, f"has {count} lines; at most {limits.max_request_lines} "
                              "are accepted in one request (split it)")
