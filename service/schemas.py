"""Request and response bodies as pydantic models: they validate input and generate the
OpenAPI document, so the docs cannot drift from what the handlers accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .artifact import INPUT_LENGTH, Scaler, TestMetrics, Threshold

# Far beyond any ECG sample (the training data spans about -7..+8), yet small enough that
# float32 scoring cannot overflow to inf/NaN: a value past it is refused, not scored.
MAX_ABS_VALUE = 1e6
Value = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
Beat = Annotated[
    list[Value],
    Field(
        min_length=INPUT_LENGTH,
        max_length=INPUT_LENGTH,
        description=f"One heartbeat: {INPUT_LENGTH} samples in raw ECG units, as in ECG5000.",
    ),
]

StrictBool = Annotated[bool, Field(strict=True)]
# A request's own threshold, in place of the model's (both APIs accept one)
ThresholdOverride = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beats: list[Beat] = Field(min_length=1, description="1 to ECG_MAX_BEATS beats.")
    threshold: ThresholdOverride | None = Field(
        None, description="Overrides the model's threshold for this request."
    )
    return_reconstruction: StrictBool = Field(
        False, description="Also return each beat's reconstruction in raw units."
    )


class BeatScore(BaseModel):
    mse: float = Field(description="Mean of point_errors: the anomaly score (scaled space).")
    is_anomaly: bool = Field(description="mse > threshold.")
    point_errors: list[float] = Field(
        description=f"{INPUT_LENGTH} squared errors between the min-max scaled beat and its reconstruction."
    )
    out_of_range: bool = Field(
        description="The beat has values outside the training data's min/max: trust its score less."
    )
    reconstruction: list[float] | None = Field(
        None, description="Only with return_reconstruction: the reconstruction in raw units."
    )


class PredictResponse(BaseModel):
    model_name: str
    model_version: int
    threshold: float = Field(description="The threshold applied to this request.")
    predictions: list[BeatScore]


class ErrorDetail(BaseModel):
    loc: str = Field(description='Where in the body, e.g. "beats[3][17]".')
    msg: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelInfo(BaseModel):
    name: str
    version: int
    versions_available: list[int]
    created_at: datetime
    input_length: int
    threshold: Threshold
    scaler: Scaler
    metrics: TestMetrics
    ready: bool


class Status(BaseModel):
    status: str
    model_name: str | None = None
    model_version: int | None = None
