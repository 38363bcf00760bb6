"""``POST /predict``'s wire format: body bytes to a validated request, scores to body
bytes. No Flask here (``service/inference_protocol.py`` is the same for ``/v2``): the
route in ``service/api.py`` only translates, and the benchmark's in-process path calls
these two functions exactly as the route does."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from .artifact import Metadata
from .errors import Detail, TooManyBeats, from_validation_error
from .predictor import Scores
from .schemas import PredictRequest

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY  # numpy arrays and scalars as JSON, without copies


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


def encode_predict_response(scores: Scores, metadata: Metadata, with_reconstruction: bool) -> bytes:
    """One prediction per beat, in the order sent (``schemas.PredictResponse``)."""
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
    body = {
        "model_name": metadata.model_name,
        "model_version": metadata.version,
        "threshold": scores.threshold,
        "predictions": predictions,
    }
    return orjson.dumps(body, option=JSON_OPTIONS)
