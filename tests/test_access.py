"""API keys (README, Security): an operator names the clients in a file, and only they
can score; the probes and the scraper keep working; nothing about a key leaks."""

from __future__ import annotations

import os
import re
import secrets
import signal
from pathlib import Path

import pytest
import requests

from service.api_keys import KeysFile, KeysFileError, parse_keys
from service.metrics import ServiceMetrics

from .test_server import HOSTILE

BEAT = [0.1] * 140


def new_key() -> str:
    return secrets.token_urlsafe(32)


def write_keys(path: Path, *keys: str, comment: str = "# ecg-anomaly API keys") -> None:
    """Replace the file at once (write, then rename), as an operator or Kubernetes does."""
    staged = path.with_name(path.name + ".new")
    staged.write_text("\n".join([comment, "", *keys, ""]))
    os.replace(staged, path)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def v2_body(n: int = 1) -> dict:
    return {"inputs": [{"name": "beats", "shape": [n, 140], "datatype": "FP32", "data": BEAT * n}]}


@pytest.fixture()
def keys(tmp_path) -> tuple[Path, str, str]:
    path = tmp_path / "keys" / "api-keys"
    path.parent.mkdir()
    first, second = new_key(), new_key()
    write_keys(path, f"{first}  # team-a", second)
    return path, first, second


@pytest.fixture()
def guarded(make_app, keys):
    path, first, second = keys
    return make_app(api_keys_file=path).test_client(), first, second


# --- the keys file -------------------------------------------------------------------------


def test_a_keys_file_holds_one_key_a_line_with_comments_and_blank_lines():
    a, b = new_key(), new_key()
    keys = parse_keys(f"# clients\n\n{a}\n  {b}\t# team-b\n{a}\n")
    assert len(keys.digests) == 2  # the repeated key counts once
    assert keys.match(a) and keys.match(b) and keys.match(a) != keys.match(b)
    assert keys.match(new_key()) is None
    assert keys.match(a[:-1]) is None and keys.match(a + "x") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("# nothing but comments\n\n", "no key in the file"),
        ("short-key\n", "line 1: a key needs at least 16 characters"),
        ("# ok\n" + "a" * 20 + " b" * 3 + "\n", "line 2: one key a line"),
        ("k" * 20 + "\n" + "bad key é" + "x" * 20 + "\n", "line 2: one key a line"),
        ("ключ" * 8 + "\n", "line 1: a key may hold only"),
    ],
)
def test_a_keys_file_that_cannot_be_used_is_refused_naming_the_line_but_never_the_key(text, says):
    with pytest.raises(KeysFileError) as caught:
        parse_keys(text)
    assert says in str(caught.value)
    assert "a" * 20 not in str(caught.value) and "ключ" not in str(caught.value)


def test_a_keys_file_written_on_windows_reads_the_same(tmp_path):
    """A byte-order mark and CRLF line ends, as some editors write them."""
    from service.api_keys import read_keys_file

    key = new_key()
    path = tmp_path / "api-keys"
    path.write_bytes(b"\xef\xbb\xbf" + f"{key}\r\n# a comment\r\n".encode())
    assert read_keys_file(path).match(key)


def test_only_the_keys_digests_are_held_in_memory(keys):
    path, first, _second = keys
    held = KeysFile(path, check_seconds=1).keys
    assert all(len(d) == 32 for d in held.digests)  # SHA-256 digests
    assert first.encode() not in b"".join(held.digests) and first not in repr(held)


def test_a_changed_file_is_applied_once_it_has_settled(keys):
    """A worker applies a change on the look after it saw it, so a file being written in
    place is never read half-way; until then the old keys stay in force."""
    path, first, second = keys
    metrics = ServiceMetrics(__import__("prometheus_client").CollectorRegistry(), 1.0)
    watched = KeysFile(path, check_seconds=1, metrics=metrics)
    third = new_key()
    write_keys(path, second, third)
    watched.check()  # saw the change
    assert watched.keys.match(first) and not watched.keys.match(third)
    watched.check()  # unchanged since: applied
    assert watched.keys.match(third) and not watched.keys.match(first)
    assert metrics.registry.get_sample_value("ecg_api_keys_reload_failures_total") == 0


