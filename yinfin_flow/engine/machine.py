"""One transitions ``Machine`` per definition version, built once and shared.

The machine has no models (``model=None``): rows are never added to it (``add_model``
would reset their state and keep them alive forever). An action loads the request
row under its lock and fires ``machine.events[name].trigger(row, ctx=...)``; the machine
checks the source state and the guard, sets ``row.state`` (the ``model_attribute``),
then runs :func:`yinfin_flow.engine.effects.after_transition`, which does the budget
action, posting, history and events in the same session.

transitions does not undo the state change when a later callback raises; the unit of
work does: the exception propagates, the transaction rolls back, and the row's state
in the database is untouched (tests prove it).
"""

from __future__ import annotations

import threading
from typing import Any

from transitions import EventData, Machine, MachineError

from yinfin_flow.domain.workflow import Definition

from . import routing
from .errors import InvalidAction

_cache: dict[tuple[str, int, str], Machine] = {}
_lock = threading.Lock()


def _guard(source: str) -> Any:
    def condition(event_data: EventData) -> bool:
        return routing.matches(source, event_data.model)

    return condition


def _after(event_data: EventData) -> None:
    from .effects import after_transition

    after_transition(event_data)


def build(definition: Definition) -> Machine:
    """A fresh machine for ``definition`` (use :func:`machine_for`, which caches)."""
    m = Machine(
        model=None,
        states=list(definition.states),
        initial=definition.initial,
        auto_transitions=False,
        model_attribute="state",
        send_event=True,
        name=f"{definition.name}@v{definition.version}",
    )
    for t in definition.transitions:
        m.add_transition(
            t.event, list(t.sources), t.dest,
            conditions=[_guard(t.when)] if t.when else None,
            after=_after,
        )
    return m


def machine_for(definition: Definition) -> Machine:
    """The shared machine of this definition version (built on first use)."""
    key = (definition.name, definition.version, definition.content_hash)
    m = _cache.get(key)
    if m is None:
        with _lock:
            m = _cache.get(key)
            if m is None:
                m = _cache[key] = build(definition)
    return m


def fire(definition: Definition, row: Any, event: str, **kwargs: Any) -> None:
    """Fire ``event`` on ``row``; refuse clearly when it does not apply in this state."""
    m = machine_for(definition)
    if event not in m.events or definition.transition(event, row.state) is None:
        raise InvalidAction(
            f"cannot {event} a request that is {row.state}", field="action",
            action=event, state=row.state,
        )
    try:
        done = m.events[event].trigger(row, **kwargs)
    except MachineError as err:
        raise InvalidAction(str(err.value), field="action", action=event, state=row.state) from err
    if not done:
        raise InvalidAction(
            f"{event} does not apply: its condition is not met", field="action",
            action=event, state=row.state,
        )
