"""HTTP routes. They only translate: bytes to a validated request, a request to a numpy
call on the predictor, numpy results to JSON bytes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from pydantic import ValidationError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from . import __version__
from . import inference_protocol as v2
from . import metrics as metrics_module
from .artifact import Metadata, list_versions
from .errors import (
    BadRequest,
    Detail,
    ModelNotFound,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    TooManyBeats,
    UnsupportedMediaType,
    from_validation_error,
)
from .lifecycle import ServerState
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
    server: ServerState | None = None  # the gunicorn server's shared state (service/lifecycle.py)

    def ready(self) -> bool:
        """Ready for traffic: the model is loaded and warm, and the server is not shutting
        down (from SIGTERM on, readiness is false while requests are still served)."""
        return self.loader.ready and not (self.server and self.server.shutting_down())


def state() -> ServiceState:
    return current_app.extensions["ecg"]


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=_JSON_OPTIONS), status, mimetype="application/json")


def parse_predict_request(body: bytes, max_beats: int) -> PredictRequest:
    """Validate the raw body in one pass of pydantic's JSON parser, which rejects NaN and
    Infinity, booleans and strings where numbers belong, and names the position of each."""
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
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
    try:
        body = request.get_data(cache=False)
    except ClientDisconnected as exc:  # werkzeug's word for a short read, whatever the cause
        if isinstance(exc.__cause__ or exc.__context__, TimeoutError):  # service/worker.py's deadline
            raise RequestTimeout("the request body stopped arriving before it was complete") from None
        raise BadRequest("the request body ended before its Content-Length") from None
    except HTTPException:  # werkzeug's own refusals, e.g. a 413 over MAX_CONTENT_LENGTH
        raise
    except Exception as exc:  # the server's parser refused the body itself, e.g. a bad chunk size
        problem = str(exc)[:200]
        raise BadRequest(f"the request body is malformed: {problem}", [Detail("body", problem)]) from None
    if request.content_length is None and len(body) >= max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    return _decompress(body, encoding, max_bytes)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """A gzip or deflate body (tritonclient can send either), never inflated past the body
    limit: a few kilobytes of zeros must not become gigabytes in a worker."""
    where = [Detail("headers.Content-Encoding", f"expected one of {sorted(_WBITS)} or identity")]
    if encoding not in _WBITS:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported", where)
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data: {exc}", where) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body exceeds the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is truncated", where)
    return data


def require_media_type(*allowed: str) -> None:
    if request.mimetype not in allowed:
        expected = " or ".join(a or "none" for a in allowed)
        raise UnsupportedMediaType(
            f"Content-Type must be {expected}, not {request.mimetype or 'missing'!r}",
            [Detail("headers.Content-Type", f"expected {expected}")],
        )


def score(beats: np.ndarray, threshold: float | None) -> Scores:
    """One batch through the predictor, counted in the metrics; both APIs score here."""
    s = state()
    g.beats = len(beats)
    predictor = s.loader.predictor(wait_seconds=s.settings.ready_wait_seconds)
    scores = predictor.predict(beats, threshold)
    s.metrics.observe_scores(
        scores.mse, np.count_nonzero(scores.is_anomaly), np.count_nonzero(scores.out_of_range)
    )
    return scores


def served_model(name: str, version: str | None = None) -> Metadata:
    """The metadata of the model a path names, or a 404 naming what is served instead."""
    meta = state().metadata
    if name != meta.model_name:
        raise ModelNotFound(
            f"this server serves model {meta.model_name!r}, not {name!r}",
            [Detail("path.name", f"expected {meta.model_name!r}")],
        )
    if version is not None and version != str(meta.version):
        raise ModelNotFound(
            f"version {version!r} of {name!r} is not served; this server serves version {meta.version}",
            [Detail("path.version", f"expected {meta.version}")],
        )
    return meta


@bp.post("/predict")
def predict() -> Response:
    s = state()
    require_media_type("application/json")
    parsed = parse_predict_request(read_body(s.settings.max_body_bytes), s.settings.max_beats)
    scores = score(np.asarray(parsed.beats, dtype=np.float32), parsed.threshold)
    return json_response(predict_body(scores, s.metadata, parsed.return_reconstruction))


@bp.get("/livez")
def livez() -> Response:
    return json_response({"status": "alive"})


@bp.get("/readyz")
def readyz() -> Response:
    s = state()
    if s.server and s.server.shutting_down():
        raise ShuttingDown("the server is shutting down; send requests elsewhere")
    if not s.loader.ready:
        s.loader.predictor()  # raises ModelNotReady with the reason
    return json_response(
        {"status": "ready", "model_name": s.metadata.model_name, "model_version": s.metadata.version}
    )


@bp.get("/v1/models/<name>")
def model_info(name: str) -> Response:
    s = state()
    meta = served_model(name)
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
            "ready": s.ready(),
        }
    )


# The Open Inference Protocol (KServe v2): see service/inference_protocol.py.
_V2_MODEL = "/v2/models/<name>"
_V2_VERSION = "/v2/models/<name>/versions/<version>"


@bp.get("/v2")
def v2_server_metadata() -> Response:
    return json_response({"name": "ecg-anomaly", "version": __version__, "extensions": list(v2.EXTENSIONS)})


@bp.get("/v2/health/live")
def v2_live() -> Response:
    return json_response({"live": True})


def v2_readiness(body: dict) -> Response:
    """The protocol's readiness answer: 200 for true, 400 for a model still loading (as
    Triton answers), 503 while shutting down (as KServe answers), so that a probe or a
    load balancer reading only the status stops sending."""
    s = state()
    ready = s.ready()
    status = 200 if ready else 503 if s.server and s.server.shutting_down() else 400
    return json_response({**body, "ready": ready}, status)


@bp.get("/v2/health/ready")
def v2_ready() -> Response:
    return v2_readiness({})


@bp.get(_V2_MODEL)
@bp.get(_V2_VERSION)
def v2_model_metadata(name: str, version: str | None = None) -> Response:
    meta = served_model(name, version)
    return json_response(v2.model_metadata(meta.model_name, meta.version))


@bp.get(f"{_V2_MODEL}/ready")
@bp.get(f"{_V2_VERSION}/ready")
def v2_model_ready(name: str, version: str | None = None) -> Response:
    served_model(name, version)
    return v2_readiness({"name": name})


@bp.post(f"{_V2_MODEL}/infer")
@bp.post(f"{_V2_VERSION}/infer")
def v2_infer(name: str, version: str | None = None) -> Response:
    s = state()
    meta = served_model(name, version)
    # tritonclient sends no Content-Type; binary requests may say octet-stream
    require_media_type("application/json", "application/octet-stream", "")
    body = read_body(s.settings.max_body_bytes)
    parsed = v2.parse_infer_request(body, request.headers.get(v2.HEADER_LENGTH), s.settings.max_beats)
    content, header_length = v2.encode_infer_response(
        score(parsed.beats, parsed.threshold), parsed, meta.model_name, meta.version
    )
    if header_length is None:
        return Response(content, mimetype="application/json")
    response = Response(content, mimetype="application/octet-stream")
    response.headers[v2.HEADER_LENGTH] = str(header_length)
    return response


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = metrics_module.render(state().metrics.registry, request.headers.get("Accept", ""))
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(state().settings))


@bp.get("/docs")
def docs() -> Response:
    return Response(docs_page(openapi_document(state().settings)), mimetype="text/html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
