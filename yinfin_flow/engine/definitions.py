"""Reading workflow definitions from ``workflows/*.yaml`` and keeping every version.

A file is parsed with PyYAML, validated with marshmallow, and turned into a
:class:`~yinfin_flow.domain.workflow.Definition`. A bad file raises
:class:`DefinitionError` naming the file, the path inside it and what is wrong.

Versions: the file carries ``version``. The first time a version is used its text is
stored in ``workflow_definitions`` (name, version, hash); a request records the name and
version it started on and keeps using that stored text, whatever the file says later.
Changing a file without raising its version is refused (``definition_changed``).
"""

from __future__ import annotations

import hashlib
import importlib
import threading
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from marshmallow import INCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MmError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yinfin_flow.config import Settings
from yinfin_flow.db.models.engine import WorkflowDefinition
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound
from yinfin_flow.domain.workflow import (
    ACTORS,
    MODES,
    TIMEOUT_ACTIONS,
    Definition,
    Override,
    SendBack,
    State,
    Step,
    Timeout,
    Transition,
)
from yinfin_flow.domain.workflow_check import check

RULE_TYPES = ("manager", "role", "user", "form_field", "department_head")


class DefinitionError(DomainError):
    """A workflow file is malformed; ``details`` has ``file``, ``path``, ``problem``."""

    code = "invalid_workflow"
    http_status = 422

    def __init__(self, file: str, path: str, problem: str) -> None:
        super().__init__(f"{file}: {path}: {problem}", file=file, path=path, problem=problem)


class DefinitionChanged(Conflict):
    """A file changed without a new version number (running requests would change route)."""

    code = "definition_changed"


def _by(value: str) -> None:
    if value not in ACTORS and not (value.startswith("role:") and len(value) > 5):
        raise MmError(f"must be one of {', '.join(ACTORS)} or role:<name>")


class RuleSchema(Schema):
    class Meta:
        unknown = INCLUDE  # each rule type has its own keys, checked by validate_rule

    type = fields.String(required=True, validate=validate.OneOf(RULE_TYPES))


class TimeoutSchema(Schema):
    hours = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    action = fields.String(required=True, validate=validate.OneOf(TIMEOUT_ACTIONS))
    remind_every_hours = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))


class StepSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    title = fields.String(load_default="")
    approvers = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))
    mode = fields.String(load_default="all", validate=validate.OneOf(MODES))
    quorum = fields.Integer(load_default=None, validate=validate.Range(min=1))
    when = fields.String(load_default=None)
    timeout = fields.Nested(TimeoutSchema, load_default=None)
    editable = fields.List(fields.String(), load_default=list)

    @validates_schema
    def _quorum(self, data: dict[str, Any], **_: Any) -> None:
        if data["mode"] == "quorum" and not data.get("quorum"):
            raise MmError("required when mode is quorum", "quorum")


class StateSchema(Schema):
    title = fields.String(load_default="")
    final = fields.Boolean(load_default=False)
    editable = fields.Boolean(load_default=False)
    steps = fields.List(fields.Nested(StepSchema), load_default=list)

    @validates_schema
    def _final(self, data: dict[str, Any], **_: Any) -> None:
        if data["final"] and data["steps"]:
            raise MmError("a final state has no approval steps", "steps")


class TransitionSchema(Schema):
    event = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    from_ = fields.Raw(required=True, data_key="from")
    to = fields.String(required=True)
    budget = fields.String(load_default="none")
    posting = fields.String(load_default=None)
    by = fields.String(load_default="requester", validate=_by)
    when = fields.String(load_default=None)

    @validates_schema
    def _sources(self, data: dict[str, Any], **_: Any) -> None:
        src = data["from_"]
        if isinstance(src, str):
            return
        if not (isinstance(src, list) and src and all(isinstance(s, str) for s in src)):
            raise MmError("a state name or a list of state names", "from")


class SettingsSchema(Schema):
    withdraw_window_hours = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0))
    auto_approve_repeat = fields.Boolean(load_default=True)
    no_approver = fields.String(load_default="admin", validate=validate.OneOf(("admin", "fail")))
    admin = fields.String(load_default="admin")
    resubmit = fields.String(load_default="from_start", validate=validate.OneOf(("from_start", "to_sender")))
    empty_route = fields.String(load_default="refuse",
                                validate=validate.OneOf(("refuse", "fallback", "auto_approve")))
    fallback_approvers = fields.List(fields.Nested(RuleSchema), load_default=list)
    partner = fields.String(load_default="requester", validate=validate.OneOf(("requester", "required")))

    @validates_schema
    def _fallback(self, data: dict[str, Any], **_: Any) -> None:
        if data["empty_route"] == "fallback" and not data["fallback_approvers"]:
            raise MmError("empty_route: fallback needs fallback_approvers", "fallback_approvers")


