"""The native API's routes: ``/predict``, health, model info, metrics and the docs. They
only translate: HTTP to a call on the data plane (``service/dataplane.py``) through the
codec (``service/predict_codec.py``), and back."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, g, request

from . import errors
from . import metrics as metrics_module
from .artifact import list_versions
from .errors import ShuttingDown
from .openapi import docs_page, openapi_document
from .predict_codec import encode_predict_response, parse_predict_request
from .request_body import read_body, require_media_type
from .routing import dataplane, json_response, raw_json_response

bp = Blueprint("api", __name__)
errors.register(bp, errors.native_body)


@bp.post("/predict")
def predict() -> Response:
    dp = dataplane()
    require_media_type("application/json")
    parsed = parse_predict_request(read_body(dp.settings.max_body_bytes), dp.settings.max_beats)
    g.beats = len(parsed.beats)
    scores = dp.score(np.asarray(parsed.beats, dtype=np.float32), parsed.threshold)
    return raw_json_response(encode_predict_response(scores, dp.metadata, parsed.return_reconstruction))


@bp.get("/livez")
def livez() -> Response:
    return json_response({"status": "alive"})


@bp.get("/readyz")
def readyz() -> Response:
    dp = dataplane()
    if dp.shutting_down():
        raise ShuttingDown("the server is shutting down; send requests elsewhere")
    if not dp.loader.ready:
        dp.loader.predictor()  # raises ModelNotReady with the reason
    return json_response(
        {"status": "ready", "model_name": dp.metadata.model_name, "model_version": dp.metadata.version}
    )


@bp.get("/v1/models/<name>")
def model_info(name: str) -> Response:
    dp = dataplane()
    meta = dp.served_model(name)
    return json_response(
        {
            "name": meta.model_name,
            "version": meta.version,
            "versions_available": list_versions(dp.settings.model_dir, meta.model_name),
            "created_at": meta.created_at.isoformat(),
            "input_length": meta.input_length,
            "threshold": meta.threshold.model_dump(),
            "scaler": meta.scaler.model_dump(),
            "metrics": meta.metrics.model_dump(),
            "ready": dp.ready(),
        }
    )


@bp.get("/metrics")
def metrics() -> Response:
    registry = dataplane().metrics.registry
    body, content_type = metrics_module.render(registry, request.headers.get("Accept", ""))
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(dataplane().settings))


@bp.get("/docs")
def docs() -> Response:
    return Response(docs_page(openapi_document(dataplane().settings)), mimetype="text/html")