@pytest.mark.parametrize("breakage", ["no keys", "short key", "deleted", "unreadable"])
def test_a_broken_change_keeps_the_keys_in_force_and_is_counted(keys, breakage):
    path, first, second = keys
    metrics = ServiceMetrics(__import__("prometheus_client").CollectorRegistry(), 1.0)
    watched = KeysFile(path, check_seconds=1, metrics=metrics)
    if breakage == "no keys":
        write_keys(path)
    elif breakage == "short key":
        write_keys(path, first, "tooshort")
    elif breakage == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"\xff\xfe not utf-8 " + first.encode())
    synced = metrics.registry.get_sample_value("ecg_api_keys_loaded_timestamp_seconds")
    watched.check()
    watched.check()
    watched.check()
    assert watched.keys.match(first) and watched.keys.match(second)
    assert metrics.registry.get_sample_value("ecg_api_keys_reload_failures_total") == 1
    # the gauge no longer moves: the file in place is not what the worker holds
    assert metrics.registry.get_sample_value("ecg_api_keys_loaded_timestamp_seconds") == synced
    write_keys(path, second)  # fixed: applied, and the gauge moves again
    watched.check()
    watched.check()
    assert not watched.keys.match(first) and watched.keys.match(second)
    assert (metrics.registry.get_sample_value("ecg_api_keys_loaded_timestamp_seconds") or 0) > (synced or 0)


def test_a_worker_that_cannot_read_the_file_at_start_uses_the_masters_keys(tmp_path, keys):
    path, first, _ = keys
    fallback = KeysFile(path, check_seconds=1).keys
    path.write_text("no keys here\n")
    assert KeysFile(path, check_seconds=1, fallback=fallback).keys.match(first)
    with pytest.raises(KeysFileError):
        KeysFile(path, check_seconds=1)


# --- requests, in process ------------------------------------------------------------------


def test_without_keys_configured_every_route_is_open(client):
    assert client.post("/predict", json={"beats": [BEAT]}).status_code == 200


def test_predict_without_a_key_is_401_naming_the_header(guarded):
    client, _, _ = guarded
    r = client.post("/predict", json={"beats": [BEAT]})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="ecg-anomaly"'
    error = r.get_json()["error"]
    assert error["code"] == "missing_api_key"
    assert error["details"] == [
        {"loc": "header.Authorization", "msg": "missing; send the header `Authorization: Bearer <key>`"}
    ]


def test_predict_with_a_wrong_key_is_401_invalid_token(guarded):
    client, _, _ = guarded
    r = client.post("/predict", json={"beats": [BEAT]}, headers=bearer(new_key()))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="ecg-anomaly", error="invalid_token"'
    assert r.get_json()["error"]["code"] == "invalid_api_key"


def test_predict_with_either_live_key_is_scored(guarded):
    client, first, second = guarded
    for key in (first, second):
        r = client.post("/predict", json={"beats": [BEAT]}, headers=bearer(key))
        assert r.status_code == 200 and len(r.get_json()["predictions"]) == 1


def test_v2_errors_without_a_key_are_in_the_protocols_shape(guarded):
    client, first, _ = guarded
    r = client.post("/v2/models/tiny/infer", json=v2_body())
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    body = r.get_json()
    assert body["code"] == "missing_api_key" and isinstance(body["error"], str)
    assert client.post("/v2/models/tiny/infer", json=v2_body(), headers=bearer(first)).status_code == 200
    assert client.get("/v2/models/nope/ready").get_json()["code"] == "missing_api_key"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic dXNlcjpwYXNz", "missing_api_key"),
        ("Bearer", "missing_api_key"),
        ("Bearer    ", "missing_api_key"),
        ("Token abcdefghijklmnopqrstuvwxyz", "missing_api_key"),
        ("Bearer not a key at all", "invalid_api_key"),
        ("Bearer " + "x" * 7000, "invalid_api_key"),
        ("Bearer ../../etc/passwd", "invalid_api_key"),
        ("Bearer \x7f\x01abcdefghijklmnopqrs", "invalid_api_key"),
    ],
)
def test_malformed_authorization_headers_get_a_401_not_a_500(guarded, header, code):
    client, _, _ = guarded
    r = client.post("/predict", json={"beats": [BEAT]}, headers={"Authorization": header})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == code