class CcSchema(Schema):
    on_start = fields.List(fields.Nested(RuleSchema), load_default=list)
    on_finish = fields.List(fields.Nested(RuleSchema), load_default=list)


class OverrideSchema(Schema):
    approvers = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))
    cap_percent = fields.Decimal(load_default=None, as_string=True, validate=validate.Range(min=0))
    cap_amount = fields.Decimal(load_default=None, as_string=True, validate=validate.Range(min=0))


class DefinitionSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    title = fields.String(load_default="")
    document_type = fields.String(required=True)
    initial = fields.String(load_default="draft")
    settings = fields.Nested(SettingsSchema, load_default=lambda: SettingsSchema().load({}))
    cc = fields.Nested(CcSchema, load_default=lambda: CcSchema().load({}))
    override = fields.Nested(OverrideSchema, load_default=None)
    states = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]*$")),
        values=fields.Nested(StateSchema), required=True,
    )
    transitions = fields.List(fields.Nested(TransitionSchema), required=True, validate=validate.Length(min=1))


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first (path, problem) of marshmallow's nested message dict, path as a.b[2].c."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if key in ("value", "key") and isinstance(value, dict | list):
            return _first_error(value, prefix)  # fields.Dict nests a value/key level
        part = f"[{key}]" if isinstance(key, int) else (f".{key}" if prefix else str(key))
        return _first_error(value, prefix + part)
    if isinstance(messages, list) and messages and not isinstance(messages[0], str | dict | list):
        return prefix, str(messages[0])
    if isinstance(messages, list):
        if messages and isinstance(messages[0], str):
            return prefix or "(file)", messages[0]
        return _first_error(messages[0], prefix)
    return prefix or "(file)", str(messages)


def _rule_check(rules: list[dict[str, Any]], path: str, file: str) -> None:
    """Ask the approvers module to validate each rule (its keys depend on the type)."""
    approvers = _approvers()
    if approvers is None:  # pragma: no cover - the approvers area is not there yet
        return
    for i, rule in enumerate(rules):
        try:
            approvers.validate_rule(rule, f"{path}[{i}]")
        except DomainError as err:
            raise DefinitionError(file, str(err.details.get("field") or f"{path}[{i}]"),
                                  str(err.details.get("problem") or err.message)) from err


def _approvers() -> Any:
    try:
        return importlib.import_module("yinfin_flow.engine.approvers")
    except ModuleNotFoundError as err:
        if err.name != "yinfin_flow.engine.approvers":
            raise
        return None


def parse(text: str, file: str = "<string>") -> Definition:
    """Parse and validate one definition; raise :class:`DefinitionError` on the first problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise DefinitionError(file, where, f"not valid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(raw, dict):
        raise DefinitionError(file, "(file)", "must be a mapping with name, version, states, transitions")
    try:
        data = DefinitionSchema().load(raw)
    except MmError as err:
        raise DefinitionError(file, *_first_error(err.messages)) from err
    states = {}
    for sname, s in data["states"].items():
        steps = []
        for j, st in enumerate(s["steps"]):
            _rule_check(st["approvers"], f"states.{sname}.steps[{j}].approvers", file)
            to = st["timeout"]
            steps.append(Step(
                id=st["id"], title=st["title"] or st["id"], approvers=tuple(st["approvers"]),
                mode=st["mode"], quorum=st["quorum"], when=st["when"],
                timeout=Timeout(to["hours"], to["action"], to["remind_every_hours"]) if to else None,
                editable=tuple(st["editable"]),
            ))
        states[sname] = State(sname, s["title"] or sname, s["final"], tuple(steps), s["editable"])
    transitions = tuple(
        Transition(
            event=t["event"], sources=(t["from_"],) if isinstance(t["from_"], str) else tuple(t["from_"]),
            dest=t["to"], budget=t["budget"], posting=t["posting"], by=t["by"], when=t["when"],
        )
        for t in data["transitions"]
    )
    cfg, cc, ov = data["settings"], data["cc"], data["override"]
    _rule_check(cfg["fallback_approvers"], "settings.fallback_approvers", file)
    _rule_check(cc["on_start"], "cc.on_start", file)
    _rule_check(cc["on_finish"], "cc.on_finish", file)
    override = None
    if ov:
        _rule_check(ov["approvers"], "override.approvers", file)
        override = Override(tuple(ov["approvers"]),
                            None if ov["cap_percent"] is None else str(ov["cap_percent"]),
                            None if ov["cap_amount"] is None else str(ov["cap_amount"]))
    definition = Definition(
        name=data["name"], version=data["version"], title=data["title"] or data["name"],
        document_type=data["document_type"], initial=data["initial"], states=states,
        transitions=transitions, withdraw_window_hours=cfg["withdraw_window_hours"],
        auto_approve_repeat=cfg["auto_approve_repeat"], no_approver=cfg["no_approver"],
        admin=cfg["admin"], empty_route=cfg["empty_route"],
        fallback_approvers=tuple(cfg["fallback_approvers"]), partner=cfg["partner"], cc_on_start=tuple(cc["on_start"]), cc_on_finish=tuple(cc["on_finish"]),
        send_back=SendBack(resubmit=cfg["resubmit"]), override=override,
        source=text, content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )
    problems = check(definition, compile_expr=compile_expression)
    if problems:
        p = problems[0]
        raise DefinitionError(file, p.path, p.problem)
    return definition


def compile_expression(source: str) -> Any:
    """Compile a routing condition with the project's safe expression language (no eval)."""
    from yinfin_flow.domain import expr

    return expr.compile(source)


