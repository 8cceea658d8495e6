"""The static check of a workflow definition: proofs that hold for every request.

For each definition it proves that
- every state is reachable from the initial state,
- every non-final state has a way out, and can still reach a final state,
- every path from submit to a final state releases or consumes every reservation it
  made (no leaked budget), and no path moves budget it does not hold,
- approval states can be approved and rejected, and their events are the approver's.

Reservations are tracked abstractly per path: ``none`` (nothing reserved yet),
``open`` (held) or ``closed`` (released or consumed and closed). The set of abstract
values each state can be reached with is computed to a fixed point, with one example
path kept for each so that a problem names a concrete sequence of events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .workflow import APPROVAL_EVENTS, BUDGET_ACTIONS, Definition

NEEDS_HOLD = {"encumber", "actual"}
CLOSES = {"release", "transfer", "carve"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition; ``path`` says where (``transitions[2].budget``)."""

    workflow: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.workflow}: {self.path}: {self.problem}"


def _after(budget: str, held: str) -> str:
    if budget == "reserve":
        return "open"
    if budget in CLOSES:
        return "closed"
    return held


def check(definition: Definition, compile_expr: Callable[[str], object] | None = None) -> list[Problem]:
    """Every problem found in ``definition`` (empty when it is sound)."""
    d = definition
    out: list[Problem] = []

    def bad(path: str, problem: str) -> None:
        out.append(Problem(d.name, path, problem))

    if d.initial not in d.states:
        bad("initial", f"unknown state {d.initial!r}")
        return out
    for i, t in enumerate(d.transitions):
        where = f"transitions[{i}]"
        for s in t.sources:
            if s not in d.states:
                bad(f"{where}.from", f"unknown state {s!r}")
            elif d.states[s].final:
                bad(f"{where}.from", f"{s!r} is final: nothing leaves a final state")
        if t.dest not in d.states:
            bad(f"{where}.to", f"unknown state {t.dest!r}")
        if t.budget not in BUDGET_ACTIONS:
            bad(f"{where}.budget", f"unknown budget action {t.budget!r}")
        elif t.budget == "actual" and not t.posting:
            # Actuals must equal what was posted (a verify invariant): only the ledger,
            # posting the template, moves reservations to actual.
            bad(f"{where}.posting", "budget action 'actual' needs a posting template that consumes budget")
        if t.event in APPROVAL_EVENTS:
            for s in t.sources:
                if s in d.states and not d.states[s].is_approval:
                    bad(f"{where}.from", f"{t.event!r} leaves approval states only; {s!r} has no steps")
            if t.by != "approver":
                bad(f"{where}.by", f"{t.event!r} is taken by the approver")
        if compile_expr is not None and t.when:
            _compile(compile_expr, t.when, f"{where}.when", bad)
    seen_events: dict[tuple[str, str], int] = {}
    for i, t in enumerate(d.transitions):
        for s in t.sources:
            if (t.event, s) in seen_events and not t.when:
                bad(f"transitions[{i}]", f"event {t.event!r} from {s!r} is already defined at "
                    f"transitions[{seen_events[(t.event, s)]}]")
            seen_events.setdefault((t.event, s), i)
    for name, st in d.states.items():
        if st.is_approval:
            for ev in ("approve", "reject"):
                if d.transition(ev, name) is None:
                    bad(f"states.{name}", f"approval state has no {ev!r} transition")
            ids = [s.id for s in st.steps]
            if len(set(ids)) != len(ids):
                bad(f"states.{name}.steps", "step ids must be unique")
            for j, step in enumerate(st.steps):
                if compile_expr is not None and step.when:
                    _compile(compile_expr, step.when, f"states.{name}.steps[{j}].when", bad)
            if all(step.when for step in st.steps):
                # Not an error: a request whose form skips every step is approved at once.
                pass
    if out:
        return out  # the graph below assumes names resolve

    # Reachability, with the set of abstract budget values per state and a witness path.
    witness: dict[tuple[str, str], list[str]] = {(d.initial, "none"): []}
    queue = deque([(d.initial, "none")])
    while queue:
        state, held = queue.popleft()
        for t in d.transitions_from(state):
            path = witness[(state, held)] + [t.event]
            if t.budget in NEEDS_HOLD and held != "open":
                bad(f"transitions[{d.transitions.index(t)}].budget",
                    f"{t.budget!r} with nothing held after {' → '.join(path[:-1]) or 'start'}")
                continue
            nxt = (t.dest, _after(t.budget, held))
            if nxt not in witness:
                witness[nxt] = path
                queue.append(nxt)
    reached = {s for s, _ in witness}
    for name in d.states:
        if name not in reached:
            bad(f"states.{name}", "unreachable from the initial state")
    for name, st in d.states.items():
        if not st.final and not d.transitions_from(name):
            bad(f"states.{name}", "not final and has no way out")
    # Every non-final state must still be able to reach a final one.
    can_finish = set(d.finals)
    changed = True
    while changed:
        changed = False
        for t in d.transitions:
            if t.dest in can_finish:
                for s in t.sources:
                    if s not in can_finish:
                        can_finish.add(s)
                        changed = True
    for name in d.states:
        if name in reached and name not in can_finish:
            bad(f"states.{name}", "no path from here reaches a final state")
    for (state, held), path in sorted(witness.items()):
        if d.states[state].final and held == "open":
            bad(f"states.{state}",
                f"reached with budget still held (leak) via {' → '.join(path)}")
    if not d.finals:
        bad("states", "no final state")
    return out


def _compile(compile_expr: Callable[[str], object], source: str, path: str,
             bad: Callable[[str, str], None]) -> None:
    try:
        compile_expr(source)
    except Exception as err:  # noqa: BLE001 - any parse error is reported, with its position
        bad(path, f"invalid expression {source!r}: {err}")


def route_warnings(definition: Definition) -> list[Problem]:
    """What is allowed but deserves a look: an approval state whose every step has a
    condition, so that a request may match none of them (then ``settings.empty_route``
    decides: refused at submit, sent to the fallback approvers, or approved as the system)."""
    d = definition
    out = []
    for name, state in d.states.items():
        if state.steps and all(s.when for s in state.steps):
            out.append(Problem(d.name, f"states.{name}.steps",
                               f"every step has a condition: a request may match none "
                               f"(settings.empty_route: {d.empty_route} applies)"))
    return out
