"""Per-form field mappings for OA inbound events: which OA form becomes which request.

One YAML file per connector in the mapping directory (``YINFIN_OA_MAPPING_DIR``,
default ``config/oa/`` in the project), named ``<connector>.yaml``::

    users: dingtalk          # how OA user ids map to ours: dingtalk | feishu | wecom
                             # (the directory's external ids) or ``same`` (ids match)
    forms:
      PROC-EXPENSE-01:       # the OA form / template code (the event's ``template``)
        workflow: expense
        company: ACME
        title: reason        # OA field holding the title, or "=literal"
        form:                # request form field: OA field (or "=literal")
          memo: reason
        lines:               # each line: line field: OA field (or "=literal")
          - {ref: "=1", line_code: budget_line, amount: amount, currency: "=CNY",
             budget_date: date, memo: reason}

A missing OA field is a 422 naming it; nothing is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask

from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.domain.errors import NotFound, ValidationError

USER_SYSTEMS = ("dingtalk", "feishu", "wecom", "same")


@dataclass(frozen=True)
class FormMapping:
    workflow: str
    company: str
    title: str
    form: dict[str, str]
    lines: list[dict[str, str]]


@dataclass(frozen=True)
class ConnectorMapping:
    users: str
    forms: dict[str, FormMapping]


def mapping_dir(app: Flask) -> Path:
    raw = app.config.get("YINFIN_OA_MAPPING_DIR") or os.environ.get("YINFIN_OA_MAPPING_DIR")
    return Path(raw) if raw else PROJECT_ROOT / "config" / "oa"


def load(directory: Path, connector: str) -> ConnectorMapping:
    """The mapping of ``connector`` (404 when there is none, 422 when it is malformed)."""
    path = directory / f"{connector}.yaml"
    if not path.is_file():
        raise NotFound(f"no OA mapping for connector {connector!r} ({path.name})", field="connector")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValidationError(path.name, f"is not valid YAML: {err}") from None
    users = raw.get("users", "same")
    if users not in USER_SYSTEMS:
        raise ValidationError(f"{path.name}: users", f"must be one of {', '.join(USER_SYSTEMS)}")
    forms = {}
    for code, f in (raw.get("forms") or {}).items():
        if not isinstance(f, dict) or not f.get("workflow") or not f.get("company"):
            raise ValidationError(f"{path.name}: forms.{code}", "needs workflow and company")
        forms[str(code)] = FormMapping(
            workflow=str(f["workflow"]), company=str(f["company"]), title=str(f.get("title", "=OA request")),
            form={str(k): str(v) for k, v in (f.get("form") or {}).items()},
            lines=[{str(k): str(v) for k, v in ln.items()} for ln in (f.get("lines") or [])],
        )
    return ConnectorMapping(users, forms)


def _value(spec: str, oa: dict[str, str], where: str) -> str:
    if spec.startswith("="):
        return spec[1:]
    if spec not in oa:
        raise ValidationError(f"form.{spec}", f"the OA form has no field {spec!r} (needed for {where})")
    return oa[spec]


def to_request(m: FormMapping, oa_form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(title, request form) for an OA form under mapping ``m``."""
    title = _value(m.title, oa_form, "title")
    form: dict[str, Any] = {k: _value(v, oa_form, k) for k, v in m.form.items()}
    if m.lines:
        form["lines"] = [{k: _value(v, oa_form, f"lines[{i}].{k}") for k, v in ln.items()}
                         for i, ln in enumerate(m.lines)]
    return title, form
