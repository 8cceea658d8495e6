"""Browsable API docs (Swagger UI) at ``…/api/v1/docs``.

The Swagger UI files ship with the ``swagger-ui-bundle`` package and are served from
here, so the docs work on a machine without internet. Without that package the
page loads Swagger UI from a public CDN, which only works for browsers that can
reach it.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_from_directory

CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"


def _assets_dir() -> str | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path: str = swagger_ui_bundle.swagger_ui_path
    return path


def swagger_ui_url() -> str:
    # Relative to the docs page (…/api/v1/docs), so it survives any mount point or
    # proxy prefix.
    return "docs/assets/" if _assets_dir() else CDN


assets = Blueprint("yinfin_flow_docs_assets", __name__)


@assets.get("/docs/assets/<path:filename>")
def asset(filename: str) -> Response:
    folder = _assets_dir()
    if folder is None:
        abort(404)
    return send_from_directory(folder, filename, max_age=86400)
