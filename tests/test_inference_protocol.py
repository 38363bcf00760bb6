"""The Open Inference Protocol (KServe v2) under /v2: what a Triton or KServe client sends
and gets back, JSON and binary, and how each bad request is refused."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest
import requests

from service.errors import InvalidInput
from service.inference_protocol import OUTPUTS, encode_infer_response, parse_infer_request

from .conftest import BUNDLED_NAME

INFER = "/v2/models/tiny/infer"
HEADER = "Inference-Header-Content-Length"


def binary_request(beats: np.ndarray, dtype: str = "FP32", **extra) -> tuple[bytes, dict]:
    """A request in the binary tensor extension: JSON header, then the raw tensor."""
    raw = np.ascontiguousarray(beats, dtype="<f4" if dtype == "FP32" else "<f8").tobytes()
    header = {
        "inputs": [
            {
                "name": "beats",
                "shape": list(beats.shape),
                "datatype": dtype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        **extra,
    }
    head = json.dumps(header).encode()
    return head + raw, {HEADER: str(len(head))}


def json_request(beats: np.ndarray, **extra) -> dict:
    tensor = {"name": "beats", "shape": list(beats.shape), "datatype": "FP32", "data": beats.ravel().tolist()}
    return {"inputs": [tensor], **extra}


def decode(response) -> dict[str, np.ndarray]:
    """Every output as a numpy array, whether it came as JSON data or binary data."""
    length = response.headers.get(HEADER)
    head = json.loads(response.data[: int(length)] if length else response.data)
    tail = memoryview(response.data)[int(length) :] if length else memoryview(b"")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for out in head["outputs"]:
        dtype = np.float32 if out["datatype"] == "FP32" else np.bool_
        if "data" in out:
            arrays[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
        else:
            size = out["parameters"]["binary_data_size"]
            chunk: np.ndarray = np.frombuffer(tail[offset : offset + size], dtype=dtype)
            arrays[out["name"]] = chunk.reshape(out["shape"])
            offset += size
    assert offset == len(tail), "every binary byte belongs to an output"
    return arrays


def test_json_inference_gives_the_same_scores_as_predict(client, pool):
    beats = pool.beats[:4]
    response = client.post(INFER, json=json_request(beats, id="req-7"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["model_name"] == "tiny" and body["model_version"] == "1" and body["id"] == "req-7"
    assert [o["name"] for o in body["outputs"]] == list(OUTPUTS)  # all outputs when none are asked for
    got = decode(response)
    expected = client.post("/predict", json={"beats": beats.tolist()}).get_json()["predictions"]
    np.testing.assert_allclose(got["mse"], [p["mse"] for p in expected], rtol=1e-6)
    np.testing.assert_array_equal(got["is_anomaly"], [p["is_anomaly"] for p in expected])
    np.testing.assert_allclose(got["point_errors"], [p["point_errors"] for p in expected], rtol=1e-6)
    assert got["reconstruction"].shape == (4, 140)


def test_binary_in_and_out_is_the_json_answer_in_raw_float32(client, pool):
    beats = pool.beats[:5]
    body, headers = binary_request(beats, parameters={"binary_data_output": True})
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    binary = decode(response)
    as_json = decode(client.post(INFER, json=json_request(beats)))
    assert set(binary) == set(as_json)
    for name in binary:
        np.testing.assert_array_equal(binary[name], as_json[name])


def test_requested_outputs_come_in_order_each_in_its_own_format(client, pool):
    body, headers = binary_request(
        pool.beats[:2],
        outputs=[{"name": "is_anomaly"}, {"name": "mse", "parameters": {"binary_data": True}}],
    )
    response = client.post(INFER, data=body, headers=headers)
    head = json.loads(response.data[: int(response.headers[HEADER])])
    assert [o["name"] for o in head["outputs"]] == ["is_anomaly", "mse"]
    assert "data" in head["outputs"][0] and head["outputs"][1]["parameters"]["binary_data_size"] == 8


def test_nested_rows_fp64_and_a_threshold_parameter(client, pool):
    beats = pool.beats[:2]
    nested = {"inputs": [{"name": "beats", "shape": [2, 140], "datatype": "FP64", "data": beats.tolist()}]}
    flat = decode(client.post(INFER, json=json_request(beats)))
    np.testing.assert_array_equal(decode(client.post(INFER, json=nested))["mse"], flat["mse"])
    body, headers = binary_request(beats, dtype="FP64", parameters={"threshold": 1e-12})
    response = client.post(INFER, data=body, headers=headers)
    assert response.get_json()["parameters"]["threshold"] == 1e-12
    assert decode(response)["is_anomaly"].all()


def test_gzip_and_deflate_bodies_are_accepted(client, pool):
    raw = json.dumps(json_request(pool.beats[:1])).encode()
    for encoding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        response = client.post(INFER, data=packed, headers={"Content-Encoding": encoding})
        assert response.status_code == 200, response.get_json()
    predict = json.dumps({"beats": pool.beats[:1].tolist()}).encode()
    response = client.post(
        "/predict",
        data=gzip.compress(predict),
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 200


def test_server_and_model_metadata_and_health(client):
    assert client.get("/v2").get_json()["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/tiny/versions/1/ready").get_json() == {"name": "tiny", "ready": True}
    meta = client.get("/v2/models/tiny").get_json()
    assert meta["versions"] == ["1"] and meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "beats", "datatype": "FP32", "shape": [-1, 140]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]}["point_errors"] == [-1, 140]


GOOD = np.full((2, 140), 0.1, dtype=np.float32)


def with_value(value: float, beat: int = 1, point: int = 17) -> np.ndarray:
    beats = GOOD.copy()
    beats[beat, point] = value
    return beats


def tensor(**override) -> dict:
    return {
        "inputs": [{"name": "beats", "shape": [2, 140], "datatype": "FP32", "data": [0.1] * 280, **override}]
    }


BAD = [
    ("an unknown input", tensor(name="x"), {}, 422, "invalid_input", "inputs[0].name"),
    ("an integer datatype", tensor(datatype="INT32"), {}, 422, "invalid_input", "inputs[0].datatype"),
    ("139 samples a beat", tensor(shape=[2, 139]), {}, 422, "invalid_input", "inputs[0].shape"),
    ("a one-dimensional shape", tensor(shape=[280]), {}, 422, "invalid_input", "inputs[0].shape"),
    ("more beats than allowed", tensor(shape=[5000, 140]), {}, 413, "too_many_beats", "inputs[0].shape"),
    ("fewer values than the shape", tensor(data=[0.1] * 279), {}, 422, "invalid_input", "inputs[0].data"),
    (
        "a boolean among values",
        tensor(data=[0.1] * 17 + [True] + [0.1] * 262),
        {},
        422,
        "invalid_input",
        "inputs[0].data[17]",
    ),
    (
        "a string in a nested row",
        tensor(data=[[0.1] * 140, [0.1] * 17 + ["1"] + [0.1] * 122]),
        {},
        422,
        "invalid_input",
        "inputs[0].data[1][17]",
    ),
    ("no data at all", tensor(data=None), {}, 422, "invalid_input", "inputs[0].data"),
    ("two inputs", {"inputs": tensor()["inputs"] * 2}, {}, 422, "invalid_input", "inputs"),
    (
        "an unknown output",
        {**tensor(), "outputs": [{"name": "x"}]},
        {},
        422,
        "invalid_input",
        "outputs[0].name",
    ),
    (
        "an output twice",
        {**tensor(), "outputs": [{"name": "mse"}, {"name": "mse"}]},
        {},
        422,
        "invalid_input",
        "outputs[1].name",
    ),
    (
        "classification",
        {**tensor(), "outputs": [{"name": "mse", "parameters": {"classification": 2}}]},
        {},
        422,
        "invalid_input",
        "outputs[0].parameters.classification",
    ),
    (
        "a zero threshold",
        {**tensor(), "parameters": {"threshold": 0}},
        {},
        422,
        "invalid_input",
        "parameters.threshold",
    ),
    ("an unknown top-level key", {**tensor(), "extra": 1}, {}, 422, "invalid_input", "extra"),
    ("not JSON", b'{"inputs": [', {}, 400, "malformed_json", "body"),
    (
        "a NaN in binary data",
        binary_request(with_value(np.nan))[0],
        binary_request(GOOD)[1],
        422,
        "invalid_input",
        "inputs[0].data[1][17]",
    ),
    (
        "1e7 in binary data",
        binary_request(with_value(1e7))[0],
        binary_request(GOOD)[1],
        422,
        "invalid_input",
        "inputs[0].data[1][17]",
    ),
    (
        "binary data one byte short",
        binary_request(GOOD)[0][:-1],
        binary_request(GOOD)[1],
        400,
        "bad_request",
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "a header length past the body",
        binary_request(GOOD)[0],
        {HEADER: "999999"},
        400,
        "bad_request",
        f"headers.{HEADER}",
    ),
    (
        "a header length that is not a number",
        binary_request(GOOD)[0],
        {HEADER: "12x"},
        400,
        "bad_request",
        f"headers.{HEADER}",
    ),
    (
        "bytes after JSON-only data",
        json.dumps(tensor()).encode() + b"\0\0",
        {HEADER: str(len(json.dumps(tensor())))},
        400,
        "bad_request",
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "an unknown Content-Encoding",
        json.dumps(tensor()).encode(),
        {"Content-Encoding": "br"},
        415,
        "unsupported_media_type",
        "headers.Content-Encoding",
    ),
    (
        "a gzip body that is not gzip",
        b"not gzip at all",
        {"Content-Encoding": "gzip"},
        400,
        "bad_request",
        "headers.Content-Encoding",
    ),
    (
        "a text/plain body",
        json.dumps(tensor()).encode(),
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        "headers.Content-Type",
    ),
]


@pytest.mark.parametrize(
    "body,headers,status,code,loc", [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_a_bad_request_gets_a_precise_error_a_v2_client_can_read(client, body, headers, status, code, loc):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(INFER, data=data, headers=headers)
    assert response.status_code == status, response.data[:300]
    error = response.get_json()
    assert isinstance(error["error"], str) and error["code"] == code  # tritonclient reads "error" as text
    assert error["details"][0]["loc"] == loc, error


def test_a_gzip_bomb_is_refused_without_inflating_it(client):
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    response = client.post(INFER, data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and response.get_json()["code"] == "payload_too_large"


def test_a_model_or_version_that_is_not_served_is_a_404(client):
    for path, loc in (
        ("/v2/models/other/infer", "path.name"),
        ("/v2/models/tiny/versions/2/infer", "path.version"),
    ):
        response = client.post(path, json=tensor())
        assert response.status_code == 404 and response.get_json()["details"][0]["loc"] == loc


def test_the_codec_is_plain_numpy_without_a_server(app, pool):
    """Parsing and encoding need no Flask: bytes to a float32 batch, scores to bytes."""
    body, headers = binary_request(pool.beats[:3], parameters={"binary_data_output": True})
    request = parse_infer_request(body, headers[HEADER], max_beats=10)
    assert request.beats.dtype == np.float32 and request.beats.shape == (3, 140)
    np.testing.assert_array_equal(request.beats, pool.beats[:3].astype(np.float32))
    predictor = app.extensions["ecg"].loader.predictor()
    content, header_length = encode_infer_response(predictor.predict(request.beats), request, "tiny", 1)
    assert header_length is not None  # binary outputs follow the JSON header
    head = json.loads(content[:header_length])
    assert sum(o["parameters"]["binary_data_size"] for o in head["outputs"]) == len(content) - header_length
    with pytest.raises(InvalidInput):
        parse_infer_request(json.dumps(tensor(name="x")).encode(), None, max_beats=10)


def test_tritonclient_talks_to_the_real_server(server, pool, bundled_metadata):
    """NVIDIA's own client, over a real gunicorn: health, metadata, binary and JSON inference."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    test = np.asarray(bundled_metadata.split.test_indices)
    beats = pool.beats[test[:64]].astype(np.float32)
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(BUNDLED_NAME)
        assert client.get_model_metadata(BUNDLED_NAME)["inputs"][0]["shape"] == [-1, 140]
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

        results = {}
        for binary in (True, False):
            inputs = [triton.InferInput("beats", list(beats.shape), "FP32")]
            inputs[0].set_data_from_numpy(beats, binary_data=binary)
            outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("mse", "is_anomaly")]
            result = client.infer(BUNDLED_NAME, inputs, outputs=outputs, request_compression_algorithm="gzip")
            results[binary] = (result.as_numpy("mse"), result.as_numpy("is_anomaly"))
        np.testing.assert_array_equal(results[True][0], results[False][0])
        expected = requests.post(f"{server.url}/predict", json={"beats": beats.tolist()}, timeout=30).json()
        np.testing.assert_allclose(results[True][0], [p["mse"] for p in expected["predictions"]], rtol=1e-6)
        np.testing.assert_array_equal(results[True][1], [p["is_anomaly"] for p in expected["predictions"]])
        labels = pool.classes[test[:64]] != 1
        assert (results[True][1] == labels).mean() > 0.9  # the bundled model, on held-out beats

        bad = beats[:2].copy()
        bad[1, 17] = np.inf
        inputs = [triton.InferInput("beats", [2, 140], "FP32")]
        inputs[0].set_data_from_numpy(bad, binary_data=True)
        with pytest.raises(InferenceServerException, match=r"inputs\[0\]\.data\[1\]\[17\]") as caught:
            client.infer(BUNDLED_NAME, inputs)
        assert caught.value.status() == "422"
    finally:
        client.close()
