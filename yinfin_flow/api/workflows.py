"""``/api/v1/workflows``: the definitions in ``workflows/`` (list, get) and validating a
draft before an admin commits it (the same parse and static check as
``yinfin-flow workflows check``). Definitions are files under version control, so
the API reads and validates; it never writes them."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields

from yinfin_flow.domain.errors import NotFound
from yinfin_flow.domain.workflow import Definition
from yinfin_flow.engine import catalogue
from yinfin_flow.engine.definitions import DefinitionError, load_file

from ..extension import state
from .blueprint import Blueprint
from .errors import register_blueprint_handlers
from .fields import Text

blp = Blueprint("workflows", __name__, url_prefix="/workflows",
                description="Workflow definitions: read them, validate a draft.")
register_blueprint_handlers(blp)
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}


class WorkflowSummarySchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    document_type = fields.String(required=True)
    file = fields.String(required=True)


class WorkflowListSchema(Schema):
    items = fields.List(fields.Nested(WorkflowSummarySchema), required=True)
    invalid = fields.List(fields.Dict(), required=True,
                          metadata={"description": "files that do not parse: file, problem"})


class WorkflowDetailSchema(WorkflowSummarySchema):
    initial = fields.String(required=True)
    states = fields.List(fields.Dict(), required=True)
    transitions = fields.List(fields.Dict(), required=True)
    source = fields.String(required=True, metadata={"description": "the YAML text"})
    problems = fields.List(fields.String(), required=True,
                           metadata={"description": "the static check's findings"})


class DraftInSchema(Schema):
    yaml = Text(required=True, min_length=1, max_length=200_000,
                metadata={"description": "the definition's YAML text"})


class ValidationResultSchema(Schema):
    valid = fields.Boolean(required=True)
    name = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    errors = fields.List(fields.Dict(), required=True,
                         metadata={"description": "parse errors: path, problem"})
    problems = fields.List(fields.String(), required=True,
                           metadata={"description": "static check: reachability, ways out, leaked budget"})


def _summary(d: Definition, file: str) -> dict[str, Any]:
    return {"name": d.name, "version": d.version, "title": d.title,
            "document_type": d.document_type, "file": file}


def _problems(d: Definition) -> list[str]:
    return catalogue.problems(d)


@blp.get("")
@blp.response(200, WorkflowListSchema)
@blp.doc(**AUTH)
def list_workflows() -> dict[str, Any]:
    """Every definition file, current version."""
    items, invalid = [], []
    for f in sorted(state(current_app).settings.workflows_dir.glob("*.yaml")):
        try:
            items.append(_summary(load_file(f), f.name))
        except DefinitionError as err:
            invalid.append({"file": f.name, "problem": err.message})
    return {"items": items, "invalid": invalid}


@blp.get("/<string(maxlength=64):name>")
@blp.response(200, WorkflowDetailSchema)
@blp.doc(**AUTH)
def get_workflow(name: str) -> dict[str, Any]:
    """One definition: states and steps, transitions, its text and static check."""
    for f in sorted(state(current_app).settings.workflows_dir.glob("*.yaml")):
        try:
            d = load_file(f)
        except DefinitionError:
            continue
        if d.name == name:
            return {
                **_summary(d, f.name), "initial": d.initial, "source": d.source,
                "states": [{"name": s.name, "title": s.title, "final": s.final,
                            "editable": s.editable,
                            "steps": [{"id": st.id, "title": st.title, "mode": st.mode,
                                       "when": st.when} for st in s.steps]}
                           for s in d.states.values()],
                "transitions": [{"event": t.event, "from": list(t.sources), "to": t.dest,
                                 "by": t.by, "budget": t.budget, "posting": t.posting}
                                for t in d.transitions],
                "problems": _problems(d),
            }
    raise NotFound(f"no workflow {name!r}", field="name")


@blp.post("/validate")
@blp.arguments(DraftInSchema)
@blp.response(200, ValidationResultSchema)
@blp.doc(**AUTH)
def validate_workflow(body: dict[str, Any]) -> dict[str, Any]:
    """Parse a draft definition and run the static check; writes nothing. An invalid
    draft is still a 200: the answer lists what is wrong."""
    return catalogue.validate_draft(body["yaml"])


__all__ = ["blp"]
