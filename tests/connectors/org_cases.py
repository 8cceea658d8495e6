"""What every OA directory sync must do, checked the same way for DingTalk, Feishu, WeCom.

Each vendor test builds its stub with the same organisation (in the vendor's words):

    示例科技 (root) ── 研发部 (RD, head: boss) ── 应用组 (APP)
                     └─ 财务部 (FIN)
    boss   王总   RD, head of RD
    amy    艾米   APP, manager boss
    li     李四   APP, manager amy
    fiona  菲奥娜 FIN, manager boss
    boss's own manager is someone outside the app's visibility scope

and then calls these helpers, which run the real master-data sync against a real
database (``db``: SQLite and PostgreSQL) through the real connector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import PermanentError, RetryableError
from yinfin_flow.db.models import CostCentre
from yinfin_flow.db.models.org import User
from yinfin_flow.db.models.outbox import SyncWatermark
from yinfin_flow.worker import masterdata


def org_in(db: Any) -> None:
    from ..factories import org_in as make  # the budget package, only when a database is used

    make(db)


def sync(db: Any, connector: Any) -> dict[str, Any]:
    return masterdata.sync_connector(db, connector.name, lookup=lambda name: connector)


def users(db: Any) -> dict[str, tuple]:
    """Users this connector brought in: id -> (name, active, department, manager, OA id)."""
    column = {"dingtalk": User.dingtalk_userid, "feishu": User.feishu_open_id,
              "wecom": User.wecom_userid}
    out = {}
    with db.unit_of_work(readonly=True) as s:
        for col in column.values():
            for u, dept in s.execute(select(User, CostCentre.code)
                                     .outerjoin(CostCentre, CostCentre.id == User.cost_centre_id)
                                     .where(col.is_not(None))):
                out[u.id] = (u.name, u.active, dept, u.manager_id, getattr(u, col.key))
    return out


def departments(db: Any, connector: str) -> dict[str, tuple]:
    """Cost centres from the OA: code -> (name, parent code, manager, active)."""
    with db.unit_of_work(readonly=True) as s:
        rows = list(s.scalars(select(CostCentre).where(
            CostCentre.external_code.startswith(f"{connector}:"))))
        codes = {c.id: c.code for c in s.scalars(select(CostCentre))}
        return {c.code: (c.name, codes.get(c.parent_id), c.manager, c.active) for c in rows}


def watermark(db: Any, connector: str, kind: str) -> tuple[str | None, str | None]:
    with db.unit_of_work(readonly=True) as s:
        wm = s.get(SyncWatermark, (connector, kind))
        return (wm.watermark, wm.last_error) if wm else (None, None)


@dataclass(frozen=True)
class Case:
    """One vendor's stub organisation and how to disturb it, in that vendor's words.

    ``ids`` maps the people above (boss, amy, li, fiona) to their user ids here,
    ``depts`` the departments (RD, APP, FIN) to their codes, ``keys`` the people to
    their keys in ``stub.people``; ``members`` is the path that lists a department's
    members; ``limit`` a retryable answer (the vendor's rate limit) and ``refusal``
    a permanent one whose message contains ``refused``.
    """

    ids: dict[str, str]
    depts: dict[str, str]
    keys: dict[str, str]
    members: str
    limit: tuple
    refusal: tuple
    refused: str

    def change(self, stub: Any) -> None:
        """The upstream change of the later sync: li leaves, amy becomes 艾米丽."""
        del stub.people[self.keys["li"]]
        stub.people[self.keys["amy"]]["name"] = "艾米丽"


def errors_are_classified(case: Case, conn: Any, stub: Any) -> None:
    """A rate limit on the 2nd member page, a refusal, then a renewed token reads through."""
    stub.fail_at(case.members, 2, case.limit)
    with pytest.raises(RetryableError):
        conn.changed_master_data("users", None)
    stub.fail_at(case.members, 1, case.refusal)
    with pytest.raises(PermanentError, match=case.refused):
        conn.changed_master_data("users", None)
    stub.expire_tokens()  # one fresh token, then the directory reads through
    people, _ = conn.changed_master_data("users", None)
    assert len(people) == 4


def first_then_second_sync(case: Case, db: Any, conn: Any, stub: Any) -> None:
    """Import, nothing changed, then one leaves and one is renamed."""
    ids, depts = case.ids, case.depts
    org_in(db)  # company ACME with its own cost centres and users, untouched by the OA
    done = sync(db, conn)
    assert done["users"]["created"] == 4 and done["users"].get("error") is None, done
    assert done["cost_centres"]["created"] >= 3, done
    got = users(db)
    boss, amy, li, fiona = (ids[k] for k in ("boss", "amy", "li", "fiona"))
    assert got[amy][:4] == ("艾米", True, depts["APP"], boss)
    assert got[li][:4] == ("李四", True, depts["APP"], amy)
    assert got[fiona][:4] == ("菲奥娜", True, depts["FIN"], boss)
    assert got[boss][1:4] == (True, depts["RD"], None)  # his manager is outside the scope
    cc = departments(db, conn.name)
    assert cc[depts["APP"]][1] == depts["RD"] and cc[depts["RD"]][2] == boss
    assert cc[depts["FIN"]][0] == "财务部"
    mark, error = watermark(db, conn.name, "users")
    assert mark and mark.startswith("snapshot:") and error is None

    again = sync(db, conn)  # nothing changed upstream: nothing applied
    assert again["users"]["records"] == 0 and again["cost_centres"]["records"] == 0, again

    case.change(stub)
    third = sync(db, conn)
    assert third["users"]["deactivated"] == 1, third
    got = users(db)
    assert got[li][1] is False  # left: inactive, never deleted
    assert got[amy][:2] == ("艾米丽", True)
    assert got[boss][1] and got[fiona][1]
    assert watermark(db, conn.name, "users")[0] != mark


def nothing_half_applied(case: Case, db: Any, conn: Any, stub: Any) -> None:
    """A vendor error part-way through reading the directory applies nothing of it.

    After a good first sync, the change and one rate-limit answer in the middle of the
    member pages: the sync reports the error, records it on the watermark row and
    leaves every user as it was; the next sync applies the change.
    """
    org_in(db)
    sync(db, conn)
    before, mark = users(db), watermark(db, conn.name, "users")[0]
    case.change(stub)
    stub.fail_at(case.members, 3, case.limit)
    done = masterdata.sync_connector(db, conn.name, kinds=("users",), lookup=lambda n: conn)
    assert "error" in done["users"], done
    assert users(db) == before
    assert watermark(db, conn.name, "users") == (mark, done["users"]["error"])
    done = masterdata.sync_connector(db, conn.name, kinds=("users",), lookup=lambda n: conn)
    assert done["users"]["deactivated"] == 1 and "error" not in done["users"], done
    assert users(db)[case.ids["li"]][1] is False and watermark(db, conn.name, "users")[1] is None
