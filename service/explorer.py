"""The explorer: an Anomagram-style page at ``/`` (plain ES modules and CSS from
``service/static/explorer/``, nothing from any other host) and the data it needs that
the rest of the API does not give: the served model's test split, scored.

Files are only read, never written, so the page works on a read-only root filesystem.
Every response of this blueprint carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import html
from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

from . import errors
from .routing import dataplane, raw_json_response
from .test_split import TestSplitCache

STATIC_DIR = Path(__file__).resolve().parent / "static" / "explorer"
EXTENSION = "ecg-explorer"  # app.extensions[EXTENSION]: the worker's TestSplitCache

# Only this origin, for everything; no inline script or style, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

bp = Blueprint("explorer", __name__)
errors.register(bp, errors.native_body)


@bp.after_request
def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


@bp.get("/")
def index() -> Response:
    """The page, with the served model's name in a meta tag (data, not script)."""
    meta = dataplane().metadata
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{model_name}}", html.escape(meta.model_name, quote=True))
    response = Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/v1/models/<name>/metadata")
def model_metadata(name: str) -> Response:
    """The served version's metadata.json as the training run wrote it (the model card)."""
    meta = dataplane().served_model(name)
    return raw_json_response(meta.model_dump_json().encode())


@bp.get("/explorer/<path:name>")
def asset(name: str) -> Response:
    # send_from_directory refuses paths that leave STATIC_DIR (a 404)
    mimetype = _TYPES.get(Path(name).suffix)
    response = send_from_directory(STATIC_DIR, name, mimetype=mimetype, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


def test_split_cache() -> TestSplitCache:
    return current_app.extensions[EXTENSION]


@bp.get("/v1/models/<name>/test-split")
def test_split(name: str) -> Response:
    dp = dataplane()
    meta = dp.served_model(name)
    predictor = dp.loader.predictor(wait_seconds=dp.settings.ready_wait_seconds)
    body = test_split_cache().get(dp.settings.data_dir, meta, predictor)
    return raw_json_response(body)
