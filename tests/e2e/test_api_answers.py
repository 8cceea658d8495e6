"""Answers sent as already dumped (api/answers): the endpoint's documented status and
schema apply, and outside production each answer is checked against the schema, so a
drift between the builder and the schema fails loudly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from yinfin_flow.api.answers import AnswerDrift, as_dumped
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from .conftest import make_app


class _Line(Schema):
    code = fields.String(required=True)
    amount = fields.String(required=True)


class _Answer(Schema):
    id = fields.Integer(required=True)
    lines = fields.List(fields.Nested(_Line), required=True)


GOOD = {"id": 7, "lines": [{"code": "TRAVEL", "amount": "12.50"}]}


def _with_endpoint(app: Flask) -> Flask:
    """``POST /answers-test``, documented as ``201`` with :class:`_Answer`."""
    blp = Blueprint("answers_test", __name__)

    @blp.post("/answers-test")
    @blp.response(201, _Answer)
    def answer() -> None:  # called through as_dumped's lookup only
        raise NotImplementedError

    state(app).api.register_blueprint(blp, url_prefix=state(app).api_prefix)
    return app


@pytest.fixture
def documented(app: Flask) -> Iterator[Flask]:
    with _with_endpoint(app).test_request_context(f"{state(app).api_prefix}/answers-test", method="POST"):
        yield app


def test_an_answer_in_its_dumped_form_is_sent_as_it_is(documented: Flask):
    resp = as_dumped(GOOD)
    assert resp.status_code == 201
    assert resp.get_json() == GOOD


@pytest.mark.parametrize(("body", "where"), [
    ({"id": 7, "lines": [{"code": "TRAVEL", "amount": 12.5}]}, "lines.0.amount: 12.5 dumps as '12.5'"),
    ({"id": 7, "lines": [], "extra": 1}, "extra: not in the schema"),
    ({"id": "7", "lines": []}, "id: '7' dumps as 7"),
])
def test_outside_production_an_answer_that_is_not_its_own_dump_is_refused(documented: Flask, body: dict,
                                                                          where: str):
    with pytest.raises(AnswerDrift, match=where):
        as_dumped(body)


def test_production_sends_the_answer_unchecked(sqlite_db: Database):
    app = _with_endpoint(make_app(sqlite_db, env="production", secret_key="s"))
    body = {"id": 7, "lines": [], "extra": 1}
    with app.test_request_context(f"{state(app).api_prefix}/answers-test", method="POST"):
        assert as_dumped(body).get_json() == body
