"""What the route modules share: the current app's data plane and the JSON response."""

from __future__ import annotations

import orjson
from flask import Response, current_app, request

from .dataplane import DataPlane
from .predict_codec import JSON_OPTIONS

EXTENSION = "ecg"  # app.extensions[EXTENSION] is the app's DataPlane (no module globals)


def dataplane() -> DataPlane:
    return current_app.extensions[EXTENSION]


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=JSON_OPTIONS), status, mimetype="application/json")


def raw_json_response(content: bytes, status: int = 200) -> Response:
    """A body a codec has already encoded."""
    return Response(content, status, mimetype="application/json")


def route_template() -> str:
    """The matched route's template (a bounded label value), or ``unmatched``."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"
