"""The moments of change: SIGTERM, SIGHUP and a killed worker under load on a real
gunicorn (started as the README says) with the bundled model, most with one core kept
busy by another process; and the mechanisms behind them, each on its own."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from benchmarks.lifecycle import Load, ReadinessPoll
from service.arbiter import refuse_new_connections
from service.lifecycle import Phase, ServerState

from .conftest import BUNDLED_MODELS, BUNDLED_NAME, bundled_copy, publish_version, start_gunicorn

# Every lifecycle guarantee holds on both runtimes (README, Runtimes): only the signature
# call differs.
RUNTIMES = ["tensorflow", "litert"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sigterm_under_load_readiness_turns_503_then_every_accepted_request_is_answered(
    tmp_path, busy_core, runtime
):
    """8 clients, a new connection per request, and SIGTERM: /readyz says 503 at once while
    /predict is still answered for the shutdown delay; then the listener closes. No
    connection is reset, none gets a 5xx, a client that comes after the close is refused,
    and the server exits 0."""
    srv = start_gunicorn(
        tmp_path, BUNDLED_MODELS, BUNDLED_NAME, ECG_SHUTDOWN_DELAY_SECONDS="2", ECG_RUNTIME=runtime
    )
    try:
        srv.wait_ready()
        with Load(srv) as load:
            load.wait_for(100)
            with ReadinessPoll(srv, every=0.05) as poll:
                srv.process.send_signal(signal.SIGTERM)
                exit_code = srv.process.wait(90)
                time.sleep(0.5)  # clients now find nothing listening
        readiness = poll.answers
    finally:
        srv.stop()
    counts = load.count()
    assert exit_code == 0, srv.log()[-2000:]
    assert set(counts) <= {200, "refused"}, counts
    assert counts["refused"] > 0, "the load should have outlived the listener"
    first_503 = min(at for at, status in readiness if status == 503)
    first_refused = min(at for at, outcome in load.outcomes if outcome == "refused")
    assert first_503 < first_refused, "readiness must turn 503 before the listener closes"
    assert any(at > first_503 and outcome == 200 for at, outcome in load.outcomes), (
        "requests sent after readiness turned 503 should still have been served"
    )
    after = [status for at, status in readiness if at >= first_503]
    assert 200 not in after, "once shutting down, readiness never turns 200 again"
    assert "draining: readiness answers 503" in srv.log() and "closing: new connections refused" in srv.log()
    assert "Traceback" not in srv.log()


def test_sigterm_to_the_whole_process_group_drains_as_sigterm_to_the_master_does(tmp_path, busy_core):
    """``timeout`` and systemd's default KillMode send SIGTERM to the whole process
    group at once, so the workers get it before the master's drain has begun. They
    serve on through the delay, nothing is respawned, no connection is reset, and the
    server exits 0."""
    srv = start_gunicorn(tmp_path, BUNDLED_MODELS, BUNDLED_NAME, ECG_SHUTDOWN_DELAY_SECONDS="2")
    try:
        srv.wait_ready()
        booted = srv.log().count("Booting worker")
        with Load(srv) as load:
            load.wait_for(100)
            os.killpg(srv.process.pid, signal.SIGTERM)
            exit_code = srv.process.wait(90)
            time.sleep(0.5)  # clients now find nothing listening
    finally:
        srv.stop()
    counts = load.count()
    assert exit_code == 0, srv.log()[-2000:]
    assert set(counts) <= {200, "refused"}, counts
    assert srv.log().count("Booting worker") == booted, "a worker was respawned during the drain"
    assert "draining: readiness answers 503" in srv.log()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_sighups_under_load_on_a_busy_machine_answer_every_request_200(tmp_path, busy_core, runtime):
    """Publish version 2, SIGHUP, and SIGHUP again while 8 clients post: the new workers
    load TensorFlow out of the accept set and replace the old ones only once warm, so every
    request is answered 200, none is dropped, and version 2 is then served alone."""
    models = tmp_path / "models"
    bundled_copy(models)
    srv = start_gunicorn(tmp_path, models, BUNDLED_NAME, ECG_RUNTIME=runtime)
    try:
        srv.wait_ready()
        with Load(srv) as load:
            load.wait_for(50)
            publish_version(models, 2)
            for reload in (1, 2):
                srv.process.send_signal(signal.SIGHUP)
                srv.wait_for_log("retiring worker", count=2 * reload)  # both old workers replaced
            srv.wait_for_log("Worker exiting", count=4)
            served = load.count()[200]
            load.wait_for(served + 50)  # and the new generation serves
        versions = {requests.get(f"{srv.url}/readyz", timeout=60).json()["model_version"] for _ in range(8)}
    finally:
        srv.stop()
    assert load.count()[200] > 100
    assert set(load.count()) == {200}, load.count()
    assert versions == {2}
    assert srv.log().count("model ready") == 6


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_worker_killed_under_load_costs_at_most_its_in_flight_request(tmp_path, busy_core, runtime):
    """SIGKILL one of two workers while 4 clients post: the other keeps serving, the dead
    one's in-flight request is the most that fails (as a dropped connection), and gunicorn
    respawns it, out of the accept set until its model is warm."""
    srv = start_gunicorn(tmp_path, BUNDLED_MODELS, BUNDLED_NAME, ECG_RUNTIME=runtime)
    try:
        srv.wait_ready()
        with Load(srv, clients=4) as load:
            load.wait_for(50)
            victim = srv.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            srv.wait_for_log("Booting worker with pid", count=3)
            srv.wait_ready()  # the respawned worker's model is warm
            served = load.count()[200]
            load.wait_for(served + 50)
    finally:
        srv.stop()
    counts = load.count()
    assert counts[200] > 100
    assert set(counts) <= {200, "reset"}, counts
    assert counts["reset"] <= 1, counts


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_respawned_worker_serves_the_version_its_siblings_serve_until_sighup(tmp_path, runtime):
    """Version 2 is published while version 1 is served, and a worker dies: its
    replacement loads version 1, which the master chose, not the newest on disk; the next
    SIGHUP moves every worker to version 2."""
    models = tmp_path / "models"
    bundled_copy(models)
    srv = start_gunicorn(tmp_path, models, BUNDLED_NAME, ECG_RUNTIME=runtime)

    def loaded() -> list[int]:
        """The version each worker loaded, in the order their models became ready."""
        lines = [json.loads(line) for line in srv.log().splitlines() if '"msg":"model ready"' in line]
        return [line["version"] for line in lines]

    try:
        srv.wait_ready()
        publish_version(models, 2)
        os.kill(srv.worker_pids()[0], signal.SIGKILL)
        srv.wait_for_log("model ready", count=3)
        assert loaded() == [1, 1, 1]
        srv.process.send_signal(signal.SIGHUP)
        srv.wait_for_log("model ready", count=5)
        srv.wait_for_log("Worker exiting", count=2)  # the two of version 1 replaced
        assert loaded() == [1, 1, 1, 2, 2]
        assert requests.get(f"{srv.url}/readyz", timeout=60).json()["model_version"] == 2
    finally:
        srv.stop()


def test_a_60_mb_body_sent_before_reading_gets_the_413_json(server):
    """Python's http.client sends the whole body before it reads: it still reads the 413
    JSON error rather than a connection reset."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            "POST", "/predict", body=b"x" * 60_000_000, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert requests.get(f"{server.url}/livez", timeout=60).status_code == 200


