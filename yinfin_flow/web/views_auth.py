"""Signing in and out, and the language switch."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from yinfin_flow.api.identity import Unauthenticated, token_identity
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.engine import directory
from yinfin_flow.engine.errors import Forbidden

from . import i18n
from .common import db, error_page, safe_next
from .identity import console_identity, development, host_signs_in, sign_in, sign_out


def home() -> Response:
    return redirect(url_for("console.inbox"))


def sign_in_page() -> str | Response:
    """GET: the form (and, in development, the directory's people to sign in as);
    POST: an API token, checked once, then the session carries the sign-in."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    target = safe_next(request.values.get("next")) or url_for("console.inbox")
    if host_signs_in(app):
        return redirect(target) if console_identity() else error_page(
            401, "unauthenticated", "sign in through the application that hosts the console")
    if request.method == "POST":
        token = (request.form.get("token") or "").strip()
        if not token:
            raise ValidationError("token", "paste your API token")
        try:
            ident = token_identity(request._get_current_object(), token)  # type: ignore[attr-defined]
        except Unauthenticated as err:
            return _sign_in_form(target, error=err.message, status=401)
        sign_in(ident.id, "token")
        return redirect(target)
    return _sign_in_form(target)


def _sign_in_form(target: str, error: str | None = None, status: int = 200) -> tuple[str, int]:
    people = []
    if development(current_app):
        with db().unit_of_work(readonly=True) as s:
            people = [p for p in directory.listing(s) if p["active"]]
    return render_template("yinfin/sign_in.html", people=people, next=target, error=error), status


def sign_in_as() -> Response:
    """Development only: become a person of the directory, with their directory roles."""
    if not development(current_app) or host_signs_in(current_app):
        raise Forbidden("signing in without a token is for development only", field="user")
    user = (request.form.get("user") or "").strip()
    with db().unit_of_work(readonly=True) as s:
        known = {p["id"]: p for p in directory.listing(s)}
    if user not in known or not known[user]["active"]:
        raise NotFound(f"no active person {user!r} in the directory", field="user")
    sign_in(user, "development")
    return redirect(safe_next(request.form.get("next")) or url_for("console.inbox"))


def sign_out_view() -> Response:
    sign_out()
    return redirect(url_for("console.sign_in"))


def language() -> Response:
    lang = request.form.get("lang")
    if lang not in i18n.LOCALES:
        raise ValidationError("lang", f"must be one of {', '.join(i18n.LOCALES)}")
    session[i18n.LANG_KEY] = lang
    return redirect(safe_next(request.form.get("next")) or url_for("console.inbox"))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", "home", home)
    bp.add_url_rule("/sign-in", "sign_in", sign_in_page, methods=["GET", "POST"])
    bp.add_url_rule("/sign-in/as", "sign_in_as", sign_in_as, methods=["POST"])
    bp.add_url_rule("/sign-out", "sign_out", sign_out_view, methods=["POST"])
    bp.add_url_rule("/language", "language", language, methods=["POST"])