def load_file(path: Path | str) -> Definition:
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), path.name)


def workflows_dir() -> Path:
    return Settings.from_env().workflows_dir


def load_dir(directory: Path | str | None = None) -> dict[str, Definition]:
    """Every ``*.yaml`` directly in ``directory`` (not ``postings/``), by workflow name."""
    directory = Path(directory) if directory else workflows_dir()
    out: dict[str, Definition] = {}
    for f in sorted(directory.glob("*.yaml")):
        d = load_file(f)
        if d.name in out:
            raise DefinitionError(f.name, "name", f"workflow {d.name!r} is defined twice")
        out[d.name] = d
    return out


@lru_cache(maxsize=256)
def _parse_cached(text: str, name: str) -> Definition:
    return parse(text, name)


def current(session: Session, name: str, directory: Path | str | None = None) -> Definition:
    """The file's definition of ``name`` for a new request, stored as its version.

    Raises :class:`Conflict` (``definition_changed``) when the file changed but its
    version did not: running requests would silently change route.
    """
    directory = Path(directory) if directory else workflows_dir()
    f = directory / f"{name}.yaml"
    if not f.exists():
        raise NotFound(f"no workflow {name!r} in {directory}", field="workflow")
    d = _parse_cached(f.read_text(encoding="utf-8"), f.name)
    known = _known_stored(session)
    ident = (d.name, d.version, d.content_hash)
    if ident in known:
        _by_hash[d.content_hash] = d
        return d
    row = session.scalar(select(WorkflowDefinition).where(
        WorkflowDefinition.name == d.name, WorkflowDefinition.version == d.version))
    if row is None:
        # Several first submits of a new version can race: the loser's insert fails on
        # the unique (name, version) inside a savepoint, and it reads the winner's row.
        try:
            with session.begin_nested():
                session.add(WorkflowDefinition(name=d.name, version=d.version, content_hash=d.content_hash,
                                               content=d.source, created_at=utcnow()))
            session.info.setdefault(_INSERTED, set()).add(ident)
        except IntegrityError:
            row = session.scalar(select(WorkflowDefinition).where(
                WorkflowDefinition.name == d.name, WorkflowDefinition.version == d.version))
    elif row.content_hash == d.content_hash and ident not in session.info.get(_INSERTED, ()):
        # Read back and not written by this session: committed, and stored versions
        # are never changed or removed, so this database need not be asked again.
        known.add(ident)
    if row is not None and row.content_hash != d.content_hash:
        raise DefinitionChanged(
            f"{f.name} changed but its version is still {d.version}: raise the version "
            "so running requests keep the old one", field="version", file=f.name)
    _by_hash[d.content_hash] = d
    return d


_by_hash: dict[str, Definition] = {}

#: Per database engine, the (name, version, hash) known to be committed in its
#: ``workflow_definitions``: a submit on a known version skips that read. Keyed weakly by
#: the engine, so a new engine (another database) starts empty.
_stored: weakref.WeakKeyDictionary[Engine, set[tuple[str, int, str]]] = weakref.WeakKeyDictionary()
_stored_lock = threading.Lock()
_INSERTED = "yinfin_definitions_inserted"  # session.info: versions this session inserted


def _known_stored(session: Session) -> set[tuple[str, int, str]]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _stored_lock:
        return _stored.setdefault(engine, set())


def stored(session: Session, name: str, version: int, content_hash: str | None = None) -> Definition:
    """The definition a running request started on (from the database, not the file).

    With ``content_hash`` (stored on the request) a definition already parsed in this
    process is reused without reading the database: the hash names the exact text.
    """
    if content_hash is not None and content_hash in _by_hash:
        return _by_hash[content_hash]
    row = session.scalar(select(WorkflowDefinition).where(
        WorkflowDefinition.name == name, WorkflowDefinition.version == version))
    if row is None:
        raise NotFound(f"workflow {name!r} version {version} was never used", field="workflow")
    d = _parse_cached(row.content, f"{name}@v{version}")
    _by_hash[d.content_hash] = d
    return d
