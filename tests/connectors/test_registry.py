"""The registry builds each connector from environment-style settings, or says what is missing."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.base import ERPConnector, OAConnector
from connectors.dingtalk import DingTalkConnector
from connectors.generic import GenericWebhookConnector
from connectors.kingdee import KingdeeConnector

AES = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
SETTINGS = {
    "YINFIN_DINGTALK_APP_KEY": "k", "YINFIN_DINGTALK_APP_SECRET": "s",
    "YINFIN_DINGTALK_TOKEN": "t", "YINFIN_DINGTALK_AES_KEY": AES,
    "YINFIN_FEISHU_APP_ID": "cli", "YINFIN_FEISHU_APP_SECRET": "s",
    "YINFIN_FEISHU_VERIFICATION_TOKEN": "v",
    "YINFIN_WECOM_CORP_ID": "ww", "YINFIN_WECOM_SECRET": "s", "YINFIN_WECOM_AGENT_ID": "1",
    "YINFIN_WECOM_TOKEN": "t", "YINFIN_WECOM_AES_KEY": AES,
    "YINFIN_GENERIC_SECRET": "g", "YINFIN_WEAVER_SECRET": "w",
    "YINFIN_KINGDEE_URL": "http://k", "YINFIN_KINGDEE_ACCT_ID": "dc", "YINFIN_KINGDEE_USERNAME": "u",
    "YINFIN_KINGDEE_BOOK": "001", "YINFIN_KINGDEE_PASSWORD": "p",
    "YINFIN_ODOO_URL": "http://o", "YINFIN_ODOO_DB": "d", "YINFIN_ODOO_USERNAME": "u",
    "YINFIN_ODOO_API_KEY": "k",
    "YINFIN_ERPNEXT_URL": "http://e", "YINFIN_ERPNEXT_API_KEY": "k",
    "YINFIN_ERPNEXT_API_SECRET": "s", "YINFIN_ERPNEXT_COMPANY": "C",
    "YINFIN_FILE_DIR": "/tmp/yf-drop",
}


def test_every_connector_builds_and_implements_its_protocol() -> None:
    names = registry.configured(SETTINGS)
    assert names == ["dingtalk", "feishu", "wecom", "kingdee", "odoo", "erpnext", "file",
                     "generic", "weaver"]
    for name in names:
        c = registry.get(name, SETTINGS, fresh=True)
        assert c.name == name
        protocol = OAConnector if registry.kind(name) == "oa" else ERPConnector
        assert isinstance(c, protocol), name
        if protocol is ERPConnector:
            assert set(c.master_data_kinds) <= {"accounts", "cost_centres", "projects",
                                                "partners", "budgets"}
    assert isinstance(registry.get("dingtalk", SETTINGS), DingTalkConnector)
    assert isinstance(registry.get("weaver", SETTINGS), GenericWebhookConnector)


def test_cached_until_its_settings_change() -> None:
    a = registry.get("kingdee", SETTINGS)
    assert registry.get("kingdee", SETTINGS) is a
    b = registry.get("kingdee", {**SETTINGS, "YINFIN_KINGDEE_BOOK": "002"})
    assert b is not a and isinstance(b, KingdeeConnector) and b.book == "002"


def test_missing_settings_are_named() -> None:
    partial = {k: v for k, v in SETTINGS.items() if k != "YINFIN_ODOO_API_KEY"}
    with pytest.raises(registry.ConnectorNotConfigured, match="YINFIN_ODOO_API_KEY"):
        registry.get("odoo", partial)
    with pytest.raises(registry.ConnectorNotConfigured, match="YINFIN_SEEYON_SECRET"):
        registry.get("seeyon", SETTINGS)
    with pytest.raises(registry.ConnectorNotConfigured, match="unknown"):
        registry.get("../etc", SETTINGS)
    assert "odoo" not in registry.configured(partial)
