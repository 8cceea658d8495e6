"""Answers sent as already dumped (api/answers): outside production each one is checked
against its schema, so a drift between the builder and the schema fails loudly."""

from __future__ import annotations

import pytest
from flask import Flask
from marshmallow import Schema, fields

from yinfin_flow.api.answers import AnswerDrift, as_dumped
from yinfin_flow.db.engine import Database

from .conftest import make_app


class _Line(Schema):
    code = fields.String(required=True)
    amount = fields.String(required=True)


class _Answer(Schema):
    id = fields.Integer(required=True)
    lines = fields.List(fields.Nested(_Line), required=True)


GOOD = {"id": 7, "lines": [{"code": "TRAVEL", "amount": "12.50"}]}


def test_an_answer_in_its_dumped_form_is_sent_as_it_is(app: Flask):
    with app.test_request_context():
        resp = as_dumped(_Answer, GOOD, status=201)
    assert resp.status_code == 201
    assert resp.get_json() == GOOD


@pytest.mark.parametrize(("body", "where"), [
    ({"id": 7, "lines": [{"code": "TRAVEL", "amount": 12.5}]}, "lines.0.amount: 12.5 dumps as '12.5'"),
    ({"id": 7, "lines": [], "extra": 1}, "extra: not in the schema"),
    ({"id": "7", "lines": []}, "id: '7' dumps as 7"),
])
def test_outside_production_an_answer_that_is_not_its_own_dump_is_refused(app: Flask, body: dict, where: str):
    with app.test_request_context(), pytest.raises(AnswerDrift, match=where):
        as_dumped(_Answer, body)


def test_production_sends_the_answer_unchecked(sqlite_db: Database):
    app = make_app(sqlite_db, env="production", secret_key="s")
    body = {"id": 7, "lines": [], "extra": 1}
    with app.test_request_context():
        assert as_dumped(_Answer, body).get_json() == body
