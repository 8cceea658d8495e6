"""The organisation an OA knows (departments and people), read as a snapshot.

DingTalk, Feishu and WeCom list their directory (departments, then each
department's members); none of them answers "what changed since …" for the whole
directory. So an OA connector reads the whole directory each time and this module
turns it into master-data records and an honest watermark:

* ``changed_master_data(kind, watermark)`` (:class:`OrgSync`, which each OA connector
  inherits) reads the snapshot, builds the records of ``kind`` (``cost_centres`` from
  departments, ``users`` from people) and digests them. The watermark is
  ``snapshot:<digest>:<count>``: if the digest equals the one in ``watermark`` nothing
  changed upstream and the answer is ``([], watermark)``; otherwise it is every record
  of the snapshot and the new watermark. ``snapshot_kinds`` tells the master-data sync
  that such an answer is the *whole* population: a user or department this connector
  brought in before and the snapshot no longer holds was removed upstream and becomes
  inactive here (never deleted; ``yinfin_flow.worker.masterdata`` does that part,
  since only it sees the database). An empty snapshot changes nothing, so an app
  whose visibility scope was emptied by mistake does not deactivate everyone.
* Departments become cost centres (部门 → 成本中心) coded by the OA's department id,
  with ``external_code`` = ``<connector>:<id>`` (how a later snapshot knows which
  cost centres it owns), the parent department as ``parent`` and the department's
  leader as ``manager`` (the ``department_head`` approver). Where the ERP's cost
  centre codes could equal the OA's ids (WeCom numbers its departments 1, 2, 3 …),
  ``department_prefix`` (``YINFIN_<OA>_DEPARTMENT_PREFIX``, e.g. ``WX-``) keeps the two
  apart: a sync would otherwise rename and re-parent the ERP's cost centre. ``department_map``
  (``YINFIN_<OA>_DEPARTMENT_MAP`` = ``"<oa id>=<our code>,…"``) points OA
  departments at cost centres that exist already (from the ERP or a CSV import):
  mapped departments are not written, their members and children refer to our code.
* People become users ``{code, name, email, department, manager, active,
  external_id}``; ``external_id`` is the OA's own user id (kept in ``dingtalk_userid``
  / ``feishu_open_id`` / ``wecom_userid`` so tasks reach the person there) and
  ``code``, our user id, is the OA's user id unless ``user_code`` says ``email`` or
  ``employee_no`` (``YINFIN_<OA>_USER_CODE``; a person without one is left out). A
  manager or department outside the snapshot (outside the app's visibility scope)
  is left empty rather than refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .base import PermanentError

ORG_KINDS = ("cost_centres", "users")  # departments first: users refer to them
USER_CODES = ("id", "email", "employee_no")
#: A directory this deep in pages is a paging loop, not an organisation.
MAX_PAGES = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    parent: str | None = None
    leader: str | None = None  # the OA's user id of the department's head


@dataclass(frozen=True)
class Person:
    id: str  # the OA's user id (the external id column)
    name: str
    department: str | None = None  # the OA's id of the main department
    manager: str | None = None  # the OA's user id of the direct manager
    email: str | None = None
    employee_no: str | None = None
    active: bool = True
    code: str | None = None  # our user id when the OA has a better one than ``id``


@dataclass(frozen=True)
class OrgOptions:
    department_map: Mapping[str, str] = field(default_factory=dict)
    user_code: str = "id"
    department_prefix: str = ""

    def department_code(self, oa_id: str) -> str:
        """Our cost-centre code for an OA department id."""
        return self.department_map.get(oa_id) or f"{self.department_prefix}{oa_id}"

    @classmethod
    def from_settings(cls, s: Mapping[str, str], prefix: str) -> OrgOptions:
        """``<prefix>_DEPARTMENT_MAP``, ``_DEPARTMENT_PREFIX``, ``_USER_CODE`` (YINFIN_DINGTALK …)."""
        mapping: dict[str, str] = {}
        for part in (s.get(f"{prefix}_DEPARTMENT_MAP") or "").split(","):
            if part.strip():
                oa_id, _, code = part.partition("=")
                if not oa_id.strip() or not code.strip():
                    raise ValueError(f"{prefix}_DEPARTMENT_MAP: {part!r} is not <oa id>=<code>")
                mapping[oa_id.strip()] = code.strip()
        user_code = (s.get(f"{prefix}_USER_CODE") or "id").strip()
        if user_code not in USER_CODES:
            raise ValueError(f"{prefix}_USER_CODE must be one of {', '.join(USER_CODES)}")
        return cls(mapping, user_code, (s.get(f"{prefix}_DEPARTMENT_PREFIX") or "").strip())


def paged(fetch: Callable[[str | None], tuple[list[T], str | None]], *, connector: str,
          what: str) -> list[T]:
    """Every item of a cursor-paged list: ``fetch(cursor) -> (items, next cursor or None)``.

    A vendor that hands back a cursor it gave before would loop for ever; that is
    refused as permanent (retrying reads the same pages again).
    """
    out: list[T] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        items, cursor = fetch(cursor)
        out.extend(items)
        if not cursor:
            return out
        if cursor in seen:
            raise PermanentError(f"{what}: the cursor {cursor!r} came back twice",
                                 connector=connector)
        seen.add(cursor)
    raise PermanentError(f"{what}: more than {MAX_PAGES} pages", connector=connector)


def text_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def department_records(connector: str, depts: list[Department], people: list[Person],
                       options: OrgOptions) -> list[dict[str, Any]]:
    known = {d.id for d in depts}
    codes = user_codes(people, options)
    out = []
    for d in depts:
        if d.id in options.department_map:
            continue  # kept where it lives already (the ERP, a CSV import)
        parent = d.parent if d.parent in known or d.parent in options.department_map else None
        out.append({"code": options.department_code(d.id), "name": d.name or d.id,
                    "parent": options.department_code(parent) if parent else "",
                    "manager": codes.get(d.leader or "", ""),
                    "external_code": f"{connector}:{d.id}", "active": True})
    return out


def user_codes(people: list[Person], options: OrgOptions) -> dict[str, str]:
    """The OA's user id → our user id, for everyone who has one."""
    out = {}
    for p in people:
        code = {"id": p.code or p.id, "email": p.email, "employee_no": p.employee_no}[
            options.user_code]
        if code:
            out[p.id] = code
    return out


