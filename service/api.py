"""HTTP routes. They only translate: bytes to a validated request, a request to a numpy
call on the predictor, numpy results to JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from pydantic import ValidationError

from . import metrics as metrics_module
from .artifact import Metadata, list_versions
from .errors import (
    Detail,
    InvalidInput,
    MalformedJson,
    ModelNotFound,
    PayloadTooLarge,
    TooManyBeats,
    UnsupportedMediaType,
)
from .loader import ModelLoader
from .metrics import ServiceMetrics
from .openapi import docs_page, openapi_document
from .predictor import Scores
from .schemas import PredictRequest
from .settings import Settings

bp = Blueprint("api", __name__)
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class ServiceState:
    """What the routes need, stored in ``app.extensions["ecg"]`` (no module globals)."""

    settings: Settings
    metadata: Metadata
    loader: ModelLoader
    metrics: ServiceMetrics


def state() -> ServiceState:
    return current_app.extensions["ecg"]


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=_JSON_OPTIONS), status, mimetype="application/json")


def _loc(parts: tuple) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def parse_predict_request(body: bytes, max_beats: int) -> PredictRequest:
    """Validate the raw body in one pass of pydantic's JSON parser, which rejects NaN and
    Infinity, booleans and strings where numbers belong, and names the position of each."""
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson(
                "request body is not valid JSON",
                [Detail("body", e["msg"]) for e in errors if e["type"] == "json_invalid"],
            ) from None
        details = [Detail(_loc(e["loc"]), e["msg"]) for e in errors[:50]]
        summary = f"{exc.error_count()} invalid field(s); first at {details[0].loc}"
        raise InvalidInput(summary, details) from None
    if len(parsed.beats) > max_beats:
        raise TooManyBeats(
            f"{len(parsed.beats)} beats in one request; the limit is {max_beats}",
            [Detail("beats", f"at most {max_beats} beats per request")],
        )
    return parsed


def predict_body(scores: Scores, metadata: Metadata, with_reconstruction: bool) -> dict:
    predictions = []
    for i in range(len(scores.mse)):
        item = {
            "mse": scores.mse[i],
            "is_anomaly": bool(scores.is_anomaly[i]),
            "point_errors": scores.point_errors[i],
            "out_of_range": bool(scores.out_of_range[i]),
        }
        if with_reconstruction:
            item["reconstruction"] = scores.reconstruction[i]
        predictions.append(item)
    return {
        "model_name": metadata.model_name,
        "model_version": metadata.version,
        "threshold": scores.threshold,
        "predictions": predictions,
    }


def read_body(max_bytes: int) -> bytes:
    """The request body, refusing more than ``max_bytes``. Werkzeug checks a declared
    Content-Length itself, but silently cuts a chunked body at the limit; a cut body
    must be a 413, not a confusing "invalid JSON"."""
    body = request.get_data(cache=False)
    if request.content_length is None and len(body) >= max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    return body


@bp.post("/predict")
def predict() -> Response:
    s = state()
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}",
            [Detail("headers.Content-Type", "expected application/json")],
        )
    parsed = parse_predict_request(read_body(s.settings.max_body_bytes), s.settings.max_beats)
    g.beats = len(parsed.beats)
    predictor = s.loader.predictor(wait_seconds=s.settings.ready_wait_seconds)
    scores = predictor.predict(np.asarray(parsed.beats, dtype=np.float32), parsed.threshold)
    s.metrics.observe_scores(scores.mse, int(scores.is_anomaly.sum()), int(scores.out_of_range.sum()))
    return json_response(predict_body(scores, s.metadata, parsed.return_reconstruction))


@bp.get("/livez")
def livez() -> Response:
    return json_response({"status": "alive"})


@bp.get("/readyz")
def readyz() -> Response:
    s = state()
    if not s.loader.ready:
        s.loader.predictor()  # raises ModelNotReady with the reason
    return json_response(
        {"status": "ready", "model_name": s.metadata.model_name, "model_version": s.metadata.version}
    )


@bp.get("/v1/models/<name>")
def model_info(name: str) -> Response:
    s = state()
    meta = s.metadata
    if name != meta.model_name:
        raise ModelNotFound(
            f"this server serves model {meta.model_name!r}, not {name!r}",
            [Detail("path.name", f"expected {meta.model_name!r}")],
        )
    return json_response(
        {
            "name": meta.model_name,
            "version": meta.version,
            "versions_available": list_versions(s.settings.model_dir, meta.model_name),
            "created_at": meta.created_at.isoformat(),
            "input_length": meta.input_length,
            "threshold": meta.threshold.model_dump(),
            "scaler": meta.scaler.model_dump(),
            "metrics": meta.metrics.model_dump(),
            "ready": s.loader.ready,
        }
    )


@bp.get("/metrics")
def metrics() -> Response:
    return Response(
        metrics_module.render(state().metrics.registry),
        mimetype="text/plain; version=0.0.4; charset=utf-8",
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(state().settings))


@bp.get("/docs")
def docs() -> Response:
    return Response(docs_page(openapi_document(state().settings)), mimetype="text/html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
