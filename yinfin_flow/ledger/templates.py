"""Posting templates from ``workflows/postings/*.yaml``, validated on load.

A bad file is refused with its file name, the path inside it and what is wrong
(:class:`~yinfin_flow.domain.journal.TemplateError`), never half-loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from yinfin_flow.config import Settings
from yinfin_flow.domain.journal import (
    AMOUNT_KINDS,
    PLACEHOLDER,
    PostingTemplate,
    TemplateError,
    TemplateLine,
    check_template_balances,
)


def _placeholders_ok(value: str | None) -> None:
    if value is None:
        return
    stripped = PLACEHOLDER.sub("", value)
    if "{" in stripped or "}" in stripped:
        raise ValidationError("placeholders must look like {document.field} or {line.field}")


class TemplateLineSchema(Schema):
    side = fields.String(required=True, validate=validate.OneOf(["debit", "credit"]))
    account = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = fields.String(load_default="gross", validate=validate.OneOf(AMOUNT_KINDS))
    per = fields.String(load_default="line", validate=validate.OneOf(["line", "currency"]))
    cost_centre = fields.Boolean(load_default=False)
    project = fields.Boolean(load_default=False)
    partner = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["document"]))
    reservation = fields.Boolean(load_default=False)
    memo = fields.String(load_default=None, allow_none=True, validate=_placeholders_ok)

    @validates_schema
    def _per_line_only(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("per") == "currency":
            for name in ("cost_centre", "project", "reservation"):
                if data.get(name):
                    raise ValidationError(f"only per: line lines can carry {name}", name)
            if data.get("account") == "line.account":
                raise ValidationError("per: currency lines need a fixed account code", "account")
            if data.get("memo") and "{line." in data["memo"]:
                raise ValidationError("per: currency lines cannot use {line.…}", "memo")


class TemplateSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"))
    description = fields.String(load_default="")
    summary = fields.String(required=True, validate=[validate.Length(min=1, max=200), _placeholders_ok])
    voucher_word = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=8))
    lines = fields.List(fields.Nested(TemplateLineSchema), required=True, validate=validate.Length(min=2))


def _first_error(messages: Any, path: str = "") -> tuple[str, str]:
    """The first (path, message) in marshmallow's nested error dict."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        sub = f"{path}.{key}" if path and not isinstance(key, int) else (f"{path}[{key}]" if isinstance(key, int) else str(key))
        return _first_error(value, sub)
    if isinstance(messages, list) and messages:
        return path, str(messages[0])
    return path, str(messages)


def parse_template(data: Any, source: str) -> PostingTemplate:
    """Validate one template's data (from ``source``, for messages) and build it."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: a template is a mapping of name, summary and lines", file=source, path="")
    try:
        loaded = TemplateSchema().load(data)
    except ValidationError as err:
        path, problem = _first_error(err.messages)
        raise TemplateError(f"{source}: {path}: {problem}", file=source, path=path, errors=err.messages) from None
    template = PostingTemplate(
        name=loaded["name"],
        summary=loaded["summary"],
        description=loaded["description"],
        voucher_word=loaded["voucher_word"],
        lines=tuple(TemplateLine(**ln) for ln in loaded["lines"]),
    )
    try:
        check_template_balances(template)
    except TemplateError as err:
        raise TemplateError(f"{source}: lines: {err.message}", file=source, path="lines") from None
    return template


def load_file(path: Path) -> PostingTemplate:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TemplateError(f"{path.name}: not valid YAML: {err}", file=path.name, path="") from None
    template = parse_template(data, path.name)
    if f"{template.name}.yaml" != path.name:
        raise TemplateError(
            f"{path.name}: name: {template.name!r} must match the file name",
            file=path.name, path="name",
        )
    return template


def postings_dir(workflows_dir: Path | None = None) -> Path:
    return (workflows_dir or Settings().workflows_dir) / "postings"


_cache: dict[Path, tuple[float, PostingTemplate]] = {}


def get(name: str, workflows_dir: Path | None = None) -> PostingTemplate:
    """The template ``name`` (re-read when its file changes). Unknown → a clear error."""
    path = postings_dir(workflows_dir) / f"{name}.yaml"
    if "/" in name or not path.is_file():
        raise TemplateError(f"no posting template {name!r} in {path.parent}", field="template", path="")
    mtime = path.stat().st_mtime
    hit = _cache.get(path)
    if hit is None or hit[0] != mtime:
        hit = (mtime, load_file(path))
        _cache[path] = hit
    return hit[1]


def load_all(workflows_dir: Path | None = None) -> dict[str, PostingTemplate]:
    """Every template in the directory; the first bad file raises."""
    return {t.name: t for t in (load_file(p) for p in sorted(postings_dir(workflows_dir).glob("*.yaml")))}