def test_the_scheme_is_case_insensitive(guarded):
    client, first, _ = guarded
    r = client.post("/predict", json={"beats": [BEAT]}, headers={"Authorization": f"bearer {first}"})
    assert r.status_code == 200


def test_probes_and_the_scraper_need_no_key(guarded):
    client, _, _ = guarded
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_every_other_route_needs_the_key_even_one_that_does_not_exist(guarded):
    """Refused before routing: a stranger learns nothing of which routes exist."""
    client, first, _ = guarded
    for path in ("/", "/docs", "/openapi.json", "/v1/models/tiny", "/v1/models/tiny/metadata",
                 "/v1/models/tiny/test-split", "/explorer/main.js", "/v2", "/v2/health/ready",
                 "/no-such-route", "/v2/no-such-route"):  # fmt: skip
        assert client.get(path).status_code == 401, path
    assert client.get("/no-such-route", headers=bearer(first)).status_code == 404
    assert client.get("/v1/models/tiny", headers=bearer(first)).status_code == 200


def test_the_open_routes_are_a_setting_with_prefixes(make_app, keys):
    path, _first, _ = keys
    client = make_app(api_keys_file=path, auth_open_routes=("/livez", "/", "/explorer/*")).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/explorer/main.js").status_code == 200
    assert client.get("/readyz").status_code == 401  # no longer in the list
    assert client.get("/metrics").status_code == 401
    # an open prefix opens only what lies under it: no route is reached by walking out
    walked = client.post("/explorer/../predict", json={"beats": [BEAT]})
    assert walked.status_code == 405 and "predictions" not in walked.get_data(as_text=True)  # GET only
    assert client.get("/explorer/../v1/models/tiny").status_code == 404  # not the model's info
    assert client.post("/predict", json={"beats": [BEAT]}).status_code == 401


def test_failures_are_counted_by_route_and_reason_never_by_key(guarded):
    client, first, _ = guarded
    wrong = new_key()
    client.post("/predict", json={"beats": [BEAT]})
    client.post("/predict", json={"beats": [BEAT]}, headers=bearer(wrong))
    client.post("/predict", json={"beats": [BEAT]}, headers=bearer(wrong))
    client.get("/no-such-route")
    client.post("/predict", json={"beats": [BEAT]}, headers=bearer(first))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ecg_auth_failures_total{reason="missing",route="/predict"} 1.0' in text
    assert 'ecg_auth_failures_total{reason="invalid",route="/predict"} 2.0' in text
    assert 'ecg_auth_failures_total{reason="missing",route="unmatched"} 1.0' in text
    assert 'ecg_http_requests_total{method="POST",route="/predict",status="401"} 3.0' in text
    assert wrong not in text and first not in text
    fingerprint = parse_keys(first).match(first)
    assert fingerprint and fingerprint not in text
    labels = re.findall(r"^ecg_auth_failures_total\{([^}]*)\}", text, re.M)
    assert {tuple(sorted(pair.split("=")[0] for pair in found.split(","))) for found in labels} == {
        ("reason", "route")
    }


def test_the_metrics_listener_serves_only_metrics_and_the_api_listener_no_longer_does(make_app, keys):
    path, first, _ = keys
    client = make_app(api_keys_file=path, metrics_bind="127.0.0.1:9100").test_client()
    scrape = "http://localhost:9100"
    assert client.get("/metrics", base_url=scrape).status_code == 200  # no key
    assert client.post("/predict", json={"beats": [BEAT]}, base_url=scrape).status_code == 404
    assert client.get("/metrics").status_code == 404  # the API's listener: moved away
    assert client.get("/metrics", headers=bearer(first)).status_code == 404


