"""The HTTP API in-process (Flask test client): what a client sends and what it gets back."""

from __future__ import annotations

import io
import json
import logging
import os
import threading

import numpy as np
import pytest

from service.app import create_app
from service.artifact import ArtifactError
from service.request_log import JsonFormatter, JsonLines

GOOD_BEAT = [0.1] * 140


def post(client, body, content_type="application/json", **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/predict", data=data, content_type=content_type, headers=headers)


def test_posting_beats_returns_one_score_per_beat(client, pool, tiny_run):
    beats = pool.beats[:3]
    response = post(client, {"beats": beats.tolist()})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_name"] == "tiny" and body["model_version"] == 1
    assert body["threshold"] == pytest.approx(tiny_run.metadata.threshold.value)
    assert len(body["predictions"]) == 3
    for item in body["predictions"]:
        assert set(item) == {"mse", "is_anomaly", "point_errors", "out_of_range"}
        assert len(item["point_errors"]) == 140
        assert np.mean(item["point_errors"]) == pytest.approx(item["mse"], rel=1e-5)
        assert item["is_anomaly"] == (item["mse"] > body["threshold"])


def test_a_threshold_override_and_the_reconstruction_on_request(client, pool):
    response = post(
        client, {"beats": pool.beats[:2].tolist(), "threshold": 1e-9, "return_reconstruction": True}
    )
    body = response.get_json()
    assert response.status_code == 200 and body["threshold"] == 1e-9
    assert all(p["is_anomaly"] for p in body["predictions"])
    assert len(body["predictions"][0]["reconstruction"]) == 140


def test_integers_are_accepted_as_numbers(client):
    assert post(client, {"beats": [[0] * 140]}).status_code == 200


def beat_with(value_json: str, beat: int = 0, point: int = 17, n: int = 2) -> str:
    beats = [[0.1] * 140 for _ in range(n)]
    text = json.dumps({"beats": beats})
    # replace one value textually, so that tokens json.dumps can't write (NaN) go in verbatim
    rows = [",".join(["0.1"] * 140) for _ in range(n)]
    values = ["0.1"] * 140
    values[point] = value_json
    rows[beat] = ",".join(values)
    return text.replace(text, '{"beats": [' + ",".join(f"[{r}]" for r in rows) + "]}")


J, UMT, CT = "application/json", "unsupported_media_type", "headers.Content-Type"
BAD = "invalid_input"


def dumps(**fields) -> str:
    return json.dumps({"beats": [GOOD_BEAT], **fields})


BAD_INPUTS = [
    # (id, body, content type, status, code, loc)
    ("not json", b"{beats: nope", J, 400, "malformed_json", "body"),
    ("truncated json", b'{"beats": [[1, 2', J, 400, "malformed_json", "body"),
    ("empty body", b"", J, 400, "malformed_json", "body"),
    ("form content type", b"beats=1", "application/x-www-form-urlencoded", 415, UMT, CT),
    ("text content type", dumps(), "text/plain", 415, UMT, CT),
    ("not an object", b"[1, 2, 3]", J, 422, BAD, "body"),
    ("missing beats", b'{"beat": []}', J, 422, BAD, "beats"),
    ("extra field", dumps(mode="fast"), J, 422, BAD, "mode"),
    ("no beats", b'{"beats": []}', J, 422, BAD, "beats"),
    ("beats not a list", b'{"beats": 5}', J, 422, BAD, "beats"),
    ("beat not a list", b'{"beats": [5]}', J, 422, BAD, "beats[0]"),
    ("short beat", json.dumps({"beats": [GOOD_BEAT, [0.1] * 139]}), J, 422, BAD, "beats[1]"),
    ("long beat", json.dumps({"beats": [[0.1] * 141]}), J, 422, BAD, "beats[0]"),
    ("string value", beat_with('"0.5"', 1, 17), J, 422, BAD, "beats[1][17]"),
    ("boolean value", beat_with("true", 0, 3), J, 422, BAD, "beats[0][3]"),
    ("null value", beat_with("null", 1, 139), J, 422, BAD, "beats[1][139]"),
    ("bare NaN", beat_with("NaN", 1, 17), J, 422, BAD, "beats[1][17]"),
    ("bare Infinity", beat_with("Infinity", 0, 5), J, 422, BAD, "beats[0][5]"),
    ("-Infinity", beat_with("-Infinity", 0, 6), J, 422, BAD, "beats[0][6]"),
    ("overflow to inf", beat_with("1e999", 0, 7), J, 422, BAD, "beats[0][7]"),
    ("beyond float32", beat_with("1e300", 1, 9), J, 422, BAD, "beats[1][9]"),
    ("beyond the value bound", beat_with("-2e6", 0, 1), J, 422, BAD, "beats[0][1]"),
    ("nested list value", beat_with("[1]", 0, 8), J, 422, BAD, "beats[0][8]"),
    ("negative threshold", dumps(threshold=-1), J, 422, BAD, "threshold"),
    ("string threshold", dumps(threshold="0.1"), J, 422, BAD, "threshold"),
    ("string switch", dumps(return_reconstruction="yes"), J, 422, BAD, "return_reconstruction"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "loc"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gets_a_precise_json_error(client, body, content_type, status, code, loc):
    response = post(client, body, content_type)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert loc in [d["loc"] for d in error["details"]]
    assert "Traceback" not in response.get_data(as_text=True)


def test_too_many_beats_is_413(make_app):
    app = make_app(max_beats=4)
    response = post(app.test_client(), {"beats": [GOOD_BEAT] * 5})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_many_beats"
    assert "limit is 4" in response.get_json()["error"]["message"]


def test_too_large_a_body_is_413(make_app):
    app = make_app(max_body_bytes=2048)
    response = post(app.test_client(), {"beats": [GOOD_BEAT] * 10})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_unknown_route_is_a_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_request_id_is_echoed_or_made(client):
    assert (
        post(client, {"beats": [GOOD_BEAT]}, **{"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/livez").headers["X-Request-ID"]
    assert len(made) == 32
    hostile = "<script>" + "x" * 300
    assert client.get("/livez", headers={"X-Request-ID": hostile}).headers["X-Request-ID"] != hostile


def service_log() -> io.StringIO:
    """What the service writes to stdout from now on (its own handler, pointed here)."""
    out = io.StringIO()
    (handler,) = [h for h in logging.getLogger("service").handlers if isinstance(h, JsonLines)]
    handler.setStream(out)
    return out


def test_one_json_log_line_per_request(client):
    log = service_log()
    response = post(client, {"beats": [GOOD_BEAT, GOOD_BEAT]}, **{"X-Request-ID": "log-me"})
    assert "log-me" not in log.getvalue()  # not before it is sent
    response.close()  # what a WSGI server does once the response is written
    lines = [json.loads(line) for line in log.getvalue().splitlines() if "log-me" in line]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["logger"] == "service.access" and entry["level"] == "info" and entry["msg"] == "request"
    assert entry["method"] == "POST" and entry["path"] == "/predict" and entry["status"] == 200
    assert entry["beats"] == 2 and entry["duration_ms"] > 0 and entry["pid"] == os.getpid()


def test_the_access_log_follows_the_log_level(make_app):
    quiet = make_app(log_level="warning").test_client()
    log = service_log()
    quiet.get("/livez", headers={"X-Request-ID": "quiet-please"}).close()
    assert "quiet-please" not in log.getvalue()


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("the log reader is gone")


def test_a_broken_log_stream_never_fails_a_request(client, capsys):
    (handler,) = [h for h in logging.getLogger("service").handlers if isinstance(h, JsonLines)]
    handler.setStream(BrokenStream())
    response = post(client, {"beats": [GOOD_BEAT]})
    response.close()  # the access line is written here, and fails
    assert response.status_code == 200 and len(response.get_json()["predictions"]) == 1
    assert "BrokenPipeError" in capsys.readouterr().err  # logging's own report, on stderr


def test_the_access_log_goes_where_logging_is_sent(client):
    """An embedder that replaces the service's log handler gets the access lines there."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("service").handlers[:] = [handler]
    client.get("/livez", headers={"X-Request-ID": "over-here"}).close()
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines() if "over-here" in line]
    assert entry["logger"] == "service.access" and entry["route"] == "/livez" and entry["status"] == 200


def test_readiness_waits_for_the_model(tiny_settings, tiny_predictor):
    """Before the model is loaded and warm, /readyz and /predict say 503; /livez says 200."""
    release = threading.Event()

    def load():  # the model load, held until the test has seen the window
        assert release.wait(60)
        return tiny_predictor

    app = create_app(tiny_settings.model_copy(update={"ready_wait_seconds": 0}), load_predictor=load)
    client = app.test_client()
    first = client.get("/readyz")
    assert first.status_code == 503
    assert first.get_json()["error"]["code"] == "model_not_ready"
    assert post(client, {"beats": [GOOD_BEAT]}).status_code == 503
    assert client.get("/livez").status_code == 200
    release.set()
    assert app.extensions["ecg"].loader.wait(60)
    assert client.get("/readyz").status_code == 200
    assert post(client, {"beats": [GOOD_BEAT]}).status_code == 200


def test_a_request_during_warm_up_waits_for_the_model_instead_of_failing(tiny_settings, tiny_predictor):
    """A request that arrives while the model is still loading is answered once it is
    loaded (within ECG_READY_WAIT_SECONDS), not refused."""
    release = threading.Event()

    def load():
        assert release.wait(60)
        return tiny_predictor

    app = create_app(tiny_settings.model_copy(update={"ready_wait_seconds": 30}), load_predictor=load)
    loader = app.extensions["ecg"].loader
    ready_on_arrival = []

    @app.before_request
    def _arrived() -> None:  # the request is in: only now may the load finish
        ready_on_arrival.append(loader.ready)
        release.set()

    response = post(app.test_client(), {"beats": [GOOD_BEAT]})
    assert ready_on_arrival == [False]
    assert response.status_code == 200
    assert loader.ready


def test_a_missing_model_fails_at_start_up(tiny_settings, tmp_path):
    with pytest.raises(ArtifactError, match="no versions"):
        create_app(tiny_settings.model_copy(update={"model_dir": tmp_path}))
    with pytest.raises(ArtifactError, match="no version 9"):
        create_app(tiny_settings.model_copy(update={"model_version": 9}))


def test_model_info_describes_the_served_version(client, tiny_run):
    body = client.get("/v1/models/tiny").get_json()
    assert body["version"] == 1 and body["input_length"] == 140 and body["ready"] is True
    assert body["threshold"]["strategy"] == "best-f1"
    assert body["metrics"]["roc_auc"] == pytest.approx(tiny_run.metadata.metrics.roc_auc)
    assert set(body["scaler"]) >= {"data_min", "data_max"}
    other = client.get("/v1/models/other")
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "model_not_found"


def test_openapi_is_generated_from_the_request_schema(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    beats = schemas["PredictRequest"]["properties"]["beats"]
    assert beats["items"]["minItems"] == 140 == beats["items"]["maxItems"]
    assert "/predict" in doc["paths"] and "/v1/models/{name}" in doc["paths"]
    assert "/v2/models/{name}/infer" in doc["paths"] and "InferRequestHeader" in schemas
    page = client.get("/docs")
    assert page.status_code == 200 and b"/predict" in page.data


def test_metrics_count_requests_beats_and_anomalies(client):
    def value(text, name):
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").get_data(as_text=True)
    post(client, {"beats": [GOOD_BEAT] * 3, "threshold": 1e-12})
    post(client, {"beats": [[1e6] * 140]})
    after = client.get("/metrics").get_data(as_text=True)
    assert value(after, "ecg_beats_scored_total") - value(before, "ecg_beats_scored_total") == 4
    assert value(after, "ecg_anomalies_flagged_total") - value(before, "ecg_anomalies_flagged_total") == 4
    assert value(after, "ecg_out_of_range_beats_total") - value(before, "ecg_out_of_range_beats_total") == 1
    assert 'ecg_http_requests_total{method="POST",route="/predict",status="200"}' in after
    assert "ecg_http_request_duration_seconds_bucket" in after
    assert "ecg_beat_mse_bucket" in after and "ecg_predict_batch_size_beats_bucket" in after
    assert 'ecg_model_info{model_name="tiny",model_version="1"' in after


def test_metrics_speak_the_format_the_scraper_asks_for(client):
    plain = client.get("/metrics")
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    # what Prometheus itself sends: OpenMetrics preferred
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    open_metrics = client.get("/metrics", headers={"Accept": accept})
    assert open_metrics.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert open_metrics.get_data(as_text=True).rstrip().endswith("# EOF")


def test_made_up_methods_do_not_grow_the_metrics(client):
    """A client may send any token as a method: each would become a new time series."""
    for verb in ("BREW", "WHEN", "XYZZY"):
        assert client.open("/predict", method=verb).status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ecg_http_requests_total{method="other",route="unmatched",status="405"} 3.0' in text
    assert "BREW" not in text and "XYZZY" not in text


def test_a_body_shorter_than_its_content_length_is_a_400(client):
    """The client hung up mid-body: a clear 400, not a parse error on half a body."""
    body = b'{"beats": [[0.1, 0.2'
    response = client.post(
        "/predict", data=body, content_type="application/json", environ_overrides={"CONTENT_LENGTH": "5000"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "the request body ended before its Content-Length"