def test_a_malformed_header_followed_by_a_large_body_still_gets_its_json_error(server):
    """gunicorn refuses the header before the app sees the request; the megabytes behind
    it are read and dropped, so the client reads the 400 instead of a reset."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\nBad Header: x\r\n\r\n")
        s.sendall(b"x" * 4_000_000)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["error"]["code"] == "malformed_http"


# --- the mechanisms ----------------------------------------------------------------------


def test_a_refusing_listener_keeps_its_queued_connection_and_takes_no_new_one():
    """After ``refuse_new_connections`` a connection already queued is still accepted and
    served, and a new one never completes its handshake (closed, it is refused)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))
    queued.sendall(b"ping")
    assert refuse_new_connections(listener)
    with pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", port), timeout=1.5)
    accepted, _ = listener.accept()
    assert accepted.recv(4) == b"ping"
    accepted.sendall(b"pong")
    assert queued.recv(4) == b"pong"
    for s in (accepted, queued, listener):
        s.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_unix_listener_is_left_to_be_unlinked(tmp_path):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    listener.listen(1)
    assert refuse_new_connections(listener) is False
    listener.close()


def test_the_server_state_is_shared_with_a_forked_worker():
    """The master hands out slots and sets the phase; a forked worker's writes (its model
    is ready) are seen by the master, and the master's (shutting down) by the worker."""
    state = ServerState(slots=4)
    slot = state.claim()
    assert not state.any_ready() and not state.shutting_down()
    child_read, parent_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        state.mark_ready(slot)
        os.read(child_read, 1)
        os._exit(0 if state.phase is Phase.DRAINING else 1)
    deadline = time.monotonic() + 60
    while not state.is_ready(slot):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert state.any_ready()
    state.phase = Phase.DRAINING
    os.write(parent_write, b"x")
    assert os.waitpid(pid, 0)[1] == 0
    state.release_all_but(set())  # the worker has exited
    assert not state.any_ready()
    assert [state.claim() for _ in range(5)][-1] is None, "4 slots, then none"


