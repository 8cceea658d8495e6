"""What every OA directory sync must do, for DingTalk, Feishu and WeCom alike.

Each vendor's test module builds the same sample organisation in its stub
(``build``) and says how that vendor answers (``CASE``); the checks are in
:mod:`.org_cases`. The database tests run the real master-data sync on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import pytest

from . import org_cases, test_dingtalk_org, test_feishu_org, test_wecom_org

VENDORS = {"dingtalk": test_dingtalk_org, "feishu": test_feishu_org, "wecom": test_wecom_org}


@pytest.fixture(params=list(VENDORS))
def oa(request, start_stub):
    module = VENDORS[request.param]
    stub, conn = module.build(start_stub)
    return module.CASE, conn, stub


def test_errors_are_classified(oa) -> None:
    org_cases.errors_are_classified(*oa)


def test_first_sync_then_one_leaves_and_one_is_renamed(db, oa) -> None:
    case, conn, stub = oa
    org_cases.first_then_second_sync(case, db, conn, stub)


def test_a_vendor_error_mid_directory_applies_nothing(db, oa) -> None:
    case, conn, stub = oa
    org_cases.nothing_half_applied(case, db, conn, stub)


def test_an_empty_directory_deactivates_nobody(sqlite_db, oa) -> None:
    """An app whose visibility scope was emptied by mistake sees nobody: that is not
    everyone leaving, so nothing changes (the watermark included)."""
    case, conn, stub = oa
    org_cases.org_in(sqlite_db)
    org_cases.sync(sqlite_db, conn)  # its second, empty read confirms: nothing deactivated
    before = org_cases.users(sqlite_db)
    assert len(before) == 4 and all(u[1] for u in before.values())
    assert all(d[3] for d in org_cases.departments(sqlite_db, conn.name).values())
    mark = org_cases.watermark(sqlite_db, conn.name, "users")[0]
    stub.people.clear()
    done = org_cases.sync(sqlite_db, conn)
    assert done["users"]["records"] == 0 and done["users"]["deactivated"] == 0, done
    assert org_cases.users(sqlite_db) == before
    assert org_cases.watermark(sqlite_db, conn.name, "users")[0] == mark


def test_a_cursor_that_comes_back_is_refused() -> None:
    from connectors.base import PermanentError
    from connectors.org import paged

    pages = {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "a")}
    with pytest.raises(PermanentError, match="came back"):
        paged(lambda cursor: pages[cursor], connector="x", what="users")
    assert paged(lambda cursor: {None: ([1], "a"), "a": ([2], None)}[cursor],
                 connector="x", what="users") == [1, 2]
