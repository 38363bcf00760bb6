"""The Open Inference Protocol's routes (KServe v2, as Triton and MLServer speak it),
under ``/v2``, with errors in the protocol's shape. They only translate: HTTP to a call
on the data plane through the codec (``service/inference_protocol.py``), and back."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from . import __version__, errors
from . import inference_protocol as v2
from .request_body import read_body, require_media_type
from .routing import dataplane, json_response, raw_json_response

bp = Blueprint("v2", __name__, url_prefix=errors.INFERENCE_PROTOCOL_PREFIX)
errors.register(bp, errors.inference_protocol_body)

_MODEL = "/models/<name>"
_VERSION = "/models/<name>/versions/<version>"


@bp.get("")
def server_metadata() -> Response:
    return json_response({"name": "ecg-anomaly", "version": __version__, "extensions": list(v2.EXTENSIONS)})


@bp.get("/health/live")
def live() -> Response:
    return json_response({"live": True})


def readiness(body: dict) -> Response:
    """The protocol's readiness answer: 200 for true, 400 for a model still loading (as
    Triton answers), 503 while shutting down (as KServe answers), so that a probe or a
    load balancer reading only the status stops sending."""
    dp = dataplane()
    ready = dp.ready()
    status = 200 if ready else 503 if dp.shutting_down() else 400
    return json_response({**body, "ready": ready}, status)


@bp.get("/health/ready")
def ready() -> Response:
    return readiness({})


@bp.get(_MODEL)
@bp.get(_VERSION)
def model_metadata(name: str, version: str | None = None) -> Response:
    meta = dataplane().served_model(name, version)
    return json_response(v2.model_metadata(meta.model_name, meta.version))


@bp.get(f"{_MODEL}/ready")
@bp.get(f"{_VERSION}/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    dataplane().served_model(name, version)
    return readiness({"name": name})


@bp.post(f"{_MODEL}/infer")
@bp.post(f"{_VERSION}/infer")
def infer(name: str, version: str | None = None) -> Response:
    dp = dataplane()
    meta = dp.served_model(name, version)
    # tritonclient sends no Content-Type; binary requests may say octet-stream
    require_media_type("application/json", "application/octet-stream", "")
    body = read_body(dp.settings.max_body_bytes)
    parsed = v2.parse_infer_request(body, request.headers.get(v2.HEADER_LENGTH), dp.settings.max_beats)
    g.beats = len(parsed.beats)
    scores = dp.score(parsed.beats, parsed.threshold)
    content, header_length = v2.encode_infer_response(scores, parsed, meta.model_name, meta.version)
    if header_length is None:
        return raw_json_response(content)
    response = Response(content, mimetype="application/octet-stream")
    response.headers[v2.HEADER_LENGTH] = str(header_length)
    return response
