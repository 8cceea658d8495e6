"""Engine refusals, each with a stable ``code`` (the HTTP layer maps them to one shape)."""

from __future__ import annotations

from yinfin_flow.domain.errors import Conflict, DomainError


class Forbidden(DomainError):
    """The actor may not take this action (not the assignee, the requester approving…)."""

    code = "forbidden"
    http_status = 403


class NoApprover(DomainError):
    """No approver resolved for a step and the definition says to fail the submit."""

    code = "no_approver"
    http_status = 422


class EmptyRoute(DomainError):
    """No step's condition holds for the request and the definition refuses such a
    request (``settings.empty_route: refuse``, the default)."""

    code = "empty_route"
    http_status = 422


class InvalidAction(Conflict):
    """The action does not apply to the request in its current state."""

    code = "invalid_action"


class StaleRequest(Conflict):
    """The caller acted on an older version of the request (someone acted first)."""

    code = "stale_request"


class WithdrawWindowClosed(Conflict):
    code = "withdraw_window_closed"


class TaskClosed(Conflict):
    """The task was already decided (by its assignee, a co-approver in 或签, a timer…)."""

    code = "task_closed"
