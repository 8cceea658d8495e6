"""The workflow definitions as an admin reviews them: each file's current version and
every version requests ever started on (the text stored with them), how many requests
run on each, each drawn as a Mermaid state diagram (:func:`diagram.mermaid`), and a
draft checked before it is committed (the same parse and static check as
``yinfin-flow workflows check`` and ``POST /api/v1/workflows/validate``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalRequest, WorkflowDefinition
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.domain.workflow import Definition
from yinfin_flow.domain.workflow_check import check as static_check
from yinfin_flow.domain.workflow_check import route_warnings

from . import definitions, diagram
from .definitions import DefinitionError, compile_expression, load_file, parse


def problems(d: Definition) -> list[str]:
    """The static check's findings (reachability, ways out, no leaked budget)."""
    return [str(p) for p in static_check(d, compile_expression)]


def validate_draft(text: str) -> dict[str, Any]:
    """Parse a draft definition and run the static check; writes nothing. ``valid``,
    ``name``, ``version``, parse ``errors`` (path, problem), the check's ``problems``,
    route ``warnings`` (a route no step may match; they do not make it invalid) and,
    for a draft that parses, its ``mermaid`` diagram."""
    try:
        d = parse(text, "draft.yaml")
    except DefinitionError as err:
        return {"valid": False, "name": None, "version": None, "problems": [], "warnings": [],
                "mermaid": None,
                "errors": [{"path": err.details.get("path"), "problem": err.details.get("problem")}]}
    found = problems(d)
    return {"valid": not found, "name": d.name, "version": d.version, "errors": [], "problems": found,
            "warnings": [str(w) for w in route_warnings(d)], "mermaid": diagram.mermaid(d)}


def request_counts(session: Session) -> dict[tuple[str, int], dict[str, int]]:
    """(workflow, version) -> requests on it per state."""
    out: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for name, version, st, n in session.execute(
            select(ApprovalRequest.workflow, ApprovalRequest.workflow_version, ApprovalRequest.state,
                   func.count())
            .group_by(ApprovalRequest.workflow, ApprovalRequest.workflow_version, ApprovalRequest.state)):
        out[(name, version)][st] = int(n)
    return out


def overview(session: Session, directory: Path) -> dict[str, Any]:
    """``items``: per workflow (by name), its file's current definition (version, title,
    problems) and every version stored with requests (newest first: version, stored
    when, requests per state, whether it is the file's); ``invalid``: files that do not
    parse (file, problem)."""
    items: dict[str, dict[str, Any]] = {}
    invalid = []
    for f in sorted(directory.glob("*.yaml")):
        try:
            d = load_file(f)
        except DefinitionError as err:
            invalid.append({"file": f.name, "problem": err.message})
            continue
        items[d.name] = {"name": d.name, "title": d.title, "document_type": d.document_type,
                         "file": f.name, "version": d.version, "hash": d.content_hash,
                         "problems": problems(d), "versions": []}
    counts = request_counts(session)
    for row in session.scalars(select(WorkflowDefinition)
                               .order_by(WorkflowDefinition.name, WorkflowDefinition.version.desc())):
        entry = items.setdefault(row.name, {"name": row.name, "title": row.name, "document_type": None,
                                            "file": None, "version": None, "hash": None,
                                            "problems": [], "versions": []})
        per_state = counts.get((row.name, row.version), {})
        entry["versions"].append({
            "version": row.version, "stored_at": row.created_at, "requests": sum(per_state.values()),
            "states": dict(sorted(per_state.items())),
            "current": row.version == entry["version"] and row.content_hash == entry["hash"]})
    return {"items": [items[k] for k in sorted(items)], "invalid": invalid}


def drawing(session: Session, directory: Path, name: str, version: int | None = None) -> dict[str, Any]:
    """One definition drawn: the file's (``version`` None or the file's own) or a stored
    version's; ``name``, ``version``, ``title``, ``mermaid``, ``source`` (the YAML), and
    the static check's ``problems``. Raises :class:`NotFound`."""
    d: Definition | None = None
    f = directory / f"{name}.yaml"
    if f.is_file():
        try:
            from_file = load_file(f)
        except DefinitionError:
            from_file = None
        if from_file is not None and from_file.name == name and version in (None, from_file.version):
            d = from_file
    if d is None:
        if version is None:
            raise NotFound(f"no workflow {name!r}", field="name")
        d = definitions.stored(session, name, version)
    return {"name": d.name, "version": d.version, "title": d.title, "mermaid": diagram.mermaid(d),
            "source": d.source, "problems": problems(d)}


def requests_on(session: Session, name: str, version: int, limit: int = 50) -> list[dict[str, Any]]:
    """The latest requests (at most ``limit``) running on one version of a workflow."""
    return [{"id": r.id, "title": r.title, "requester": r.requester, "state": r.state,
             "created_at": r.created_at}
            for r in session.scalars(select(ApprovalRequest)
                                     .where(ApprovalRequest.workflow == name,
                                            ApprovalRequest.workflow_version == version)
                                     .order_by(ApprovalRequest.id.desc()).limit(limit))]
