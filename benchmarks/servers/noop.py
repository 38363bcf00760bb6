"""The framework's floor: a no-op JSON endpoint on the same gunicorn + Flask setup as ours.

It reads the request body (as /predict must) and answers a constant JSON object through
orjson, the same response path as ours, so that the difference to /predict is the work of
parsing, validating, scoring and encoding. Started with our ``gunicorn.conf.py`` and this
module as the app (the positional app argument overrides the config's ``wsgi_app``).
"""

from __future__ import annotations

import os

import orjson
from flask import Flask, Response, request

from benchmarks.common import hold_for_probe

app = Flask("noop")
_BODY = orjson.dumps({"status": "ok"})


@app.post("/predict")
def predict() -> Response:
    request.get_data(cache=False)
    return Response(_BODY, 200, mimetype="application/json")


@app.get("/readyz")
def readyz() -> Response:
    hold_for_probe(request.args.get("hold"))
    return Response(orjson.dumps({"status": "ready", "pid": os.getpid()}), 200, mimetype="application/json")
