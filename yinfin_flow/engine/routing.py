"""Who approves and which steps apply: approver rules and routing conditions.

Approver rules are resolved by :mod:`yinfin_flow.engine.approvers` (the organisation
directory). The rules that need no directory (``user``, ``form_field``) also work
without it, so a definition that names people directly runs on a bare database.

Routing conditions are expressions in :mod:`yinfin_flow.domain.expr` (a small parser,
never ``eval``), evaluated against :func:`context`::

    form.*             the request's form (form.amount is the total of its lines)
    requester.id       requester.department   company   workflow
"""

from __future__ import annotations

import importlib
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.errors import ValidationError


def _approvers() -> Any:
    try:
        return importlib.import_module("yinfin_flow.engine.approvers")
    except ModuleNotFoundError as err:
        if err.name != "yinfin_flow.engine.approvers":
            raise
        return None


def context(req: ApprovalRequest) -> dict[str, Any]:
    return {
        "form": req.form,
        "requester": {"id": req.requester, "department": req.department},
        "company": req.company,
        "workflow": req.workflow,
    }


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    from yinfin_flow.domain import expr

    return expr.compile(source)


def matches(source: str | None, req: ApprovalRequest) -> bool:
    """True when the condition holds (no condition: always)."""
    if not source:
        return True
    return bool(_compiled(source).matches(context(req)))


def resolve(session: Session, rules: tuple[dict[str, Any], ...] | list[dict[str, Any]],
            req: ApprovalRequest, on: date, deputies: Any = None) -> list[str]:
    """Everyone the rules name, in rule order, without duplicates, never the requester.

    ``deputies`` (from :func:`deputies`): the delegations of the people found are read
    with them where the directory allows it."""
    mod = _approvers()
    out: list[str] = []
    for rule in rules:
        if mod is not None:
            users = mod.resolve(session, rule, requester=req.requester, company=req.company,
                                department=req.department, form=req.form, on=on, deputies=deputies)
        else:
            users = _resolve_plain(rule, req)
        for u in users:
            if u and u != req.requester and u not in out:
                out.append(u)
    return out


def _resolve_plain(rule: dict[str, Any], req: ApprovalRequest) -> list[str]:
    if rule["type"] == "user":
        return [rule["user"]]
    if rule["type"] == "form_field":
        value = req.form.get(rule["field"])
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    raise ValidationError("approvers", f"rule type {rule['type']!r} needs the organisation directory")


def deputies(on: date) -> Any:
    """A record of the delegations in force on ``on``, filled by :func:`resolve` and
    :func:`read_deputies`, for :func:`delegate_for` (None without a directory)."""
    mod = _approvers()
    return None if mod is None else mod.Deputies(on)


def read_deputies(session: Session, known: Any, users: list[str]) -> None:
    """Read the delegations of ``users`` not in ``known`` yet, in one statement."""
    if known is not None:
        known.read(session, users)


def delegate_for(session: Session, user: str, on: date, workflow: str, known: Any = None) -> str | None:
    mod = _approvers()
    if mod is None:
        return None
    deputy: str | None = mod.delegate_for(session, user, on, workflow=workflow, known=known)
    return deputy


def manager_of(session: Session, user: str) -> str | None:
    mod = _approvers()
    if mod is None:
        return None
    managers: list[str] = mod.managers_of(session, user, 1)
    return managers[0] if managers else None


def holds_role(session: Session, user: str, role: str, req: ApprovalRequest, on: date) -> bool:
    """Whether ``user`` holds ``role`` in the request's company (for ``by: role:X``)."""
    mod = _approvers()
    if mod is None:
        return False
    users = mod.resolve(session, {"type": "role", "role": role, "scope": "company"},
                        requester=req.requester, company=req.company, department=req.department,
                        form=req.form, on=on)
    return user in users
