"""The organisation directory: users, their managers, roles and delegations, as data.

Every function works in the caller's session (one unit of work per action). Users are
never deleted, only deactivated: requests, tasks and the audit trail keep naming them.

CSV import (``yinfin-flow org import users.csv``) takes the columns

    id,name,email,company,department,manager,roles,active[,dingtalk_userid,feishu_open_id,wecom_userid]

``id``, ``name`` and ``company`` are required; ``roles`` is ``;``-separated, each
``role`` (company-wide) or ``role@DEPT`` (held for one department); ``active`` is
1/0, true/false or yes/no (empty: active). Every bad row is reported at once, with its
row number (header = 1) and column, and nothing is written if any row is bad. Users already in
the directory are updated (their roles replaced by the file's); users missing from the
file are left alone unless ``deactivate_missing`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import Company, CostCentre
from yinfin_flow.db.models.org import Delegation, User, UserRole
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError
from yinfin_flow.domain.org import (
    Period,
    RoleGrant,
    UserSpec,
    check_role,
    manager_cycles,
    parse_users_csv,
    row_error,
)


class ImportRejected(ValidationError):
    """The file had bad rows; ``details['errors']`` lists each as {row, column, problem}.

    ``row`` is the row number a spreadsheet shows (the header is row 1), the same shape
    the budget import uses.
    """

    code = "import_rejected"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        DomainError.__init__(
            self,
            f"{len(errors)} problem(s) in the file; nothing was imported",
            field="file",
            errors=errors,
        )
        self.errors = errors


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.deactivated)} deactivated"
        )


# --------------------------------------------------------------------------- lookups


def get_user(session: Session, user_id: str, field: str = "user") -> User:
    """The user (active or not); :class:`NotFound` naming ``field`` if there is none."""
    row = session.get(User, user_id)
    if row is None:
        raise NotFound(f"no user {user_id!r}", field=field)
    return row


def company_by_code(session: Session, code: str, field: str = "company") -> Company:
    row = session.scalar(select(Company).where(Company.code == code))
    if row is None:
        raise ValidationError(field, f"unknown company {code!r}")
    return row


def department_by_code(session: Session, company_id: int, code: str, field: str = "department") -> CostCentre:
    row = session.scalar(
        select(CostCentre).where(CostCentre.company_id == company_id, CostCentre.code == code)
    )
    if row is None:
        raise ValidationError(field, f"unknown department {code!r}")
    return row


def user_by_external_id(session: Session, system: str, external_id: str) -> User | None:
    """The user an OA system knows as ``external_id`` (``system``: dingtalk, feishu, wecom)."""
    column = {"dingtalk": User.dingtalk_userid, "feishu": User.feishu_open_id, "wecom": User.wecom_userid}
    if system not in column:
        raise ValidationError("system", "must be dingtalk, feishu or wecom")
    return session.scalar(select(User).where(column[system] == external_id))


def roles_of(session: Session, user_id: str) -> list[RoleGrant]:
    rows = session.execute(
        select(UserRole.role, CostCentre.code)
        .outerjoin(CostCentre, CostCentre.id == UserRole.cost_centre_id)
        .where(UserRole.user_id == user_id)
        .order_by(UserRole.role, CostCentre.code)
    ).all()
    return [RoleGrant(role, dept) for role, dept in rows]


def user_context(session: Session, user_id: str) -> dict[str, Any]:
    """The user as routing conditions see them (``requester.department``, ``requester.roles``).

    ``roles`` lists role names (scoped or not); ``role_grants`` keeps ``role@DEPT`` forms.
    An unknown user gives ``{"id": user_id}`` so conditions on other fields are false.
    """
    user = session.get(User, user_id)
    if user is None:
        return {"id": user_id}
    company = session.get(Company, user.company_id)
    dept = session.get(CostCentre, user.cost_centre_id) if user.cost_centre_id else None
    grants = roles_of(session, user_id)
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "company": company.code if company else None,
        "department": dept.code if dept else None,
        "manager": user.manager_id,
        "active": user.active,
        "roles": sorted({g.role for g in grants}),
        "role_grants": [str(g) for g in grants],
    }


def listing(session: Session, company: str | None = None) -> list[dict[str, Any]]:
    """Every user (sorted by id) with department, manager and roles, for ``org show``."""
    stmt = (
        select(User, Company.code, CostCentre.code)
        .join(Company, Company.id == User.company_id)
        .outerjoin(CostCentre, CostCentre.id == User.cost_centre_id)
        .order_by(User.id)
    )
    if company is not None:
        stmt = stmt.where(Company.code == company)
    out = []
    for user, company_code, dept in session.execute(stmt).all():
        out.append({
            "id": user.id, "name": user.name, "email": user.email, "company": company_code,
            "department": dept, "manager": user.manager_id, "active": user.active,
            "roles": [str(g) for g in roles_of(session, user.id)],
        })
    return out


# --------------------------------------------------------------------------- changes


def upsert_user(session: Session, spec: UserSpec, *, actor: str) -> User:
    """Create or update one user; the first problem is raised as a :class:`ValidationError`."""
    errors = _Checker(session).check([(0, spec)])
    if errors:
        first = errors[0]
        raise ValidationError(first["column"], first["problem"])
    return _apply(session, [spec], actor)[0]


def set_active(session: Session, user_id: str, active: bool) -> User:
    """Deactivate (or reactivate) a user. Nobody is ever deleted."""
    user = get_user(session, user_id)
    user.active = active
    user.updated_at = utcnow()
    session.flush()
    return user


def grant_role(session: Session, user_id: str, role: str, *, department: str | None = None,
               actor: str) -> UserRole:
    """Give ``role`` to a user in their company (company-wide, or for ``department``)."""
    user = get_user(session, user_id)
    role = check_role(role)
    cc_id = department_by_code(session, user.company_id, department).id if department else None
    key = _scope_key(user.company_id, cc_id)
    existing = session.scalar(
        select(UserRole).where(UserRole.user_id == user_id, UserRole.role == role, UserRole.scope_key == key)
    )
    if existing is not None:
        return existing
    row = UserRole(user_id=user_id, role=role, company_id=user.company_id, cost_centre_id=cc_id,
                   scope_key=key, granted_by=actor, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def revoke_role(session: Session, user_id: str, role: str, *, department: str | None = None) -> bool:
    """Take ``role`` away; returns whether the user held it."""
    user = get_user(session, user_id)
    cc_id = department_by_code(session, user.company_id, department).id if department else None
    row = session.scalar(
        select(UserRole).where(
            UserRole.user_id == user_id, UserRole.role == check_role(role),
            UserRole.scope_key == _scope_key(user.company_id, cc_id),
        )
    )
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def delegate(session: Session, user_id: str, deputy_id: str, start: date, end: date, *,
             workflow: str | None = None, reason: str | None = None, actor: str | None = None) -> Delegation:
    """``user_id`` hands their approval tasks to ``deputy_id`` for ``start``..``end`` (inclusive).

    Refused: a deputy who is the user, unknown or inactive; ``end`` before ``start``; and
    a period overlapping another live delegation of the same user for the same workflow
    (or for all workflows): at any moment a user has at most one deputy per workflow.
    """
    get_user(session, user_id, "user")
    deputy = get_user(session, deputy_id, "deputy")
    if deputy_id == user_id:
        raise ValidationError("deputy", "a user cannot be their own deputy")
    if not deputy.active:
        raise ValidationError("deputy", f"{deputy_id!r} is inactive")
    if end < start:
        raise ValidationError("end", "must be on or after start")
    if workflow is not None and not workflow.strip():
        raise ValidationError("workflow", "name a workflow or leave it empty for all")
    # Lock the user's row so two overlapping delegations made at once cannot both pass.
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    wanted = Period(start, end, workflow)
    for other in live_delegations(session, user_id):
        if wanted.overlaps(Period(other.start_date, other.end_date, other.workflow)):
            raise Conflict(
                f"{user_id} already delegates to {other.deputy_id} from {other.start_date} "
                f"to {other.end_date}" + (f" for {other.workflow}" if other.workflow else ""),
                field="start", delegation_id=other.id,
            )
    row = Delegation(user_id=user_id, deputy_id=deputy_id, start_date=start, end_date=end,
                     workflow=workflow, reason=reason, created_by=actor or user_id,
                     created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def live_delegations(session: Session, user_id: str) -> list[Delegation]:
    return list(session.scalars(
        select(Delegation)
        .where(Delegation.user_id == user_id, Delegation.revoked_at.is_(None))
        .order_by(Delegation.start_date, Delegation.id)
    ))


def revoke_delegation(session: Session, delegation_id: int) -> Delegation:
    row = session.get(Delegation, delegation_id)
    if row is None:
        raise NotFound(f"no delegation {delegation_id}", field="delegation_id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


# --------------------------------------------------------------------------- CSV import


def import_users_csv(session: Session, source: str | TextIO, *, actor: str,
                     deactivate_missing: bool = False) -> ImportResult:
    """Import users from CSV text or an open text file; all rows or none (see module doc)."""
    text = source if isinstance(source, str) else source.read()
    specs, errors = parse_users_csv(text)
    if errors and not specs and errors[0]["column"] == "header":
        raise ImportRejected(errors)
    return import_users(session, specs, actor=actor, deactivate_missing=deactivate_missing,
                        parse_errors=errors)


def import_users(session: Session, specs: list[tuple[int, UserSpec]], *, actor: str,
                 deactivate_missing: bool = False,
                 parse_errors: list[dict[str, Any]] | None = None) -> ImportResult:
    """Import ``(row, spec)`` pairs (from a file, or an OA directory sync); all or none.

    Every problem is collected first and raised together as :class:`ImportRejected`;
    ``row`` is whatever the caller uses to point at a record (a CSV row, a list index).
    """
    errors = list(parse_errors or []) + _Checker(session).check(specs)
    if not specs and not errors:
        errors.append(row_error(1, "file", "no users in the file"))
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: (e["row"], e["column"])))
    result = ImportResult()
    existing = set(session.scalars(select(User.id).where(User.id.in_([s.id for _, s in specs]))))
    _apply(session, [s for _, s in specs], actor)
    for _, s in specs:
        (result.updated if s.id in existing else result.created).append(s.id)
    if deactivate_missing:
        companies = {s.company for _, s in specs}
        ids = {s.id for _, s in specs}
        for user in session.scalars(
            select(User).join(Company, Company.id == User.company_id)
            .where(Company.code.in_(companies), User.active.is_(True)).order_by(User.id)
        ):
            if user.id not in ids:
                user.active = False
                user.updated_at = utcnow()
                result.deactivated.append(user.id)
        session.flush()
    return result


class _Checker:
    """Checks specs against each other and the database; returns every problem found."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._companies: dict[str, Company | None] = {}
        self._depts: dict[tuple[int, str], CostCentre | None] = {}

    def company(self, code: str) -> Company | None:
        if code not in self._companies:
            self._companies[code] = self.session.scalar(select(Company).where(Company.code == code))
        return self._companies[code]

    def dept(self, company_id: int, code: str) -> CostCentre | None:
        key = (company_id, code)
        if key not in self._depts:
            self._depts[key] = self.session.scalar(
                select(CostCentre).where(CostCentre.company_id == company_id, CostCentre.code == code)
            )
        return self._depts[key]

    def check(self, specs: Iterable[tuple[int, UserSpec]]) -> list[dict[str, Any]]:
        specs = list(specs)
        errors: list[dict[str, Any]] = []
        first_line: dict[str, int] = {}
        in_file = {s.id for _, s in specs}
        known = in_file | set(self.session.scalars(
            select(User.id).where(User.id.in_({s.manager for _, s in specs if s.manager}))
        ))
        taken: dict[tuple[str, str], str] = {}
        for line, s in specs:
            if s.id in first_line:
                errors.append(row_error(line, "id", f"{s.id!r} appears twice (first on line {first_line[s.id]})"))
                continue
            first_line[s.id] = line
            comp = self.company(s.company)
            if comp is None:
                errors.append(row_error(line, "company", f"unknown company {s.company!r}"))
            else:
                if s.department is not None:
                    cc = self.dept(comp.id, s.department)
                    if cc is None:
                        errors.append(row_error(line, "department", f"unknown department {s.department!r} in {s.company}"))
                    elif not cc.active:
                        errors.append(row_error(line, "department", f"department {s.department!r} is inactive"))
                for grant in s.roles or []:
                    if grant.department is not None and self.dept(comp.id, grant.department) is None:
                        errors.append(row_error(line, "roles", f"{grant}: unknown department {grant.department!r}"))
            if s.manager is not None:
                if s.manager == s.id:
                    errors.append(row_error(line, "manager", "a user cannot be their own manager"))
                elif s.manager not in known:
                    errors.append(row_error(line, "manager", f"unknown user {s.manager!r} (not in the file or the directory)"))
            for col, value in s.external.items():
                if value is None:
                    continue
                other = taken.setdefault((col, value), s.id)
                if other != s.id:
                    errors.append(row_error(line, col, f"{value!r} is also given to {other!r}"))
                    continue
                holder = self.session.scalar(select(User.id).where(getattr(User, col) == value, User.id != s.id))
                if holder is not None and holder not in in_file:
                    errors.append(row_error(line, col, f"{value!r} already belongs to {holder!r}"))
        errors += self._cycles(specs, first_line)
        return errors

    def _cycles(self, specs: list[tuple[int, UserSpec]], first_line: dict[str, int]) -> list[dict[str, Any]]:
        graph: dict[str, str | None] = dict(
            (uid, mid) for uid, mid in self.session.execute(select(User.id, User.manager_id))
        )
        for _, s in specs:
            if s.manager != s.id:
                graph[s.id] = s.manager
        out = []
        for cycle in manager_cycles(graph):
            where = [u for u in cycle if u in first_line] or cycle
            line = min((first_line[u] for u in where if u in first_line), default=0)
            out.append(row_error(line, "manager", f"managers form a loop: {' -> '.join(cycle)}"))
        return out