def test_every_response_says_nosniff_and_scores_are_never_stored(guarded):
    client, first, _ = guarded
    responses = {
        "scores": client.post("/predict", json={"beats": [BEAT]}, headers=bearer(first)),
        "v2 scores": client.post("/v2/models/tiny/infer", json=v2_body(), headers=bearer(first)),
        "401": client.post("/predict", json={"beats": [BEAT]}),
        "422": client.post("/predict", json={"beats": [[1]]}, headers=bearer(first)),
        "404": client.get("/nope", headers=bearer(first)),
        "probe": client.get("/readyz"),
        "metrics": client.get("/metrics"),
    }
    for what, r in responses.items():
        assert r.headers["X-Content-Type-Options"] == "nosniff", what
        assert r.headers["Cache-Control"] == "no-store", what
    page = client.get("/explorer/main.js", headers=bearer(first))
    assert page.headers["Cache-Control"] == "no-cache"  # the explorer's files revalidate
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_the_openapi_document_says_which_operations_need_a_key(guarded, client):
    guarded_client, first, _ = guarded
    document = guarded_client.get("/openapi.json", headers=bearer(first)).get_json()
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "An API key (README, Security)."
    }  # fmt: skip
    assert document["security"] == [{"apiKey": []}]
    assert "401" in document["paths"]["/predict"]["post"]["responses"]
    assert "401" in document["paths"]["/v2/models/{name}/infer"]["post"]["responses"]
    for path in ("/livez", "/readyz", "/metrics"):
        assert document["paths"][path]["get"]["security"] == [], path
    assert "securitySchemes" not in client.get("/openapi.json").get_json()["components"]  # keys off


# --- a real server --------------------------------------------------------------------------

_LEAKS = re.compile(r"Traceback|File \"|/work/|/app/|site-packages|\.py\b|tensorflow|werkzeug|gunicorn/\d")


def no_leak(body: str) -> None:
    assert not _LEAKS.search(body), body[:400]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    tmp = tmp_path_factory.mktemp("keyed")
    path = tmp / "keys" / "api-keys"
    path.parent.mkdir()
    first, second = new_key(), new_key()
    write_keys(path, first, second)
    srv = start_gunicorn(tmp, BUNDLED_MODELS, BUNDLED_NAME, ECG_API_KEYS_FILE=str(path))
    try:
        srv.wait_ready()
        yield srv, first, second
    finally:
        srv.stop()


