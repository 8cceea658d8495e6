"""The file-drop OA (development and the demo), the file ERP's keyed listing, and the
instance settings file that configures them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from connectors import registry
from connectors.base import PermanentError, StatusMessage
from connectors.file import FileConnector
from connectors.fileoa import FileOAConnector
from yinfin_flow import instance_env
from yinfin_flow.config import ConfigError

from .conftest import sample_voucher


def _message(n: int) -> StatusMessage:
    return StatusMessage(kind="status", request_id=str(n), title=f"request {n}", status="pending",
                         occurred_at=datetime(2026, 12, 1, tzinfo=UTC))


def test_writes_each_message_once_and_refuses_about_one_in_n_once(tmp_path) -> None:
    oa = FileOAConnector(directory=tmp_path, refuse_every=3)
    keys = {n: f"oa:{n}-{n * 7919:012x}" for n in range(60)}
    refused = [n for n in keys if oa.refuses(_message(n))]
    assert 5 < len(refused) < 40  # about a third, and the same messages every time
    assert refused == [n for n in keys if FileOAConnector(directory=tmp_path, refuse_every=3).refuses(_message(n))]
    for n in refused:
        with pytest.raises(PermanentError, match="replay it"):
            oa.push_status(_message(n), keys[n])
    answers = [oa.push_status(_message(n), k) for n, k in keys.items()]  # the replay is delivered
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert len(written) == 60 and sorted(f"{a['id']}.json" for a in answers) == written
    body = json.loads((tmp_path / f"{answers[1]['id']}.json").read_text(encoding="utf-8"))
    assert body["title"] == "request 1" and body["key"] == keys[1]


def test_never_refuses_by_default_and_is_configured_by_name(tmp_path) -> None:
    oa = registry.get("fileoa", {"YINFIN_FILEOA_DIR": str(tmp_path)}, fresh=True)
    assert not any(oa.refuses(_message(n)) for n in range(50))
    assert "fileoa" in registry.configured({"YINFIN_FILEOA_DIR": str(tmp_path)})
    assert registry.kind("fileoa") == "oa"
    with pytest.raises(ValueError, match="YINFIN_FILEOA_REFUSE_EVERY"):
        FileOAConnector.from_settings({"YINFIN_FILEOA_DIR": str(tmp_path), "YINFIN_FILEOA_REFUSE_EVERY": "x"})
    with pytest.raises(PermanentError):
        oa.verify_and_parse({}, {}, b"{}", now=datetime.now(UTC), seen=lambda _e: False)


def test_the_file_erp_lists_the_keys_it_holds_by_date(tmp_path) -> None:
    erp = FileConnector(directory=tmp_path, formats="csv")
    v = sample_voucher()
    number = erp.post_voucher(v, "yf-ACME-je7")
    day = v.date
    assert erp.keyed_vouchers(day, day) == [("yf-ACME-je7", number)]
    assert erp.keyed_vouchers(date(1999, 1, 1), date(1999, 12, 31)) == []


def test_the_instance_file_fills_in_what_the_environment_does_not_set(tmp_path) -> None:
    env = {"YINFIN_INSTANCE_DIR": str(tmp_path), "YINFIN_OA_CONNECTOR": "dingtalk"}
    assert instance_env.apply(env) == {}  # no file: nothing
    instance_env.write({"YINFIN_ERP_CONNECTOR": "file", "YINFIN_OA_CONNECTOR": "fileoa"}, "demo", env)
    with pytest.raises(FileExistsError):  # never overwritten
        instance_env.write({"YINFIN_ERP_CONNECTOR": "odoo"}, "again", env)
    assert instance_env.apply(env) == {"YINFIN_ERP_CONNECTOR": "file"}
    assert env["YINFIN_OA_CONNECTOR"] == "dingtalk"  # the environment wins
    (tmp_path / "yinfin.env").write_text("# c\n\nYINFIN_A=1\nnot a setting\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="yinfin.env:4: expected YINFIN_NAME=value"):
        instance_env.apply(env)
