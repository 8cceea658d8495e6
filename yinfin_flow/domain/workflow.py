"""Workflow definitions as plain data: states, approval steps, transitions, budget actions.

Pure Python (no I/O): :mod:`yinfin_flow.engine.definitions` reads the YAML files,
validates them with marshmallow and builds these objects; the static check in
:mod:`yinfin_flow.domain.workflow_check` reasons over them.

Vocabulary
- An *approval state* has ``steps``; while a request sits in it, approvals move a step
  pointer. The state's ``approve`` transition fires only when the last required step
  has approved, so nothing downstream can start from a partly approved request.
- Each transition names its ``budget`` action (see :data:`BUDGET_ACTIONS`) and, on
  completion, an optional posting template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: What a transition does to the request's reservations.
#: ``none`` nothing · ``check`` preview only · ``reserve`` pre-encumber every line (all or
#: none) · ``recheck`` re-check what is held against today's balances · ``encumber`` move
#: what is held on to ``encumbered`` · ``actual`` move it to ``actual`` (done by the ledger
#: when the transition posts a template that consumes budget) · ``release`` give back
#: what is held and close it · ``transfer`` release, then move budget between lines (budget
#: transfer requests) · ``carve`` release, then create the project's lines out of the parent.
BUDGET_ACTIONS = (
    "none", "check", "reserve", "recheck", "encumber", "actual", "release", "transfer", "carve",
)
#: Countersign modes: 会签 all · 或签 any · 依次 sequence · M of N quorum.
MODES = ("all", "any", "sequence", "quorum")
TIMEOUT_ACTIONS = ("remind", "escalate", "approve", "reject")
#: Who may fire a transition: the requester, the approver of the current step (through a
#: task), the scheduler, or holders of a role (``role:buyer``).
ACTORS = ("requester", "approver", "system")
#: Events the engine fires itself from task actions; their names are fixed.
APPROVAL_EVENTS = ("approve", "reject", "send_back")


@dataclass(frozen=True, slots=True)
class Timeout:
    hours: int  # whole hours: a definition never needs finer, and no float enters
    action: str  # one of TIMEOUT_ACTIONS
    remind_every_hours: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One approval step: who approves, how many must, when it applies."""

    id: str
    title: str
    approvers: tuple[dict[str, Any], ...]
    mode: str = "all"
    quorum: int | None = None
    when: str | None = None  # expression; the step applies only when it is true
    timeout: Timeout | None = None
    editable: tuple[str, ...] = ()  # form fields the approver may edit (``lines`` = amounts)
    override: bool = False  # the extra step an override request inserts


@dataclass(frozen=True, slots=True)
class State:
    name: str
    title: str = ""
    final: bool = False
    steps: tuple[Step, ...] = ()
    editable: bool = False  # the requester may edit here (draft, sent back)

    @property
    def is_approval(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True, slots=True)
class Transition:
    event: str
    sources: tuple[str, ...]
    dest: str
    budget: str = "none"
    posting: str | None = None
    by: str = "requester"  # requester | approver | system | role:<name>
    when: str | None = None  # expression guarding the transition


@dataclass(frozen=True, slots=True)
class SendBack:
    resubmit: str = "from_start"  # from_start | to_sender (Feishu's two choices)


@dataclass(frozen=True, slots=True)
class Override:
    """A hard-control refusal may become an override request (an extra step)."""

    approvers: tuple[dict[str, Any], ...]
    cap_percent: str | None = None  # of the line's budget the override may go over by
    cap_amount: str | None = None


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    version: int
    title: str
    document_type: str
    initial: str
    states: dict[str, State]
    transitions: tuple[Transition, ...]
    withdraw_window_hours: int | None = None
    auto_approve_repeat: bool = True
    no_approver: str = "admin"  # admin | fail
    admin: str = "admin"
    # A request no step's condition matches: refuse it at submit, send it to the
    # fallback approvers, or approve it as the system (never as the requester).
    empty_route: str = "refuse"  # refuse | fallback | auto_approve
    fallback_approvers: tuple[dict[str, Any], ...] = ()
    # Whom a voucher names as partner when the request names none: the requester's
    # employee partner (EMP-<id>, an expense claim), or nobody: refused (a purchase).
    partner: str = "requester"  # requester | required
    cc_on_start: tuple[dict[str, Any], ...] = ()
    cc_on_finish: tuple[dict[str, Any], ...] = ()
    send_back: SendBack = field(default_factory=SendBack)
    override: Override | None = None
    source: str = ""  # the file's text, stored per version
    content_hash: str = ""

    def state(self, name: str) -> State:
        return self.states[name]

    def transitions_from(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def transition(self, event: str, state: str) -> Transition | None:
        for t in self.transitions:
            if t.event == event and state in t.sources:
                return t
        return None

    @property
    def finals(self) -> set[str]:
        return {n for n, s in self.states.items() if s.final}
