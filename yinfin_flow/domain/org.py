"""Organisation rules that need no database: ids, roles, delegation overlap, manager
cycles, and the users CSV format (checked row by row before the directory sees it).

The directory service (:mod:`yinfin_flow.engine.directory`) and the approver resolver
(:mod:`yinfin_flow.engine.approvers`) apply these to stored users.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .errors import ValidationError

#: A login: what people type ("amy", "zhang.wei", "e1024"); also OA user ids mapped to it.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

#: Roles are free strings so approver rules can name business roles ("dept_head", "cfo").
ROLE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")

#: The roles the API's authorization knows; any other valid name is a business role.
SYSTEM_ROLES = ("employee", "approver", "finance", "admin")

#: Business roles the shipped workflow definitions use (documentation, not a whitelist).
BUSINESS_ROLES = ("dept_head", "finance_reviewer", "gm", "cfo", "override_authority")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = {"", "1", "true", "yes", "y", "t", "active"}
_FALSE = {"0", "false", "no", "n", "f", "inactive"}


def check_user_id(value: object, field: str = "user") -> str:
    """``value`` stripped, if it is a valid login; else :class:`ValidationError` on ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "a user id is required")
    v = value.strip()
    if not USER_ID.match(v):
        raise ValidationError(
            field, f"{value!r} is not a user id (letters, digits, '.', '_', '@', '-'; up to 64)"
        )
    return v


def check_role(value: object, field: str = "role") -> str:
    if not isinstance(value, str) or not ROLE.match(value.strip()):
        raise ValidationError(
            field, f"{value!r} is not a role name (lower case letters, digits and '_', 2 to 64)"
        )
    return value.strip()


def check_email(value: str | None, field: str = "email") -> str | None:
    if value is None or not value.strip():
        return None
    if not _EMAIL.match(value.strip()):
        raise ValidationError(field, f"{value!r} is not an e-mail address")
    return value.strip()


def parse_active(value: str | None, field: str = "active") -> bool:
    """CSV truth: empty means active (a new row is an active person)."""
    v = (value or "").strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValidationError(field, f"{value!r} is not true/false (use 1/0, true/false, yes/no)")


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role held by a user in a company; ``department`` None means company-wide."""

    role: str
    department: str | None = None

    def __str__(self) -> str:
        return self.role if self.department is None else f"{self.role}@{self.department}"


def parse_roles(value: str | None, field: str = "roles") -> list[RoleGrant]:
    """Parse a CSV roles cell: ``employee;finance_reviewer@FIN;gm``.

    ``role`` is company-wide; ``role@DEPT`` holds the role for department ``DEPT`` only.
    Duplicates collapse; order is kept.
    """
    out: list[RoleGrant] = []
    for raw in (value or "").split(";"):
        token = raw.strip()
        if not token:
            continue
        role, _, dept = token.partition("@")
        grant = RoleGrant(check_role(role, field), dept.strip() or None)
        if "@" in token and grant.department is None:
            raise ValidationError(field, f"{token!r}: name a department after '@'")
        if grant not in out:
            out.append(grant)
    return out


@dataclass(frozen=True, slots=True)
class Period:
    """A delegation's validity: both ends inclusive; ``workflow`` None means every workflow."""

    start: date
    end: date
    workflow: str | None = None

    def overlaps(self, other: Period) -> bool:
        same_scope = self.workflow is None or other.workflow is None or self.workflow == other.workflow
        return same_scope and self.start <= other.end and other.start <= self.end

    def covers(self, on: date, workflow: str | None) -> bool:
        in_scope = self.workflow is None or self.workflow == workflow
        return in_scope and self.start <= on <= self.end


def manager_cycles(managers: Mapping[str, str | None]) -> list[list[str]]:
    """Every cycle in a ``user -> manager`` map, each as the users on it (sorted, deduplicated).

    A manager chain that loops would make "the manager N levels up" meaningless, so the
    directory refuses any change that creates one.
    """
    seen: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(managers):
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in seen:
            if node in on_path:
                cycle = path[path.index(node):]
                cycles.append(sorted(cycle))
                break
            path.append(node)
            on_path.add(node)
            node = managers.get(node)
        seen.update(path)
    return cycles


# --------------------------------------------------------------------------- CSV rows

REQUIRED_COLUMNS = ("id", "name", "company")
OPTIONAL_COLUMNS = ("email", "department", "manager", "roles", "active")
EXTERNAL_ID_COLUMNS = ("dingtalk_userid", "feishu_open_id", "wecom_userid")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + EXTERNAL_ID_COLUMNS


@dataclass
class UserSpec:
    """One user as an import or the API describes them (codes, not database ids)."""

    id: str
    name: str
    company: str
    department: str | None = None
    manager: str | None = None
    email: str | None = None
    active: bool = True
    roles: list[RoleGrant] | None = None  # None: leave the user's roles as they are
    external: dict[str, str | None] = field(default_factory=dict)


def row_error(line: int, field: str, problem: str) -> dict[str, Any]:
    return {"row": line, "column": field, "problem": problem}


def _spec_from_row(row: Mapping[str, str], line: int, errors: list[dict[str, Any]]) -> UserSpec | None:
    before = len(errors)

    def field_value(name: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValidationError as err:
            errors.append(row_error(line, name, err.details["problem"]))
            return None

    uid = field_value("id", check_user_id, row.get("id", ""), "id")
    name = row.get("name", "")
    if not name:
        errors.append(row_error(line, "name", "a name is required"))
    elif len(name) > 200:
        errors.append(row_error(line, "name", "longer than 200 characters"))
    company = row.get("company", "")
    if not company:
        errors.append(row_error(line, "company", "a company code is required"))
    email = field_value("email", check_email, row.get("email") or None, "email")
    manager = row.get("manager") or None
    if manager is not None:
        manager = field_value("manager", check_user_id, manager, "manager")
    roles = field_value("roles", parse_roles, row.get("roles", ""), "roles")
    active = field_value("active", parse_active, row.get("active", ""), "active")
    external: dict[str, str | None] = {}
    for col in EXTERNAL_ID_COLUMNS:
        if col in row:
            value = row[col] or None
            if value is not None and len(value) > 64:
                errors.append(row_error(line, col, "longer than 64 characters"))
            external[col] = value
    if len(errors) > before:
        return None
    return UserSpec(id=uid, name=name, company=company, department=row.get("department") or None,
                    manager=manager, email=email, active=bool(active), roles=roles or [],
                    external=external)


def parse_users_csv(text: str) -> tuple[list[tuple[int, UserSpec]], list[dict[str, Any]]]:
    """Parse a users CSV into ``(row number, spec)`` pairs and every row error found.

    Only the file's own rules are checked here (columns, ids, roles, flags); whether
    companies, departments and managers exist is the directory's job. A header problem
    is reported alone (row 1, column ``header``) with no specs.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    errors: list[dict[str, Any]] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing:
        errors.append(row_error(1, "header", f"missing column(s): {', '.join(missing)}"))
    if unknown:
        errors.append(row_error(1, "header", f"unknown column(s): {', '.join(unknown)} (known: {', '.join(COLUMNS)})"))
    if errors:
        return [], errors
    specs: list[tuple[int, UserSpec]] = []
    for raw in reader:
        line = reader.line_num  # the row number a spreadsheet shows (header = 1)
        if None in raw:
            errors.append(row_error(line, "row", "more values than columns"))
            continue
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str | None)}
        if not any(row.values()):
            continue  # a row of empty cells is not a user
        spec = _spec_from_row(row, line, errors)
        if spec is not None:
            specs.append((line, spec))
    return specs, errors
