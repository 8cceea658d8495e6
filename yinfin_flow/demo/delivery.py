"""The demo's connectors: a file-drop ERP and a file-drop OA, both under the instance folder.

``yinfin-flow demo load`` (not the loaders, which tests run on their own) calls
:func:`configure` before the loaders and :func:`deliver` after their commit:

- :func:`configure` writes ``instance/yinfin.env`` when there is none and the
  environment names no connector::

      YINFIN_ERP_CONNECTOR=file      vouchers as CSV/XLSX/beancount in instance/erp-drop/
      YINFIN_OA_CONNECTOR=fileoa     statuses and to-dos as JSON in instance/oa-drop/,
      YINFIN_FILEOA_REFUSE_EVERY=60  refusing about one message in 60 once (dead letters)

  and drops the ERP's master data (``instance/erp-drop/masterdata/*.csv``: a new
  vendor, a new project, a renamed account) for ``yinfin-flow sync`` to pick up;
- :func:`deliver` runs the dispatcher once over everything the loaders queued, so the
  vouchers carry their ERP ids (the file names) and the dead letters are there.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

from yinfin_flow import instance_env
from yinfin_flow.config import _instance_dir
from yinfin_flow.db.engine import Database

from . import dates

ERP, OA = "file", "fileoa"
REFUSE_EVERY = 60

#: the ERP's master data the demo drops (kind → rows of code, name, extra columns)
MASTER_DATA: dict[str, list[dict[str, str]]] = {
    "partners": [
        {"code": "V005", "name": "杭州云展会务有限公司 Yunzhan Events", "kind": "vendor"},
        {"code": "V002", "name": "上海美印广告有限公司 Meiyin Advertising Co.", "kind": "vendor"},
    ],
    "projects": [{"code": "CRM-2", "name": "CRM 二期 CRM phase 2"}],
    "accounts": [{"code": "6602.10", "name": "会议费 Meetings", "type": "expense"}],
}


def configure(environ: dict[str, str] | None = None) -> Path | None:
    """Write the demo's ``instance/yinfin.env`` and apply it (see the module's note);
    None when a file exists or the environment names a connector (nothing written)."""
    env = os.environ if environ is None else environ
    instance_env.apply(env)
    if instance_env.path(env).exists() or env.get("YINFIN_ERP_CONNECTOR") or env.get("YINFIN_OA_CONNECTOR"):
        _drop_master_data(env)
        return None
    base = _instance_dir(env).resolve()
    written = instance_env.write({
        "YINFIN_ERP_CONNECTOR": ERP,
        "YINFIN_FILE_DIR": str(base / "erp-drop"),
        "YINFIN_OA_CONNECTOR": OA,
        "YINFIN_FILEOA_DIR": str(base / "oa-drop"),
        "YINFIN_FILEOA_REFUSE_EVERY": str(REFUSE_EVERY),
    }, "Written by `yinfin-flow demo load`: the demo's connectors (file drops under this folder).\n"
       "A variable set in the environment wins over this file; delete the file to use none.", env)
    instance_env.apply(env)
    _drop_master_data(env)
    return written


def _drop_master_data(env: dict[str, str] | os._Environ[str]) -> None:
    if ERP not in (env.get("YINFIN_ERP_CONNECTOR") or "").split(",") or not env.get("YINFIN_FILE_DIR"):
        return
    folder = Path(env["YINFIN_FILE_DIR"]) / "masterdata"
    folder.mkdir(parents=True, exist_ok=True)
    modified = f"{dates.today().isoformat()}T08:00:00"
    for kind, rows in MASTER_DATA.items():
        out = io.StringIO()
        columns = ["code", "name", "active", "modified", *[c for c in rows[0] if c not in ("code", "name")]]
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "active": "true", "modified": modified})
        (folder / f"{kind}.csv").write_text(out.getvalue(), encoding="utf-8")


def deliver(db: Database) -> tuple[int, int]:
    """Deliver what the loaders queued now: (delivered, dead letters)."""
    from yinfin_flow.worker import dispatcher

    quiet = logging.getLogger(dispatcher.__name__)  # the refusals are counted, not logged one by one
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        done = dispatcher.drain(db)
    finally:
        quiet.setLevel(level)
    return len(done.delivered), len(done.dead)
