"""Who approves: turning an approver rule from a workflow definition into user ids.

Rule shapes (as written in ``workflows/*.yaml`` under a step's ``approvers``)::

    {"type": "manager", "levels": 2}        # direct manager, then theirs: one approver per level
    {"type": "role", "role": "finance_reviewer", "scope": "department_tree"}
    {"type": "user", "user": "carol"}
    {"type": "form_field", "field": "project_manager"}   # a user id (or list of ids) in the form
    {"type": "department_head"}             # cost_centres.manager, walking up if empty

Role scopes: ``requester_department`` (holders scoped to exactly the requester's
department), ``department_tree`` (the default: the requester's department, then its
parent, and so on up; the first level with any active holder wins; company-wide holders
if no level has one), ``company`` (company-wide holders only). A role given without a
department in the directory (``gm``) is company-wide; ``finance_reviewer@FIN`` is held
for department FIN only.

Guarantees callers may rely on:

* Only active users in the directory are returned, in a stable order, without duplicates.
  Several holders of a role come back sorted by id; the engine's countersign mode decides
  whether all or any of them must approve.
* The requester is never returned: a requester can never approve their own request. A
  manager chain or department head that reaches the requester skips to the next level up;
  a role, named user or form field naming the requester just leaves them out. Inactive
  users are skipped the same way (for ``manager``, an inactive manager does not use up a
  level: their own manager is asked instead).
* An empty list means nobody could be found; the engine applies the definition's
  "no approver" policy. Delegation is not applied here: the engine asks
  :func:`delegate_for` when it creates each task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session, aliased

from yinfin_flow.db.models import Company, CostCentre
from yinfin_flow.db.models.org import Delegation, User, UserRole
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.org import ROLE, USER_ID, Period

RULE_TYPES = ("manager", "role", "user", "form_field", "department_head")
SCOPES = ("requester_department", "department_tree", "company")
MAX_LEVELS = 20

_FIELDS: dict[str, dict[str, bool]] = {  # type -> {field: required}
    "manager": {"levels": False},
    "role": {"role": True, "scope": False},
    "user": {"user": True},
    "form_field": {"field": True},
    "department_head": {},
}


def validate_rule(rule: Mapping[str, Any], path: str) -> None:
    """Raise :class:`ValidationError` naming ``path`` (or ``path.<key>``) if ``rule`` is bad.

    Unknown types, unknown keys (a typo such as ``level`` would otherwise be ignored),
    missing keys and bad values are all refused.
    """
    if not isinstance(rule, Mapping):
        raise ValidationError(path, "an approver rule must be a mapping with a 'type'")
    kind = rule.get("type")
    if kind not in RULE_TYPES:
        raise ValidationError(f"{path}.type", f"must be one of {', '.join(RULE_TYPES)}, not {kind!r}")
    allowed = _FIELDS[kind]
    for key in rule:
        if key != "type" and key not in allowed:
            known = ", ".join(allowed) or "nothing else"
            raise ValidationError(f"{path}.{key}", f"unknown key for a {kind} rule (allowed: {known})")
    for key, required in allowed.items():
        if required and key not in rule:
            raise ValidationError(f"{path}.{key}", f"is required for a {kind} rule")
    if kind == "manager":
        levels = rule.get("levels", 1)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
            raise ValidationError(f"{path}.levels", f"must be a whole number from 1 to {MAX_LEVELS}")
    elif kind == "role":
        role = rule["role"]
        if not isinstance(role, str) or not ROLE.match(role):
            raise ValidationError(f"{path}.role", "must be a role name (lower case letters, digits, '_')")
        if rule.get("scope", "department_tree") not in SCOPES:
            raise ValidationError(f"{path}.scope", f"must be one of {', '.join(SCOPES)}")
    elif kind == "user":
        if not isinstance(rule["user"], str) or not USER_ID.match(rule["user"]):
            raise ValidationError(f"{path}.user", "must be a user id")
    elif kind == "form_field":
        name = rule["field"]
        if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
            raise ValidationError(f"{path}.field", "must name a form field (dots for nested fields)")


def resolve(
    session: Session,
    rule: Mapping[str, Any],
    *,
    requester: str,
    company: str,
    department: str,
    form: Mapping[str, Any],
    on: date,
    deputies: Deputies | None = None,
) -> list[str]:
    """The approvers ``rule`` names for this request, in order (see the module docstring).

    ``company`` and ``department`` are codes (the request's company and cost centre).
    ``on`` is the request's date; it does not change who is found today (the directory
    holds the current organisation) and is accepted so rules can become date-aware.
    ``deputies``: where a rule's active check reads the directory, the same statement
    also reads the delegations in force on ``deputies.on`` of the people found.
    Raises :class:`ValidationError` (field ``rule``) for a malformed rule.
    """
    validate_rule(rule, "rule")
    kind = rule["type"]
    if kind == "manager":
        return managers_of(session, requester, int(rule.get("levels", 1)))
    if kind == "user":
        return _active(session, [rule["user"]], requester, deputies)
    if kind == "form_field":
        value: Any = form
        for part in str(rule["field"]).split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        ids = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
        return _active(session, [v for v in ids if isinstance(v, str)], requester, deputies)
    comp = session.scalar(select(Company).where(Company.code == company))
    if comp is None:
        return []
    dept = session.scalar(
        select(CostCentre).where(CostCentre.company_id == comp.id, CostCentre.code == department)
    )
    if kind == "department_head":
        return _department_head(session, dept, requester)
    return _role_holders(session, rule["role"], rule.get("scope", "department_tree"), comp.id, dept, requester)


def managers_of(session: Session, user: str, levels: int) -> list[str]:
    """Up to ``levels`` active managers above ``user``, nearest first (fewer at the top).

    Inactive managers are passed over without using up a level; ``user`` never appears
    (even if the chain loops back, which the directory refuses to store anyway).
    """
    # A primary-key lookup per level: measured faster on SQLite than one recursive CTE.
    out: list[str] = []
    seen = {user}
    current = session.get(User, user)
    while current is not None and current.manager_id and len(out) < levels:
        if current.manager_id in seen:
            break
        seen.add(current.manager_id)
        current = session.get(User, current.manager_id)
        if current is not None and current.active:
            out.append(current.id)
    return out


def holds_role(session: Session, user: str, role: str, *, company: str,
               department: str | None = None) -> bool:
    """Whether active ``user`` holds ``role`` in ``company`` for ``department``.

    A company-wide grant always counts; a department grant counts for that department
    and every department below it. Without ``department`` only company-wide grants count.
    (For checks such as "only an override authority may take this action".)
    """
    holder = session.get(User, user)
    comp = session.scalar(select(Company).where(Company.code == company))
    if holder is None or not holder.active or comp is None:
        return False
    scopes: list[int | None] = [None]
    if department is not None:
        dept = session.scalar(
            select(CostCentre).where(CostCentre.company_id == comp.id, CostCentre.code == department)
        )
        scopes += [cc.id for cc in _ancestors(session, dept)]
    grants = session.scalars(
        select(UserRole.cost_centre_id).where(
            UserRole.user_id == user, UserRole.role == role, UserRole.company_id == comp.id
        )
    ).all()
    return any(g in scopes for g in grants)


@dataclass
class Deputies:
    """The delegations in force on ``on`` of the people they were read for, so that
    creating their tasks needs no look-up each (see :func:`delegate_for`).

    ``by_user``: user → ``(deputy, deputy is active, start, end, workflow)`` rows in the
    order :func:`delegate_for` weighs them (an empty list: no delegation that day).
    Its statements go to the session's connection directly (Core, no autoflush: the
    engine reads the directory in blocks that need none).
    """

    on: date
    by_user: dict[str, list[tuple[str, bool, date, date, str | None]]] = field(default_factory=dict)

    def read(self, session: Session, users: list[str]) -> None:
        """Read the delegations of ``users`` not read yet, in one statement."""
        missing = [u for u in dict.fromkeys(users) if u not in self.by_user]
        if missing:
            self._add(missing, session.connection().execute(_DELEGATIONS_OF, {"ids": missing, "on": self.on}))

    def _add(self, users: list[str], rows: Any) -> None:
        for u in users:
            self.by_user.setdefault(u, [])
        for r in rows:
            if r.deputy_id is not None:
                self.by_user[r.user_id].append((r.deputy_id, bool(r.deputy_active), r.start_date,
                                                r.end_date, r.workflow))


def delegate_for(session: Session, user: str, on: date, workflow: str | None = None,
                 known: Deputies | None = None) -> str | None:
    """The deputy acting for ``user`` on ``on`` (for ``workflow``), or None.

    A delegation for all workflows applies to every workflow; one for a named workflow
    only when ``workflow`` is that name. An inactive deputy counts as no deputy. Chains
    are not followed: if the deputy has delegated too, the task still goes to the deputy
    (following chains could hand a task to someone the user never chose). ``known``:
    delegations already read for this day (:class:`Deputies`), used when they include
    ``user``.
    """
    if known is not None and known.on == on and user in known.by_user:
        for deputy, active, start, end, wf in known.by_user[user]:
            if Period(start, end, wf).covers(on, workflow):
                return deputy if active else None
        return None
    rows = session.scalars(_DELEGATIONS, {"user": user, "on": on}).all()
    for row in rows:  # a workflow-specific delegation wins over an all-workflows one
        if Period(row.start_date, row.end_date, row.workflow).covers(on, workflow):
            deputy = session.get(User, row.deputy_id)
            return deputy.id if deputy is not None and deputy.active else None
    return None


# The lookups every task creation makes, built once (statement construction was a
# measurable part of an approval's CPU); the values are bound at execution.
_DELEGATIONS = (
    select(Delegation).where(
        Delegation.user_id == bindparam("user"),
        Delegation.revoked_at.is_(None),
        Delegation.start_date <= bindparam("on"),
        Delegation.end_date >= bindparam("on"),
    ).order_by(Delegation.workflow.is_(None), Delegation.id)
)
_ACTIVE = select(User.id).where(User.id.in_(bindparam("ids", expanding=True)), User.active.is_(True))
_DEPUTY = aliased(User)
_IN_FORCE = and_(Delegation.revoked_at.is_(None), Delegation.start_date <= bindparam("on"),
                 Delegation.end_date >= bindparam("on"))
_DEPUTY_COLUMNS = (Delegation.deputy_id, _DEPUTY.active.label("deputy_active"), Delegation.start_date,
                   Delegation.end_date, Delegation.workflow)
# Who of ``ids`` is active, with each one's delegations in force (the two look-ups of
# a task's creation in one statement); delegations in _DELEGATIONS' order.
_ACTIVE_DEPUTIES = (
    select(User.id.label("user_id"), *_DEPUTY_COLUMNS)
    .outerjoin(Delegation, and_(Delegation.user_id == User.id, _IN_FORCE))
    .outerjoin(_DEPUTY, _DEPUTY.id == Delegation.deputy_id)
    .where(User.id.in_(bindparam("ids", expanding=True)), User.active.is_(True))
    .order_by(User.id, Delegation.workflow.is_(None), Delegation.id)
)
# The delegations in force of ``ids``, whoever is active.
_DELEGATIONS_OF = (
    select(Delegation.user_id, *_DEPUTY_COLUMNS)
    .join(_DEPUTY, _DEPUTY.id == Delegation.deputy_id)
    .where(Delegation.user_id.in_(bindparam("ids", expanding=True)), _IN_FORCE)
    .order_by(Delegation.user_id, Delegation.workflow.is_(None), Delegation.id)
)


def _active(session: Session, ids: list[str], requester: str, deputies: Deputies | None = None) -> list[str]:
    wanted = [i for i in dict.fromkeys(ids) if i != requester]
    if not wanted:
        return []
    if deputies is None:
        active = set(session.scalars(_ACTIVE, {"ids": wanted}))
    else:
        rows = session.connection().execute(_ACTIVE_DEPUTIES, {"ids": wanted, "on": deputies.on}).all()
        active = {r.user_id for r in rows}
        deputies._add(sorted(active), rows)
    return [i for i in wanted if i in active]


def _ancestors(session: Session, dept: CostCentre | None) -> list[CostCentre]:
    """``dept`` and every department above it, nearest first (loops cut)."""
    out: list[CostCentre] = []
    seen: set[int] = set()
    while dept is not None and dept.id not in seen:
        out.append(dept)
        seen.add(dept.id)
        dept = session.get(CostCentre, dept.parent_id) if dept.parent_id else None
    return out


def _department_head(session: Session, dept: CostCentre | None, requester: str) -> list[str]:
    for cc in _ancestors(session, dept):
        if cc.manager and cc.manager != requester:
            found = _active(session, [cc.manager], requester)
            if found:
                return found
    return []


def _holders(session: Session, role: str, company_id: int, cost_centre_id: int | None, requester: str) -> list[str]:
    stmt = (
        select(UserRole.user_id)
        .join(User, User.id == UserRole.user_id)
        .where(UserRole.role == role, UserRole.company_id == company_id, User.active.is_(True),
               UserRole.user_id != requester)
        .order_by(UserRole.user_id)
    )
    stmt = stmt.where(
        UserRole.cost_centre_id.is_(None) if cost_centre_id is None else UserRole.cost_centre_id == cost_centre_id
    )
    return list(dict.fromkeys(session.scalars(stmt)))


def _role_holders(session: Session, role: str, scope: str, company_id: int,
                  dept: CostCentre | None, requester: str) -> list[str]:
    if scope == "company":
        return _holders(session, role, company_id, None, requester)
    if scope == "requester_department":
        return _holders(session, role, company_id, dept.id, requester) if dept is not None else []
    for cc in _ancestors(session, dept):
        found = _holders(session, role, company_id, cc.id, requester)
        if found:
            return found
    return _holders(session, role, company_id, None, requester)
