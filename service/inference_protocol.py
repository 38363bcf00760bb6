"""The Open Inference Protocol (KServe v2, as spoken by Triton and MLServer), with its
binary tensor extension.

Why a second API: clients, gateways and load tests built for those servers work here
unchanged (``tritonclient`` included), and bulk clients can send and receive raw
little-endian tensors, which at 256 beats a request costs a fraction of JSON's decoding
and encoding (see ``benchmarks/RESULTS.md``). The scores are the same as ``/predict``'s.

Plain data in, plain data out: :func:`parse_infer_request` turns body bytes into a numpy
batch, :func:`encode_infer_response` turns :class:`~service.predictor.Scores` into body
bytes. No Flask here; the routes in :mod:`service.v2_api` only translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .artifact import INPUT_LENGTH, OUTPUT_MSE, OUTPUT_POINT_ERRORS, OUTPUT_RECONSTRUCTION, SIGNATURE_INPUT
from .errors import BadRequest, Detail, InvalidInput, TooManyBeats, from_validation_error
from .predictor import Scores
from .schemas import MAX_ABS_VALUE, Beat, StrictBool, ThresholdOverride, Value

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "tensorflow_savedmodel"
INPUT_DTYPES: dict[str, np.dtype] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
_WIRE: dict[str, np.dtype] = {"FP32": np.dtype("<f4"), "BOOL": np.dtype("?")}


@dataclass(frozen=True)
class OutputSpec:
    """One output; its values are the :class:`~service.predictor.Scores` field of the same name."""

    name: str
    datatype: str  # a wire type: FP32 or BOOL
    per_beat: tuple[int, ...]  # shape of one beat's value


OUTPUTS: dict[str, OutputSpec] = {
    spec.name: spec
    for spec in (
        OutputSpec(OUTPUT_MSE, "FP32", ()),  # the anomaly score: mean of point_errors
        OutputSpec("is_anomaly", "BOOL", ()),  # mse > threshold
        OutputSpec(OUTPUT_POINT_ERRORS, "FP32", (INPUT_LENGTH,)),  # squared errors, scaled space
        OutputSpec("out_of_range", "BOOL", ()),  # values outside the training data's range
        OutputSpec(OUTPUT_RECONSTRUCTION, "FP32", (INPUT_LENGTH,)),  # raw units
    )
}


class _Parameters(BaseModel):
    # Clients add their own parameters (tritonclient: priority, timeout, ...): ignored.
    model_config = ConfigDict(extra="allow")


class RequestParameters(_Parameters):
    threshold: ThresholdOverride | None = Field(None, description="Overrides the model's threshold.")
    binary_data_output: StrictBool = Field(False, description="Every output as binary data.")


class InputParameters(_Parameters):
    binary_data_size: Annotated[int, Field(strict=True, ge=0)] | None = None


class OutputParameters(_Parameters):
    binary_data: StrictBool | None = None
    classification: Any = None


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[Annotated[int, Field(strict=True, ge=0)]]
    datatype: str
    parameters: InputParameters | None = None
    data: list[Any] | None = Field(None, description="Row-major values, flat or nested.")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: OutputParameters | None = None


class InferRequestHeader(BaseModel):
    """The JSON part of an inference request."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    # None rather than a default instance: pydantic deep-copies model defaults on every
    # request (~8 us of a ~60 us single-beat request)
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = None


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    beats: np.ndarray  # (n, 140) float32
    threshold: float | None
    outputs: tuple[tuple[str, bool], ...]  # (output name, as binary data)


_FLAT = TypeAdapter(list[Value])
_NESTED = TypeAdapter(list[Beat])


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail (empty without the extension's header)."""
    if header_length is None:
        return body, memoryview(b"")
    where = f"headers.{HEADER_LENGTH}"
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(f"{HEADER_LENGTH} must be an integer", [Detail(where, "not an integer")]) from None
    if not 0 < length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes",
            [Detail(where, f"expected 1 to {len(body)}")],
        )
    return body[:length], memoryview(body)[length:]


def parse_infer_request(body: bytes, header_length: str | None, max_beats: int) -> InferRequest:
    json_part, binary = split_body(body, header_length)
    try:
        header = InferRequestHeader.model_validate_json(json_part)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    beats = _read_beats(header.inputs[0], binary, max_beats)
    return InferRequest(
        id=header.id,
        beats=beats,
        threshold=header.parameters.threshold if header.parameters else None,
        outputs=_requested_outputs(header),
    )