def user_records(depts: list[Department], people: list[Person],
                 options: OrgOptions) -> list[dict[str, Any]]:
    known = {d.id for d in depts} | set(options.department_map)
    codes = user_codes(people, options)
    out = []
    for p in people:
        if p.id not in codes:
            continue
        dept = p.department if p.department in known else None
        manager = codes.get(p.manager or "")
        out.append({"code": codes[p.id], "name": p.name, "email": p.email or "",
                     "department": options.department_code(dept) if dept else None,
                     "manager": manager if manager != codes[p.id] else None,
                     "active": p.active, "external_id": p.id})
    return out


def snapshot_answer(records: list[dict[str, Any]], watermark: str | None
                    ) -> tuple[list[dict[str, Any]], str | None]:
    """``([], watermark)`` when the snapshot is what ``watermark`` digested, else all of it."""
    if not records:
        return [], watermark  # an empty directory is a scope mistake, not everyone leaving
    records = sorted(records, key=lambda r: str(r["code"]))
    text = json.dumps(records, sort_keys=True, ensure_ascii=False, default=str)
    mark = f"snapshot:{hashlib.sha256(text.encode()).hexdigest()[:40]}:{len(records)}"
    if mark == watermark:
        return [], watermark
    return records, mark


class OrgSync:
    """``changed_master_data`` for an OA connector that can list its directory.

    The connector provides ``org_snapshot() -> (departments, people)`` (every page
    read, or an exception: nothing is answered from half a directory), ``name`` and
    ``org_options``.
    """

    name: str
    org_options: OrgOptions
    master_data_kinds: tuple[str, ...] = ORG_KINDS
    #: kinds whose non-empty answer is the whole population (see module docstring)
    snapshot_kinds: tuple[str, ...] = ORG_KINDS

    def org_snapshot(self) -> tuple[list[Department], list[Person]]:
        raise NotImplementedError

    def changed_master_data(self, kind: str, watermark: str | None
                            ) -> tuple[list[dict[str, Any]], str | None]:
        if kind not in ORG_KINDS:
            raise PermanentError(f"{self.name} offers {', '.join(ORG_KINDS)}, not {kind}",
                                 connector=self.name)
        depts, people = self.org_snapshot()
        if kind == "cost_centres":
            records = department_records(self.name, depts, people, self.org_options)
        else:
            records = user_records(depts, people, self.org_options)
        return snapshot_answer(records, watermark)


def merge_people(people: list[Person]) -> list[Person]:
    """One person per OA id (a person in two departments is listed twice)."""
    return list({p.id: p for p in people}.values())


__all__ = ["ORG_KINDS", "Department", "OrgOptions", "OrgSync", "Person", "merge_people",
           "paged", "snapshot_answer", "text_or_none"]