def test_each_worker_waits_on_the_listener_with_exclusive_wake_ups(server):
    """The mechanism behind one warm worker serving a lone client (the benchmark measures
    the effect): in each worker's epoll set the listening socket is registered with
    EPOLLEXCLUSIVE, read from the kernel's own account of the set."""
    import select

    for pid in server.worker_pids():
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        listener_inode = {
            os.stat(f"/proc/{pid}/fd/{fd}").st_ino
            for fd, target in fds.items()
            if target.startswith("socket:") and _listening(pid, fd, server.port)
        }
        assert listener_inode, f"worker {pid} holds no listening socket"
        epolls = [fd for fd, target in fds.items() if target == "anon_inode:[eventpoll]"]
        registered = []
        for fd in epolls:
            for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                if line.startswith("tfd:"):
                    fields = line.split()
                    target, events = int(fields[1]), int(fields[3], 16)
                    if target in fds and os.stat(f"/proc/{pid}/fd/{target}").st_ino in listener_inode:
                        registered.append(events)
        assert registered, f"worker {pid} does not wait on its listener"
        assert all(events & select.EPOLLEXCLUSIVE for events in registered), registered


def _listening(pid: int, fd: int, port: int) -> bool:
    inode = os.stat(f"/proc/{pid}/fd/{fd}").st_ino
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, line_inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], int(fields[9])
            if line_inode == inode and state == "0A" and local_port == port:  # 0A: LISTEN
                return True
    return False


def test_while_the_server_shuts_down_readiness_is_503_and_requests_are_still_served(
    tiny_settings, tiny_predictor
):
    """The phase the master sets on SIGTERM turns every readiness answer 503 at once;
    liveness and scoring go on."""
    from service.app import create_app

    state = ServerState(slots=1)
    app = create_app(
        tiny_settings, load_in_background=False, server=state, load_predictor=lambda: tiny_predictor
    )
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    state.phase = Phase.DRAINING
    readyz = client.get("/readyz")
    assert readyz.status_code == 503 and readyz.get_json()["error"]["code"] == "shutting_down"
    for path in ("/v2/health/ready", "/v2/models/tiny/ready", "/v2/models/tiny/versions/1/ready"):
        answer = client.get(path)
        assert (answer.status_code, answer.get_json()["ready"]) == (503, False), path
    assert client.get("/livez").status_code == 200
    assert client.get("/v1/models/tiny").get_json()["ready"] is False
    assert client.post("/predict", json={"beats": [[0.1] * 140]}).status_code == 200


def test_plain_gunicorn_refuses_to_start_and_says_how(tmp_path):
    """Its master would reset the listen backlog on SIGTERM: the config stops it at once."""
    import subprocess
    import sys

    from .conftest import REPO

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py")],
        cwd=REPO,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "start the server with `python -m service`" in result.stdout + result.stderr
