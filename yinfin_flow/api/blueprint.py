"""The blueprint every API resource is made with: flask-smorest's, with a query string
that may hold only what the endpoint's query schema declares.

webargs ignores unknown query parameters by default, so ``GET /budget/lines?code=X``
would answer every line when ``code`` is not a filter: a filter that silently does
nothing. Here an unknown parameter is a 422 naming it (``validation_error``, the
field being the parameter), for every endpoint that reads its query through a schema.
JSON bodies and headers keep their own schemas' rules.
"""

from __future__ import annotations

import flask_smorest
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser


class StrictQueryParser(FlaskParser):
    """webargs' Flask parser refusing query parameters the schema does not declare."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": RAISE, "querystring": RAISE}


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc] # flask-smorest is untyped
    ARGUMENTS_PARSER = StrictQueryParser()