def _scope_key(company_id: int, cost_centre_id: int | None) -> str:
    return f"{company_id}|{cost_centre_id if cost_centre_id is not None else '-'}"


def _apply(session: Session, specs: list[UserSpec], actor: str) -> list[User]:
    """Write checked specs: users first, then managers (they may point at rows made here)."""
    now = utcnow()
    out = []
    companies = {s.company: company_by_code(session, s.company) for s in specs}
    for s in specs:
        comp = companies[s.company]
        cc_id = department_by_code(session, comp.id, s.department).id if s.department else None
        user = session.get(User, s.id)
        if user is None:
            user = User(id=s.id, created_at=now)
            session.add(user)
        user.name, user.email, user.company_id, user.cost_centre_id = s.name, s.email, comp.id, cc_id
        user.active, user.updated_at = s.active, now
        for col, value in s.external.items():
            setattr(user, col, value)
        out.append(user)
    session.flush()
    for s, user in zip(specs, out, strict=True):
        user.manager_id = s.manager
        if s.roles is not None:
            _replace_roles(session, user, s.roles, actor)
    session.flush()
    return out


def _replace_roles(session: Session, user: User, grants: list[RoleGrant], actor: str) -> None:
    wanted = {}
    for g in grants:
        cc_id = department_by_code(session, user.company_id, g.department, "roles").id if g.department else None
        wanted[(g.role, _scope_key(user.company_id, cc_id))] = cc_id
    for row in list(session.scalars(select(UserRole).where(UserRole.user_id == user.id))):
        if (row.role, row.scope_key) not in wanted:
            session.delete(row)
        else:
            del wanted[(row.role, row.scope_key)]
    for (role, key), cc_id in wanted.items():
        session.add(UserRole(user_id=user.id, role=role, company_id=user.company_id,
                             cost_centre_id=cc_id, scope_key=key, granted_by=actor, created_at=utcnow()))
