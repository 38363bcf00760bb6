"""The real thing: gunicorn with 2 workers on a free loopback port, the bundled model,
real ECG5000 beats, and a real Prometheus scraping it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import requests

from service.runtimes import SignatureScorer

from .conftest import (
    BUNDLED_MODELS,
    BUNDLED_NAME,
    bundled_copy,
    free_port,
    publish_version,
    require_tool,
    start_gunicorn,
)


def predict(server, beats, **extra):
    return requests.post(
        f"{server.url}/predict", json={"beats": np.asarray(beats).tolist(), **extra}, timeout=30
    )


def metric(server, pattern: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern} (\S+)$", text, re.M))


def access_log(server, tag: str, n: int, timeout: float = 60.0) -> list[dict]:
    """The access-log records of requests whose id starts with ``tag``, once all ``n`` are
    written (a worker writes a request's line just after the response is out)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log().splitlines() if f'"request_id":"{tag}-' in line]
        if len(lines) >= n or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_readiness_turns_200_only_after_warm_up(tmp_path):
    """Right after start /livez answers while /readyz says 503; later /readyz says 200."""
    srv = start_gunicorn(tmp_path, BUNDLED_MODELS, BUNDLED_NAME, workers=1)
    try:
        seen: list[tuple[int, int]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                live = requests.get(f"{srv.url}/livez", timeout=60).status_code
                ready = requests.get(f"{srv.url}/readyz", timeout=60).status_code
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            seen.append((live, ready))
            if ready == 200:
                break
            time.sleep(0.05)
        assert seen and seen[-1] == (200, 200), srv.log()[-2000:]
        assert (200, 503) in seen, "readiness should have been 503 while TensorFlow loaded"
        assert "model ready" in srv.log()
    finally:
        srv.stop()


def test_a_normal_beat_scores_under_the_threshold_and_an_abnormal_one_over(server, pool, bundled_metadata):
    test = np.asarray(bundled_metadata.split.test_indices)
    normal = pool.beats[test[pool.classes[test] == 1][:50]]
    abnormal = pool.beats[test[pool.classes[test] != 1][:50]]
    body = predict(server, np.concatenate([normal, abnormal])).json()
    flags = np.array([p["is_anomaly"] for p in body["predictions"]])
    mse = np.array([p["mse"] for p in body["predictions"]])
    threshold = body["threshold"]
    assert threshold == pytest.approx(bundled_metadata.threshold.value)
    assert np.median(mse[:50]) < threshold < np.median(mse[50:])
    assert (~flags[:50]).mean() >= 0.9 and flags[50:].mean() >= 0.9
    assert not flags[0] and flags[50]  # the first normal and first abnormal test beats


def test_the_servers_scores_match_offline_scoring(server, pool, bundled_metadata):
    path = BUNDLED_MODELS / BUNDLED_NAME / str(bundled_metadata.version)
    beats = pool.beats[np.asarray(bundled_metadata.split.test_indices[:64])]
    offline = SignatureScorer(path, bundled_metadata.signature_name)(beats)
    body = predict(server, beats).json()
    np.testing.assert_allclose([p["mse"] for p in body["predictions"]], offline.mse, atol=1e-6)
    np.testing.assert_allclose(
        [p["point_errors"] for p in body["predictions"]], offline.point_errors, atol=1e-6
    )


HOSTILE = [
    (b'{"beats": [[NaN' + b",0" * 139 + b"]]}", 422),
    (b'{"beats": [[1, 2', 400),
    (b"\xff\xfe garbage", 400),
    (json.dumps({"beats": [[0.1] * 140] * 2000}).encode(), 413),
    (b'{"beats": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),  # nesting past the parser's limit
    (b"[" * 100000, 400),
]


def test_hostile_input_gets_4xx_and_no_worker_dies(server):
    booted = server.log().count("Booting worker")
    for body, status in HOSTILE:
        r = requests.post(
            f"{server.url}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert r.status_code == status, (body[:40], r.text[:300])
        assert r.json()["error"]["code"]
    big = requests.post(
        f"{server.url}/predict",
        data=b"x" * (9 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        for _ in range(9 * 1024):
            yield b"[" * 1024

    streamed = requests.post(
        f"{server.url}/predict", data=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert streamed.status_code == 413, streamed.text[:300]
    assert predict(server, [[0.0] * 140]).status_code == 200
    assert server.log().count("Booting worker") == booted, "a worker was restarted"
    assert "Traceback" not in server.log()


def raw_http(server, request: bytes) -> tuple[int, str, dict]:
    """Send bytes no HTTP library would send; the status, Content-Type and JSON body."""
    import socket

    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), json.loads(body)


_9K = b"a" * 9000  # past gunicorn's limits on the request line and on one header
MALFORMED_HTTP = [  # (request, status, code, where)
    (b"GARBAGE\r\n\r\n", 400, "malformed_http", "request_line"),
    (b"G@T /livez HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_http", "request_line.method"),
    (b"GET /" + _9K + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long", "request_line"),
    (b"GET /livez HTTP/1.1\r\nX-Big: " + _9K + b"\r\n\r\n", 431, "header_fields_too_large", "headers"),
    (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        400, "malformed_http", "headers.CONTENT-LENGTH",
    ),
    (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}",
        417, "expectation_failed", "headers.Expect",
    ),
    (  # a chunk size that is not hex: refused while the app reads the body
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        400, "bad_request", "body",
    ),
]  # fmt: skip


def test_malformed_http_gets_the_apis_json_error_not_an_html_page(server):
    """gunicorn refuses these before the app sees them; the client still gets the API's
    JSON error naming what was wrong, and nothing breaks."""
    booted = server.log().count("Booting worker")
    unparsed = r'ecg_http_requests_total\{[^}]*route="unparsed"[^}]*\}'
    counted = metric(server, unparsed)
    for request, status, code, where in MALFORMED_HTTP:
        got_status, content_type, body = raw_http(server, request)
        assert (got_status, body["error"]["code"]) == (status, code), (request[:40], body)
        assert content_type == "application/json"
        assert body["error"]["details"][0]["loc"] == where, body
    # all but the broken chunked body, which the app itself refuses, never reach a route
    assert metric(server, unparsed) - counted == len(MALFORMED_HTTP) - 1
    assert predict(server, [[0.0] * 140]).status_code == 200
    assert server.log().count("Booting worker") == booted, "a worker was restarted"
    assert "Traceback" not in server.log()


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """A worker stopped (SIGSTOP) for the duration: it serves nothing until resumed."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_metrics_count_every_request_across_both_workers(server, pool):
    """Whichever worker answers a scrape, it reports the requests of both: half the
    requests are served with one worker frozen, half with the other."""
    route = r'ecg_http_requests_total\{method="POST",route="/predict",status="200"\}'
    before = metric(server, route)
    beats_before = metric(server, "ecg_beats_scored_total")
    tag, n = f"both-{time.monotonic_ns()}", 40

    def post(i: int) -> int:
        body = {"beats": pool.beats[i : i + 2].tolist()}
        headers = {"X-Request-ID": f"{tag}-{i}"}
        return requests.post(f"{server.url}/predict", json=body, headers=headers, timeout=60).status_code

    first, second = server.worker_pids()
    with frozen(first):
        statuses = [post(i) for i in range(n // 2)]
    with frozen(second):
        statuses += [post(i) for i in range(n // 2, n)]
    assert set(statuses) == {200}
    by_worker = Counter(record["pid"] for record in access_log(server, tag, n))
    assert by_worker == {second: n // 2, first: n // 2}
    for _ in range(5):  # every scrape agrees, whichever worker serves it
        assert metric(server, route) - before == n
        assert metric(server, "ecg_beats_scored_total") - beats_before == 2 * n


def test_with_the_warm_worker_frozen_the_other_one_answers(server):
    """A hung worker (SIGSTOP) must not take the wake-ups meant for an idle worker: every
    request is answered while it is frozen, by the other worker (were the wake-ups its,
    they would wait for SIGCONT and time out)."""
    tag = f"frozen-{time.monotonic_ns()}"

    def livez(i: int) -> int:
        response = requests.get(f"{server.url}/livez", headers={"X-Request-ID": f"{tag}-{i}"}, timeout=30)
        return response.status_code

    livez(0)
    (warm,) = {record["pid"] for record in access_log(server, tag, 1)}
    with frozen(warm):
        answers = [livez(i) for i in range(1, 11)]
    assert set(answers) == {200}
    pids = {record["pid"] for record in access_log(server, tag, 11)}
    assert warm in pids and len(pids) == 2


def test_a_real_prometheus_scrapes_the_request_count(server, tmp_path):
    prometheus = require_tool("prometheus")
    target = server.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: ecg-anomaly\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115  (owned by the process)
    )
    try:
        route = r'ecg_http_requests_total\{method="POST",route="/predict",status="200"\}'
        for _ in range(7):
            assert predict(server, [[0.0] * 140]).status_code == 200
        expected = metric(server, route)
        query = 'sum(ecg_http_requests_total{route="/predict",status="200"})'
        got, up = None, None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                api = f"http://127.0.0.1:{port}/api/v1/query"
                res = requests.get(api, params={"query": query}, timeout=5).json()["data"]["result"]
                up_res = requests.get(api, params={"query": 'up{job="ecg-anomaly"}'}, timeout=5).json()
                up = up_res["data"]["result"][0]["value"][1] if up_res["data"]["result"] else None
                got = float(res[0]["value"][1]) if res else None
                if got == expected and up == "1":
                    break
            except (requests.ConnectionError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        assert up == "1", (tmp_path / "prometheus.log").read_text()[-2000:]
        assert got == expected >= 7
    finally:
        proc.terminate()
        proc.wait(20)


def run_until_exit(tmp_path, model_dir, name, timeout=90) -> tuple[int, str]:
    """Start a server expected to give up; its exit status and log."""
    srv = start_gunicorn(tmp_path, model_dir, name, workers=1)
    try:
        code = srv.process.wait(timeout)
    finally:
        srv.stop()
    return code, srv.log()


def test_a_model_that_cannot_load_stops_the_server_instead_of_serving_unready(tmp_path, tiny_run):
    """Valid metadata but a corrupt SavedModel: the worker exits and gunicorn halts."""
    models = tmp_path / "models"
    shutil.copytree(tiny_run.path.parent, models / "tiny")
    (models / "tiny" / "1" / "saved_model.pb").write_bytes(b"not a graph")
    code, log = run_until_exit(tmp_path, models, "tiny")
    assert code != 0
    assert "model load failed" in log


def test_a_missing_model_stops_the_server_at_start_with_the_reason(tmp_path):
    code, log = run_until_exit(tmp_path, tmp_path, "nope")
    assert code != 0
    assert "cannot serve: no versions of model 'nope'" in log
    assert "Traceback" not in log


def test_clients_that_stall_or_trickle_mid_request_do_not_hold_the_workers(tmp_path):
    """Three connections that send half a request and go silent, on a 2-worker server:
    each is dropped after ECG_CLIENT_TIMEOUT_SECONDS, long before gunicorn's 30 s worker
    timeout, so a normal request is served in seconds and no worker is restarted. A body
    that stops arriving gets a 408, sent with a Content-Length or in chunks; so does one
    that trickles in a byte at a time, at
    ECG_REQUEST_TIMEOUT_SECONDS. The log says so in a line each, without a traceback."""
    import socket

    srv = start_gunicorn(
        tmp_path,
        BUNDLED_MODELS,
        BUNDLED_NAME,
        ECG_CLIENT_TIMEOUT_SECONDS="1",
        ECG_REQUEST_TIMEOUT_SECONDS="3",
    )
    try:
        srv.wait_ready()
        port = int(srv.url.rsplit(":", 1)[1])
        booted = srv.log().count("Booting worker")
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        for s in stalled:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        time.sleep(0.2)
        started = time.monotonic()
        assert requests.get(f"{srv.url}/livez", timeout=25).status_code == 200
        assert time.monotonic() - started < 20, "stalled clients held the workers"  # not for 30 s

        def half_a_body_then_silence(framing: bytes, start: bytes) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                s.sendall(head + framing + b"\r\n\r\n" + start)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            status, _, body = reply.partition(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 408"), reply[:300]
            assert json.loads(body)["error"]["code"] == "request_timeout"

        half_a_body_then_silence(b"Content-Length: 1000", b'{"beats": [[')
        half_a_body_then_silence(b"Transfer-Encoding: chunked", b'c\r\n{"beats": [[\r\n')

        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:  # never silent for 1 s
            s.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"beats": [['
            )
            started = time.monotonic()
            try:
                while time.monotonic() - started < 25:
                    s.sendall(b"0")
                    time.sleep(0.3)
            except OSError:  # the server hung up mid-trickle
                pass
            reply = s.recv(65536)
            elapsed = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
        assert 2 < elapsed < 20, elapsed  # cut at 3 s, not left to trickle on for 25
        assert srv.log().count("Booting worker") == booted, "a worker was restarted"
        assert "Traceback" not in srv.log()
        assert "dropped a client that did not send its request in time" in srv.log()
        for s in stalled:
            s.close()
    finally:
        srv.stop()


def test_a_broken_new_version_on_sighup_keeps_the_served_one(tmp_path):
    """A version folder with bad metadata is published and SIGHUP sent: the server keeps
    serving version 1 and says why in its log. Once version 2 is fixed, the next SIGHUP
    serves it."""
    models = tmp_path / "models"
    bundled_copy(models)
    srv = start_gunicorn(tmp_path, models, BUNDLED_NAME)

    def served_after_reload() -> set[int]:
        """SIGHUP, then the versions /readyz names once both old workers have gone."""
        retired, exited = srv.log().count("retiring worker"), srv.log().count("Worker exiting")
        srv.process.send_signal(signal.SIGHUP)
        srv.wait_for_log("retiring worker", count=retired + 2)
        srv.wait_for_log("Worker exiting", count=exited + 2)
        deadline = time.monotonic() + 90
        versions: list[int] = []
        while len(versions) < 8 and time.monotonic() < deadline:
            answer = requests.get(f"{srv.url}/readyz", timeout=60)
            versions = [*versions, answer.json()["model_version"]] if answer.status_code == 200 else []
            time.sleep(0.05)
        assert len(versions) == 8, srv.log()[-2000:]
        return set(versions)

    try:
        srv.wait_ready()
        v2 = publish_version(models, 2, metadata="{not json")
        assert served_after_reload() == {1}
        assert srv.process.poll() is None
        assert "reload keeps version 1" in srv.log()

        meta = json.loads((models / BUNDLED_NAME / "1" / "metadata.json").read_text())
        (v2 / "metadata.json").write_text(json.dumps({**meta, "version": 2}))
        assert served_after_reload() == {2}
    finally:
        srv.stop()
