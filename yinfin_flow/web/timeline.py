"""The route as a timeline: done, current and next steps, who acted and when."""

from __future__ import annotations

from typing import Any

from yinfin_flow.engine import definitions
from yinfin_flow.engine.steps import GONE


def route_timeline(session: Any, req: Any, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per step of the request's route, in order: its title, countersign
    mode, state (``done`` / ``current`` / ``next``) and this round's tasks."""
    d = definitions.stored(session, req.workflow, req.workflow_version, req.workflow_hash)
    steps = {s.id: s for state in d.states.values() for s in state.steps}
    route = detail["route"] or []
    current = detail["current_step"]
    at = route.index(current) if current in route else (len(route) if detail["finished_at"] else -1)
    out = []
    for i, step_id in enumerate(route):
        step = steps.get(step_id)
        tasks = [t for t in detail["tasks"] if t["step"] == step_id and t["round"] == detail["round"]]
        if detail["state"] in ("approval",) and i == at:
            status = "current"
        elif i < at or (at == -1 and tasks and all(t["decided_at"] for t in tasks)):
            status = "done"
        else:
            status = "next"
        done = [t for t in tasks if t["status"] in ("approved", "auto_approved")]
        out.append({"id": step_id, "title": step.title if step else step_id,
                    "mode": step.mode if step else "all", "quorum": step.quorum if step else None,
                    "status": status, "tasks": tasks, "approved": len(done),
                    "total": len([t for t in tasks if t["status"] not in GONE])})
    return out

