"""The yardstick for ``bench.http``: a bare Flask endpoint doing one INSERT.

``gunicorn 'bench.bare_app:create()'`` with ``YINFIN_DATABASE_URL`` set; ``POST /insert``
writes one row in its own transaction through the same engine settings yinfin-flow
uses, and answers a small JSON body. No authentication, no schema, no audit: the
cheapest useful HTTP write.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert

from yinfin_flow.db.engine import make_engine

meta = MetaData()
bare = Table("bench_bare", meta, Column("id", Integer, primary_key=True), Column("body", Text))


def create() -> Flask:
    engine = make_engine(os.environ["YINFIN_DATABASE_URL"])
    app = Flask("bare")

    @app.post("/insert")
    def insert_one():  # type: ignore[no-untyped-def]
        with engine.begin() as conn:
            row_id = conn.execute(insert(bare).values(body=request.get_data(as_text=True))
                                  .returning(bare.c.id)).scalar_one()
        return jsonify({"id": row_id}), 201

    return app