ROUTES = [  # (method, path, body): what a client of each API calls
    ("POST", "/predict", {"beats": [BEAT]}),
    ("POST", "/v2/models/ecg-autoencoder/infer", v2_body()),
    ("GET", "/v2/models/ecg-autoencoder", None),
    ("GET", "/v1/models/ecg-autoencoder", None),
    ("GET", "/v1/models/ecg-autoencoder/metadata", None),
    ("GET", "/", None),
    ("GET", "/openapi.json", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
def test_each_api_route_answers_only_a_valid_key(keyed, method, path, body):
    srv, first, _ = keyed
    url = srv.url + path
    missing = requests.request(method, url, json=body, timeout=30)
    wrong = requests.request(method, url, json=body, headers=bearer(new_key()), timeout=30)
    valid = requests.request(method, url, json=body, headers=bearer(first), timeout=30)
    assert (missing.status_code, wrong.status_code, valid.status_code) == (401, 401, 200)
    for refused, code in ((missing, "missing_api_key"), (wrong, "invalid_api_key")):
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="ecg-anomaly"')
        body_json = refused.json()
        assert code in (body_json["code"] if path.startswith("/v2") else body_json["error"]["code"])
        no_leak(refused.text)


def test_the_open_routes_answer_without_a_key_on_a_real_server(keyed):
    srv, _, _ = keyed
    for path in ("/livez", "/readyz", "/metrics"):
        r = requests.get(srv.url + path, timeout=30)
        assert r.status_code == 200, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "ecg_auth_failures_total" in requests.get(srv.url + "/metrics", timeout=30).text


def test_tritonclient_sends_the_key_in_a_header(keyed):
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    srv, first, _ = keyed
    client = httpclient.InferenceServerClient(srv.url.removeprefix("http://"))
    beats = np.full((2, 140), 0.1, dtype=np.float32)
    inputs = [httpclient.InferInput("beats", list(beats.shape), "FP32")]
    inputs[0].set_data_from_numpy(beats, binary_data=True)
    result = client.infer("ecg-autoencoder", inputs, headers=bearer(first))
    assert result.as_numpy("mse").shape == (2,)
    assert client.is_server_ready(headers=bearer(first))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("ecg-autoencoder", inputs)
    assert "missing_api_key" in str(refused.value) or "API key" in str(refused.value)
    with pytest.raises(InferenceServerException):
        client.infer("ecg-autoencoder", inputs, headers=bearer(new_key()))


def test_the_log_names_a_key_by_its_fingerprint_and_never_holds_a_key(keyed):
    from .test_server import access_log

    srv, first, second = keyed
    tag = secrets.token_hex(8)
    for key in (first, second, new_key()):
        requests.post(
            srv.url + "/predict",
            json={"beats": [BEAT]},
            headers={**bearer(key), "X-Request-ID": f"{tag}-{key[:3]}"},
            timeout=30,
        )
    lines = access_log(srv, tag, 3)
    named = sorted(line.get("api_key", "") for line in lines if line["status"] == 200)
    assert len(named) == 2 and all(re.fullmatch(r"[0-9a-f]{8}", n) for n in named) and named[0] != named[1]
    assert [line["auth_failure"] for line in lines if line["status"] == 401] == ["invalid"]
    log = srv.log()
    assert first not in log and second not in log
    assert first[:12] not in log  # not even a prefix of one


def test_hostile_bodies_with_a_valid_key_still_get_their_4xx(keyed):
    srv, first, _ = keyed
    booted = srv.log().count("Booting worker")
    for body, status in HOSTILE:
        r = requests.post(
            srv.url + "/predict",
            data=body,
            headers={**bearer(first), "Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == status, (body[:40], r.text[:300])
        no_leak(r.text)
    # hostile credentials: a huge header, raw bytes, many of them
    for header in (b"Bearer " + b"k" * 8100, b"Bearer \xff\xfe\x00", b"Bearer " + first.encode() + b"\x00"):
        r = requests.post(srv.url + "/predict", json={"beats": [BEAT]}, headers={"Authorization": header},
                          timeout=30)  # fmt: skip
        assert r.status_code in (400, 401, 431), r.text[:300]
        assert r.headers["Content-Type"] == "application/json"
        no_leak(r.text)
    assert srv.log().count("Booting worker") == booted, "a worker was restarted"
    assert "Traceback" not in srv.log()


def test_the_server_banner_names_no_version(keyed):
    srv, _first, _ = keyed
    for r in (requests.get(srv.url + "/livez", timeout=30), requests.get(srv.url + "/nope", timeout=30)):
        assert not re.search(r"\d", r.headers.get("Server", "")), r.headers.get("Server")


def test_a_server_whose_keys_file_is_unusable_does_not_start(tmp_path):
    import subprocess

    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    keys = tmp_path / "api-keys"
    keys.write_text("# every key was removed\n")
    srv = start_gunicorn(tmp_path, BUNDLED_MODELS, BUNDLED_NAME, ECG_API_KEYS_FILE=str(keys))
    try:
        assert srv.process.wait(60) == 1
    except subprocess.TimeoutExpired:
        srv.stop()
        raise
    assert "cannot serve: ECG_API_KEYS_FILE" in srv.log() and "no key in the file" in srv.log()
    assert "Booting worker" not in srv.log()


def test_metrics_on_their_own_port_need_no_key_while_the_api_port_does(tmp_path):
    import dataclasses

    from benchmarks.common import free_port

    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    keys = tmp_path / "keys" / "api-keys"
    keys.parent.mkdir()
    key = new_key()
    write_keys(keys, key)
    port = free_port()
    srv = start_gunicorn(
        tmp_path, BUNDLED_MODELS, BUNDLED_NAME, workers=1,
        ECG_API_KEYS_FILE=str(keys), ECG_METRICS_BIND=f"127.0.0.1:{port}",
    )  # fmt: skip
    scraper = dataclasses.replace(srv, url=f"http://127.0.0.1:{port}")
    try:
        scraper.wait_ready(workers=1)
        assert requests.get(scraper.url + "/metrics", timeout=30).status_code == 200
        assert requests.post(scraper.url + "/predict", json={"beats": [BEAT]}, timeout=30).status_code == 404
        assert requests.get(srv.url + "/metrics", timeout=30).status_code == 404
        assert requests.get(srv.url + "/metrics", headers=bearer(key), timeout=30).status_code == 404
        # the Host header does not choose the listener: the socket does
        spoofed = {"Host": f"127.0.0.1:{port}"}
        assert requests.get(srv.url + "/metrics", headers=spoofed, timeout=30).status_code == 404
        assert (
            requests.get(srv.url + "/v1/models/ecg-autoencoder", headers=spoofed, timeout=30).status_code
            == 401
        )
        assert requests.get(srv.url + "/readyz", timeout=30).status_code == 200
        ok = requests.post(srv.url + "/predict", json={"beats": [BEAT]}, headers=bearer(key), timeout=30)
        assert ok.status_code == 200
    finally:
        srv.stop()


def keys_in_force_since(srv, moment: float, timeout: float = 120.0) -> None:
    """Until every live worker holds the keys file as it was at ``moment`` or later
    (``ecg_api_keys_loaded_timestamp_seconds`` is the minimum over live workers)."""
    import time

    from .test_server import metric

    deadline = time.monotonic() + timeout
    while metric(srv, r"ecg_api_keys_loaded_timestamp_seconds") < moment:
        assert time.monotonic() < deadline, f"keys never reloaded:\n{srv.log()[-3000:]}"
        assert srv.process.poll() is None, srv.log()[-3000:]
        time.sleep(0.1)


def test_rotating_keys_under_load_loses_no_request_that_carries_a_valid_key(tmp_path):
    """The README's rotation: add the new key, wait until every worker has it, move the
    clients to it, remove the old key. Clients never stop sending, and not one of their
    requests is refused; afterwards the old key is refused."""
    import time

    from benchmarks.lifecycle import Load

    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    path = tmp_path / "keys" / "api-keys"
    path.parent.mkdir()
    old, new = new_key(), new_key()
    write_keys(path, old)
    srv = start_gunicorn(
        tmp_path, BUNDLED_MODELS, BUNDLED_NAME, ECG_API_KEYS_FILE=str(path), ECG_API_KEYS_CHECK_SECONDS="0.2"
    )
    in_use = {"key": old}
    try:
        srv.wait_ready()
        with Load(srv, clients=4, headers=lambda: bearer(in_use["key"])) as load:
            load.wait_for(50)
            written = time.time()
            write_keys(path, old, new)  # 1. add the new key
            keys_in_force_since(srv, written)
            in_use["key"] = new  # 2. clients move to it
            load.wait_for(load.count()[200] + 50)
            written = time.time()
            write_keys(path, new)  # 3. remove the old key
            keys_in_force_since(srv, written)
            load.wait_for(load.count()[200] + 50)
        outcomes = load.count()
        assert set(outcomes) == {200}, outcomes
        old_refused = requests.post(
            srv.url + "/predict", json={"beats": [BEAT]}, headers=bearer(old), timeout=30
        )
        assert old_refused.status_code == 401
        assert old_refused.json()["error"]["code"] == "invalid_api_key"
        assert srv.log().count("API keys reloaded") >= 4  # 2 changes x 2 workers
    finally:
        srv.stop()


def test_a_broken_keys_file_on_a_running_server_keeps_the_keys_in_force(tmp_path):
    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn
    from .test_server import metric

    path = tmp_path / "keys" / "api-keys"
    path.parent.mkdir()
    key = new_key()
    write_keys(path, key)
    srv = start_gunicorn(
        tmp_path, BUNDLED_MODELS, BUNDLED_NAME, workers=1,
        ECG_API_KEYS_FILE=str(path), ECG_API_KEYS_CHECK_SECONDS="0.2",
    )  # fmt: skip
    try:
        srv.wait_ready(workers=1)
        write_keys(path, "short")
        srv.wait_for_log("API keys file change not applied")
        assert metric(srv, r"ecg_api_keys_reload_failures_total") == 1
        r = requests.post(srv.url + "/predict", json={"beats": [BEAT]}, headers=bearer(key), timeout=30)
        assert r.status_code == 200
        # a worker respawned now cannot read the file: it serves with the keys the master read
        (worker,) = srv.worker_pids()
        os.kill(worker, signal.SIGKILL)
        srv.wait_for_log("serving with the keys read at start")
        srv.wait_ready(workers=1)
        r = requests.post(srv.url + "/predict", json={"beats": [BEAT]}, headers=bearer(key), timeout=30)
        assert r.status_code == 200
        assert srv.worker_pids() != [worker]
    finally:
        srv.stop()
