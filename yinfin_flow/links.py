"""Where a person opens a request or a task: the links every OA message carries.

``YINFIN_PUBLIC_URL`` is the address people reach the console at (e.g.
``https://flow.example.com``); the console's request page is
``{YINFIN_PUBLIC_URL}/requests/<request_id>`` and its task page
``{YINFIN_PUBLIC_URL}/tasks/<task_id>``. Without the setting a link goes to the
request's API resource (``/api/v1/requests/<request_id>`` under the host's mount point),
made absolute with the address the current HTTP call came in on when there is one
(behind a proxy that may be an inside address: set ``YINFIN_PUBLIC_URL``); a message
written outside an HTTP call (a timer, the CLI) then carries the bare path.

Read from the environment at each call, like the delivery targets
(:mod:`yinfin_flow.worker.handlers`), so the worker, the CLI and the web process agree.
"""

from __future__ import annotations

import os

API_REQUEST = "/api/v1/requests/{request_id}"


def public_url() -> str:
    """``YINFIN_PUBLIC_URL`` without a trailing slash ('' when unset)."""
    return (os.environ.get("YINFIN_PUBLIC_URL") or "").strip().rstrip("/")


def _api_resource(request_id: int | str) -> str:
    from flask import has_request_context, url_for
    from werkzeug.routing import BuildError

    if has_request_context():
        try:  # where the host mounted the API (``url_prefix``), on the caller's address
            return url_for("requests.get_request", request_id=int(request_id), _external=True)
        except (BuildError, ValueError):
            pass
    return API_REQUEST.format(request_id=request_id)


def request_link(request_id: int | str) -> str:
    """The request's page in the console (else its API resource)."""
    base = public_url()
    if base:
        return f"{base}/requests/{request_id}"
    return _api_resource(request_id)


def task_link(task_id: int | str, request_id: int | str) -> str:
    """The task's page in the console (else the request's API resource: the API has
    no page of one task)."""
    base = public_url()
    if base:
        return f"{base}/tasks/{task_id}"
    return request_link(request_id)
