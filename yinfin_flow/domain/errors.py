"""Domain errors: one base class, each with a stable ``code`` callers can rely on.

The HTTP layer maps every :class:`DomainError` to one JSON shape
(``code``, ``message``, ``details``); the CLI prints the same fields.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule said no. ``code`` is stable; ``message`` is for people."""

    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(DomainError):
    """Input is malformed. ``details['field']`` names the field at fault."""

    code = "validation_error"
    http_status = 422

    def __init__(self, field: str, problem: str, **details: Any) -> None:
        super().__init__(f"{field}: {problem}", field=field, problem=problem, **details)


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    """The thing changed under the caller (stale version, already decided…)."""

    code = "conflict"
    http_status = 409
