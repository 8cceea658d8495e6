"""Find a connector by name, configured from settings (normally ``os.environ``).

``get(name, settings)`` builds the connector; the outbox worker and the inbound HTTP
endpoint (``/api/v1/oa/<name>/events``) both use it, so credentials are read in one
place. Secrets come only from the environment; nothing is stored in the database.

========  ====  ==============================================================
name      kind  required settings (optional ones are in each module's docstring)
========  ====  ==============================================================
dingtalk  OA    YINFIN_DINGTALK_APP_KEY, _APP_SECRET, _TOKEN, _AES_KEY
feishu    OA    YINFIN_FEISHU_APP_ID, _APP_SECRET, _VERIFICATION_TOKEN
wecom     OA    YINFIN_WECOM_CORP_ID, _SECRET, _AGENT_ID, _TOKEN, _AES_KEY
generic   OA    YINFIN_GENERIC_SECRET (any other name with YINFIN_<NAME>_SECRET set,
                e.g. ``weaver`` or ``seeyon``, is a generic webhook of that name)
kingdee   ERP   YINFIN_KINGDEE_URL, _ACCT_ID, _USERNAME, _BOOK and _APP_ID + _APP_SECRET
                or _PASSWORD
odoo      ERP   YINFIN_ODOO_URL, _DB, _USERNAME, _API_KEY
erpnext   ERP   YINFIN_ERPNEXT_URL, _API_KEY, _API_SECRET, _COMPANY
file      ERP   YINFIN_FILE_DIR
fileoa    OA    YINFIN_FILEOA_DIR (a file drop for development and the demo)
========  ====  ==============================================================

Connectors hold an HTTP session and a cached token: :func:`get` caches one instance
per (name, settings) so a worker reuses them; ``fresh=True`` builds a new one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import dingtalk, erpnext, feishu, file, fileoa, kingdee, odoo, wecom
from .base import ERPConnector, OAConnector
from .generic import GenericWebhookConnector

Connector = OAConnector | ERPConnector

_BUILDERS: dict[str, tuple[str, tuple[str, ...], Callable[[Mapping[str, str]], Any]]] = {
    "dingtalk": ("oa", dingtalk.SETTINGS, dingtalk.DingTalkConnector.from_settings),
    "feishu": ("oa", feishu.SETTINGS, feishu.FeishuConnector.from_settings),
    "wecom": ("oa", wecom.SETTINGS, wecom.WeComConnector.from_settings),
    "kingdee": ("erp", kingdee.SETTINGS, kingdee.KingdeeConnector.from_settings),
    "odoo": ("erp", odoo.SETTINGS, odoo.OdooConnector.from_settings),
    "erpnext": ("erp", erpnext.SETTINGS, erpnext.ERPNextConnector.from_settings),
    "file": ("erp", file.SETTINGS, file.FileConnector.from_settings),
    "fileoa": ("oa", fileoa.SETTINGS, fileoa.FileOAConnector.from_settings),
}
_cache: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


class ConnectorNotConfigured(LookupError):
    """The name is unknown, or settings it needs are missing (``missing`` lists them)."""

    def __init__(self, name: str, missing: list[str]) -> None:
        what = f"missing {', '.join(missing)}" if missing else "unknown connector"
        super().__init__(f"connector {name!r}: {what}")
        self.name, self.missing = name, missing


def kind(name: str) -> str:
    """``oa`` or ``erp``; a name not in the table is a generic (OA) webhook."""
    return _BUILDERS[name][0] if name in _BUILDERS else "oa"


def configured(settings: Mapping[str, str] | None = None) -> list[str]:
    """Names whose required settings are all present (for health checks and the CLI)."""
    s = os.environ if settings is None else settings
    names = [n for n, (_, req, _) in _BUILDERS.items() if all(s.get(k) for k in req)]
    names += sorted({m.group(1).lower() for k in s
                     if (m := re.fullmatch(r"YINFIN_([A-Z0-9]+)_SECRET", k))
                     and m.group(1).lower() not in _BUILDERS and s.get(k)})
    return names


def get(name: str, settings: Mapping[str, str] | None = None, *, fresh: bool = False) -> Any:
    """The connector called ``name``, built from ``settings`` (default ``os.environ``).

    Raises :class:`ConnectorNotConfigured` naming the missing variables.
    """
    s = os.environ if settings is None else settings
    if name in _BUILDERS:
        _, required, build = _BUILDERS[name]
    elif re.fullmatch(r"[a-z][a-z0-9]*", name):
        required = (f"YINFIN_{name.upper()}_SECRET",)

        def build(st: Mapping[str, str]) -> Any:
            return GenericWebhookConnector.from_settings(st, name)
    else:
        raise ConnectorNotConfigured(name, [])
    missing = [k for k in required if not s.get(k)]
    if missing:
        raise ConnectorNotConfigured(name, missing)
    relevant = tuple(sorted((k, v) for k, v in s.items() if k.startswith(f"YINFIN_{name.upper()}_")))
    key = (name, relevant)
    if fresh or key not in _cache:
        _cache[key] = build(s)
    return _cache[key]
