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