def _read_beats(tensor: RequestInput, binary: memoryview, max_beats: int) -> np.ndarray:
    at = "inputs[0]"
    if tensor.name != SIGNATURE_INPUT:
        raise InvalidInput(
            f"unknown input {tensor.name!r}; this model takes one input, {SIGNATURE_INPUT!r}",
            [Detail(f"{at}.name", f"expected {SIGNATURE_INPUT!r}")],
        )
    dtype = INPUT_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(
            f"datatype {tensor.datatype!r} is not accepted for {SIGNATURE_INPUT!r}",
            [Detail(f"{at}.datatype", f"expected one of {sorted(INPUT_DTYPES)}")],
        )
    shape = tensor.shape
    if len(shape) != 2 or shape[1] != INPUT_LENGTH or shape[0] < 1:
        raise InvalidInput(
            f"shape {shape} is not [n, {INPUT_LENGTH}] with n >= 1",
            [Detail(f"{at}.shape", f"expected [n, {INPUT_LENGTH}]: n beats of {INPUT_LENGTH} samples")],
        )
    n = shape[0]
    if n > max_beats:
        raise TooManyBeats(
            f"{n} beats in one request; the limit is {max_beats}",
            [Detail(f"{at}.shape", f"at most {max_beats} beats per request")],
        )
    size = tensor.parameters.binary_data_size if tensor.parameters else None
    if size is None:
        if len(binary):
            raise BadRequest(
                f"{len(binary)} bytes follow the JSON header, but no input declares binary_data_size",
                [Detail(f"{at}.parameters.binary_data_size", "missing")],
            )
        return _from_json(tensor.data, n, at)
    if tensor.data is not None:
        raise InvalidInput(
            "an input has either data or binary_data_size, not both", [Detail(f"{at}.data", "unexpected")]
        )
    expected = n * INPUT_LENGTH * dtype.itemsize
    if size != expected or len(binary) != size:
        raise BadRequest(
            f"{n} x {INPUT_LENGTH} {tensor.datatype} values take {expected} bytes; "
            f"binary_data_size says {size} and {len(binary)} bytes follow the header",
            [Detail(f"{at}.parameters.binary_data_size", f"expected {expected}")],
        )
    values = np.frombuffer(binary, dtype=dtype).reshape(n, INPUT_LENGTH)
    _check_values(values, at)
    return values.astype(np.float32)


def _from_json(data: list[Any] | None, n: int, at: str) -> np.ndarray:
    if data is None:
        raise InvalidInput("the input has no data", [Detail(f"{at}.data", "missing")])
    nested = bool(data) and isinstance(data[0], list)
    try:
        values = (_NESTED if nested else _FLAT).validate_python(data, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=f"{at}.data") from None
    expected = n if nested else n * INPUT_LENGTH
    if len(values) != expected:
        raise InvalidInput(
            f"shape [{n}, {INPUT_LENGTH}] needs {n * INPUT_LENGTH} values, data has "
            f"{len(values) * (INPUT_LENGTH if nested else 1)}",
            [Detail(f"{at}.data", f"expected {expected} {'rows' if nested else 'values'}")],
        )
    return np.asarray(values, dtype=np.float32).reshape(n, INPUT_LENGTH)


def _check_values(values: np.ndarray, at: str) -> None:
    """Binary input skips pydantic: the same bounds as JSON input, checked in numpy."""
    bad = ~(np.abs(values) <= MAX_ABS_VALUE)  # NaN compares False, so it is caught too
    if not bad.any():
        return
    where = np.argwhere(bad)
    details = [
        Detail(
            f"{at}.data[{i}][{j}]",
            "value is not finite" if not np.isfinite(values[i, j]) else f"|value| exceeds {MAX_ABS_VALUE:g}",
        )
        for i, j in where[:50]
    ]
    raise InvalidInput(f"{len(where)} invalid value(s); first at {details[0].loc}", details)


def _requested_outputs(header: InferRequestHeader) -> tuple[tuple[str, bool], ...]:
    default_binary = header.parameters.binary_data_output if header.parameters else False
    if header.outputs is None:
        return tuple((name, default_binary) for name in OUTPUTS)
    seen: list[tuple[str, bool]] = []
    for i, output in enumerate(header.outputs):
        if output.name not in OUTPUTS:
            raise InvalidInput(
                f"unknown output {output.name!r}",
                [Detail(f"outputs[{i}].name", f"expected one of {list(OUTPUTS)}")],
            )
        if output.name in (name for name, _ in seen):
            raise InvalidInput(
                f"output {output.name!r} is requested twice", [Detail(f"outputs[{i}].name", "duplicate")]
            )
        parameters = output.parameters or OutputParameters()
        if parameters.classification is not None:
            raise InvalidInput(
                "the classification extension is not supported",
                [Detail(f"outputs[{i}].parameters.classification", "not supported")],
            )
        binary = parameters.binary_data
        seen.append((output.name, default_binary if binary is None else binary))
    return tuple(seen)


def encode_infer_response(
    scores: Scores, request: InferRequest, model_name: str, model_version: int
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, binary in request.outputs:
        spec = OUTPUTS[name]
        values = getattr(scores, name)
        entry: dict[str, Any] = {"name": name, "datatype": spec.datatype, "shape": list(values.shape)}
        if binary:
            raw = np.ascontiguousarray(values, dtype=_WIRE[spec.datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            entry["data"] = values.reshape(-1)
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request.id is not None:
        response["id"] = request.id
    response["parameters"] = {"threshold": scores.threshold}
    response["outputs"] = outputs
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not tail:
        return header, None
    return header + b"".join(tail), len(header)


def model_metadata(model_name: str, model_version: int) -> dict[str, Any]:
    return {
        "name": model_name,
        "versions": [str(model_version)],
        "platform": PLATFORM,
        "inputs": [{"name": SIGNATURE_INPUT, "datatype": "FP32", "shape": [-1, INPUT_LENGTH]}],
        "outputs": [
            {"name": spec.name, "datatype": spec.datatype, "shape": [-1, *spec.per_beat]}
            for spec in OUTPUTS.values()
        ],
    }
