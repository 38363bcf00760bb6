#!/usr/bin/env bash
# End-to-end container test: builds the real images and runs docker-compose.yml with no
# image registry, then proves the stack serves and monitors.
#
#   sudo deploy/container-test.sh        (needs root: debootstrap and rootful podman)
#
# 1. A Debian bookworm base image (python3, python3-venv) made with debootstrap and
#    imported into podman. Reused while present: `podman rmi localhost/ecg-debian-base:bookworm`
#    forces a fresh one.
# 2. The API image from ./Dockerfile with that base as BASE_IMAGE, and a Prometheus image
#    from deploy/local/prometheus.Dockerfile (Debian's prometheus package), both with podman
#    (runc). Layer caching makes rebuilds fast when nothing changed.
# 3. docker-compose.yml + docker-compose.local.yml + docker-compose.auth.yml (API keys on,
#    from a keys directory made as the README says) with Debian's docker-compose against a
#    private `podman system service` socket (Grafana is not run: no image can be had here).
# 4. Waits for the API's HEALTHCHECK to pass (/readyz needs no key), checks that a request
#    without a key or with a wrong one gets 401 with WWW-Authenticate: Bearer, posts real
#    ECG5000 beats with the key to /predict and to /v2 (binary), checks the container's
#    hardening (non-root, read-only root fs and keys mount, memory limit, no training
#    packages), then asks Prometheus (HTTP API) that its ecg-api target is up (/metrics
#    needs no key), that it scraped the request, beat and 401 counts, and that the alert
#    rules loaded. Then rotates the key by replacing the file on the host: the new key is
#    taken and the old one refused without a restart; a broken file is refused, counted
#    and the keys kept; no key ever appears in the API's log.
# 5. Runs the API image once more with another model directory mounted (ECG_MODEL_DIR) and
#    checks that model is the one served.
# 6. Builds the slim image (RUNTIME=litert: no TensorFlow), runs it read-only, checks that
#    it scores real beats as the TensorFlow image does (1e-6, the same flags) and that it
#    is at most 35 % of the TensorFlow image's size, and logs both sizes.
# Everything started here is torn down on exit, success or not (images are kept as cache).
#
# Environment: CTEST_API_PORT (default 18000), CTEST_PROMETHEUS_PORT (19090) and
# CTEST_SLIM_PORT (18001) are the host ports (loopback only); DEBIAN_MIRROR
# (http://deb.debian.org/debian); CTEST_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt, used
# when present) is the CA bundle pip trusts in the image build; CTEST_KEEP_LOGS=1 keeps the
# work directory with the build and service logs.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PROJECT=ecg-ctest
BASE_IMAGE=localhost/ecg-debian-base:bookworm
API_IMAGE=localhost/ecg-anomaly:local           # the names docker-compose.local.yml uses
PROMETHEUS_IMAGE=localhost/ecg-prometheus:local
SLIM_IMAGE=localhost/ecg-anomaly:litert         # RUNTIME=litert (README, Runtimes)
SLIM_PORT=${CTEST_SLIM_PORT:-18001}
API_PORT=${CTEST_API_PORT:-18000}
PROMETHEUS_PORT=${CTEST_PROMETHEUS_PORT:-19090}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=${CTEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}  # pip's CA bundle in the build
COMPOSE=(docker-compose --project-name "$PROJECT" -f docker-compose.yml -f docker-compose.local.yml
         -f docker-compose.auth.yml)

START=$SECONDS
log() { printf '[container-test +%4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { log "FAIL: $*"; exit 1; }
# shellcheck source=deploy/lib-podman.sh
source "$REPO/deploy/lib-podman.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and rootful podman need it)"

WORK=$(mktemp -d /tmp/ecg-ctest.XXXXXX)
SERVICE_PID=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    finish_stack "$status" "${CTEST_KEEP_LOGS:-0}" "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools --------------------------------------------------------------------------------
install_podman_tools
write_containers_conf "$WORK"

# --- 1. base image --------------------------------------------------------------------------
ensure_base_image "$BASE_IMAGE" "$MIRROR" "$WORK"

# --- 2. images ------------------------------------------------------------------------------
[[ -n $(find saved_models -name saved_model.pb -print -quit 2>/dev/null) ]] \
    || die "no SavedModel under saved_models/: train one first (the image bakes it in)"

build_images "$WORK" "$HOST_CA" "$BASE_IMAGE" "$API_IMAGE" prometheus="$PROMETHEUS_IMAGE"

# --- 3. the stack ---------------------------------------------------------------------------
for port in "$API_PORT" "$PROMETHEUS_PORT" "$SLIM_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken (set CTEST_API_PORT / CTEST_PROMETHEUS_PORT)"
    fi
done

# The keys directory as docker-compose.auth.yml's comment (and the README) has it made:
# group 10001 (the image's), setgid so a replacing file keeps the group, nothing for others.
API_KEYS_DIR=$WORK/api-keys
mkdir "$API_KEYS_DIR"
chgrp 10001 "$API_KEYS_DIR"
chmod 2750 "$API_KEYS_DIR"
API_KEY=$(python3 -c "import secrets; print(secrets.token_urlsafe(32))")
printf '# container-test\n%s  # the first key\n' "$API_KEY" >"$API_KEYS_DIR/api-keys"
chmod 0640 "$API_KEYS_DIR/api-keys"

start_podman_service "$WORK"
export API_PORT PROMETHEUS_PORT PUBLISH_ADDR=127.0.0.1 API_KEYS_DIR

log "docker-compose up (api, prometheus)"
"${COMPOSE[@]}" up -d --no-build >"$WORK/compose-up.log" 2>&1 \
    || { cat "$WORK/compose-up.log"; die "docker-compose up failed"; }
api_ctr=$("${COMPOSE[@]}" ps -q api)
[[ -n $api_ctr ]] || die "no api container"
[[ -z $("${COMPOSE[@]}" ps -q grafana 2>/dev/null) ]] || die "grafana should not run locally"

# --- 4. checks ------------------------------------------------------------------------------
# The image's own HEALTHCHECK command, run by podman (no systemd here to schedule it).
log "waiting for the API healthcheck (/readyz)"
for i in $(seq 90); do
    if podman healthcheck run "$api_ctr" >/dev/null 2>&1; then break; fi
    [[ $(podman inspect --format '{{.State.Status}}' "$api_ctr") == running ]] \
        || die "api container is $(podman inspect --format '{{.State.Status}}' "$api_ctr")"
    ((i < 90)) || die "API not healthy after 180s"
    sleep 2
done
log "API healthy: $(podman inspect --format '{{.State.Health.Status}}' "$api_ctr")"

log "container hardening"
[[ $(podman exec "$api_ctr" id -u) == 10001 ]] || die "API runs as $(podman exec "$api_ctr" id -u), not 10001"
if podman exec "$api_ctr" touch /app/probe 2>/dev/null; then die "root filesystem is writable"; fi
mem=$(podman inspect --format '{{.HostConfig.Memory}}' "$api_ctr")
[[ $mem -gt 0 ]] || die "no memory limit on the API container"
if podman exec "$api_ctr" python3 -c "import sklearn" 2>/dev/null; then
    die "training dependency scikit-learn is in the runtime image"
fi
if podman exec "$api_ctr" sh -c ': >>/etc/ecg-anomaly/secrets/api-keys' 2>/dev/null; then
    die "the API keys directory is writable in the container"
fi
log "  uid 10001, read-only root fs and keys directory, memory limit $(numfmt --to=iec "$mem"), no scikit-learn"

log "API keys: 401 without a key or with a wrong one, probes and /metrics open"
python3 - "http://127.0.0.1:$API_PORT" "$API_KEY" <<'PY'
import json, sys, urllib.error, urllib.request

base, key = sys.argv[1], sys.argv[2]

def status(method, route, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + route, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()

beat = {"beats": [[0.0] * 140]}
for sent, code in [(None, "missing_api_key"), ("not-the-key-" + "x" * 20, "invalid_api_key")]:
    for method, route, body in [("POST", "/predict", beat), ("GET", "/v1/models/ecg-autoencoder", None)]:
        got, headers, raw = status(method, route, sent, body)
        assert got == 401, (method, route, sent is None, got)
        assert headers["WWW-Authenticate"].startswith("Bearer"), headers["WWW-Authenticate"]
        assert json.loads(raw)["error"]["code"] == code, raw
        assert key.encode() not in raw
for route in ("/livez", "/readyz", "/metrics"):
    assert status("GET", route)[0] == 200, route
assert status("GET", "/v1/models/ecg-autoencoder", key)[0] == 200  # scores nothing: the counts below hold
print("  /predict, /v1/models: 401 + WWW-Authenticate: Bearer without a key and with a wrong one;"
      " 200 with the key; /livez /readyz /metrics 200 without one")
PY

log "posting real ECG5000 beats to /predict and /v2 (with the key)"
python3 - "http://127.0.0.1:$API_PORT" data/ECG5000_TEST.tsv.gz "$API_KEY" <<'PY'
import gzip, json, sys, urllib.request

base, path, key = sys.argv[1:4]
auth = {"Authorization": f"Bearer {key}"}
normal, abnormal = [], []
with gzip.open(path, "rt") as f:
    for line in f:
        label, *values = line.split()
        beats = normal if int(float(label)) == 1 else abnormal
        if len(beats) < 100:
            beats.append([float(v) for v in values])
        if len(normal) == len(abnormal) == 100:
            break

def call(method, route, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + route, data=data, method=method,
                                 headers={"Content-Type": "application/json", **auth})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()

for route in ("/livez", "/readyz", "/v1/models/ecg-autoencoder", "/openapi.json", "/"):
    status, _ = call("GET", route)
    assert status == 200, (route, status)
# The explorer's test split, from the data files the image ships (ECG_DATA_DIR=/app/data)
status, raw = call("GET", "/v1/models/ecg-autoencoder/test-split")
assert status == 200, status
print(f"  explorer: / and its test split ({len(raw):,} bytes) served from the image")

status, raw = call("POST", "/predict", {"beats": normal + abnormal})
body = json.loads(raw)
preds = body["predictions"]
assert status == 200 and len(preds) == 200, (status, len(preds))
for p in preds:
    assert set(p) >= {"mse", "is_anomaly", "point_errors", "out_of_range"}, p.keys()
    assert len(p["point_errors"]) == 140
flagged_normal = sum(p["is_anomaly"] for p in preds[:100])
flagged_abnormal = sum(p["is_anomaly"] for p in preds[100:])
print(f"  model {body['model_name']} v{body['model_version']} threshold {body['threshold']:.4g}: "
      f"flagged {flagged_abnormal}/100 abnormal and {flagged_normal}/100 normal beats")
assert flagged_abnormal > flagged_normal, "the served model does not separate abnormal beats"

# A small batch more, so the request counter counts several /predict calls.
for i in range(4):
    assert call("POST", "/predict", {"beats": abnormal[i * 5:(i + 1) * 5]})[0] == 200

# The same 200 beats over the Open Inference Protocol, as raw float32 in and out.
from array import array
raw_beats = array("f", [v for beat in normal + abnormal for v in beat])
if sys.byteorder != "little":
    raw_beats.byteswap()
head = json.dumps({
    "inputs": [{"name": "beats", "shape": [200, 140], "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw_beats) * 4}}],
    "outputs": [{"name": "mse", "parameters": {"binary_data": True}}],
}).encode()
req = urllib.request.Request(base + "/v2/models/ecg-autoencoder/infer", data=head + raw_beats.tobytes(),
                             method="POST", headers={"Content-Type": "application/octet-stream",
                                                     "Inference-Header-Content-Length": str(len(head)),
                                                     **auth})
with urllib.request.urlopen(req, timeout=30) as resp:
    reply, length = resp.read(), int(resp.headers["Inference-Header-Content-Length"])
mse = array("f")
mse.frombytes(reply[length:])
if sys.byteorder != "little":
    mse.byteswap()
assert len(mse) == 200 and max(abs(a - p["mse"]) for a, p in zip(mse, preds)) < 1e-6, "/v2 and /predict differ"
print("  /v2 binary tensors: the same 200 MSEs as /predict")

with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:  # no key: open
    metrics = resp.read().decode()
scored = sum(float(l.split()[-1]) for l in metrics.splitlines()
             if l.startswith("ecg_beats_scored_total"))
assert scored == 420, f"ecg_beats_scored_total is {scored}, expected 420"
print("  /metrics: ecg_beats_scored_total 420")
PY

log "waiting for Prometheus to scrape the API"
python3 - "http://127.0.0.1:$PROMETHEUS_PORT" <<'PY'
import json, sys, time, urllib.parse, urllib.request

base = sys.argv[1]

def api(path, **params):
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]

def scalar(expr):
    result = api("query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None

def alert_rules():
    return [r for g in api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]

def auth_failures():
    result = api("query", query='sum by (reason) (ecg_auth_failures_total{job="ecg-api"})')["result"]
    return {r["metric"]["reason"]: float(r["value"][1]) for r in result}

# The 401s above: without a key and with a wrong one, on /predict and /v1/models.
REFUSED = {"missing": 2.0, "invalid": 2.0}

# Wait for a scrape after the requests above and for every rule's first evaluation.
deadline = time.monotonic() + 120
while True:
    try:
        up = scalar('up{job="ecg-api"}')
        beats = scalar('sum(ecg_beats_scored_total{job="ecg-api"})')
        requests = scalar('sum(ecg_http_requests_total{job="ecg-api"})')
        health = {r["name"]: r["health"] for r in alert_rules()}
        refused = auth_failures()
    except OSError:  # Prometheus still starting
        up = beats = requests = health = refused = None
    if (up == 1 and beats == 420 and requests is not None and requests >= 6
            and refused == REFUSED and health and "unknown" not in health.values()):
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"Prometheus after 120s: up={up} beats={beats} requests={requests} "
                         f"401s={refused} rules={health}")
    time.sleep(2)
targets = [t for t in api("targets")["activeTargets"] if t["labels"]["job"] == "ecg-api"]
assert [t["health"] for t in targets] == ["up"], targets
predict = scalar('sum(ecg_http_requests_total{job="ecg-api", method="POST", status="200"})')
assert predict == 6, f"scraped {predict} successful POSTs, expected 6"
rules = alert_rules()
bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
assert len(rules) == 8 and not bad, (len(rules), bad)
print(f"  target {targets[0]['scrapeUrl']} up (no key); scraped {requests:.0f} requests "
      f"(6 successful POSTs), {beats:.0f} beats, 401s by reason {refused}; "
      f"{len(rules)} alert rules loaded and healthy")
PY

# Rotation as an operator does it: a new file replaces the old one in the host directory
# (a new inode, which a single-file bind mount would never show). The server rereads it
# within seconds, no restart; a broken file is refused and counted, the keys kept.
log "rotating the API key: replacing the keys file on the host"
NEW_KEY=$(python3 -c "import secrets; print(secrets.token_urlsafe(32))")
python3 - "http://127.0.0.1:$API_PORT" "$API_KEYS_DIR/api-keys" "$API_KEY" "$NEW_KEY" <<'PY'
import os, sys, time, urllib.error, urllib.request

base, path, old, new = sys.argv[1:5]

def status(key):
    req = urllib.request.Request(base + "/v1/models/ecg-autoencoder",
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code

def replace(text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)

def metric(name):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    values = [float(l.split()[-1]) for l in lines if l.split(" ")[0] == name]
    assert len(values) == 1, (name, values)
    return values[0]

def wait_for(what, done, seconds=30):
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > seconds:
            raise SystemExit(f"after {seconds}s: {what}")
        time.sleep(0.5)
    return time.monotonic() - started

replace(f"# rotated\n{new}\n")
replaced = time.time()
# ecg_api_keys_loaded_timestamp_seconds is the oldest worker's "I hold the file as of":
# once it is past the replacement, every worker has the new keys.
took = wait_for("a worker still holds the old keys",
                lambda: metric("ecg_api_keys_loaded_timestamp_seconds") >= replaced)
assert all(status(new) == 200 for _ in range(8)), "the new key is refused"
assert all(status(old) == 401 for _ in range(8)), "the removed key is still accepted"
print(f"  every worker took the new file {took:.1f}s after it replaced the old one:"
      " the new key gets 200, the removed one 401")

before = metric("ecg_api_keys_reload_failures_total")
replace("too-short\n")
wait_for("the broken file is not counted", lambda: metric("ecg_api_keys_reload_failures_total") > before)
assert all(status(new) == 200 for _ in range(8)), "a broken keys file locked the key out"
replace(f"{new}\n")
print("  a broken keys file: refused, counted in ecg_api_keys_reload_failures_total, keys kept")
PY
podman logs "$api_ctr" >"$WORK/api.log" 2>&1 || true
for key in "$API_KEY" "$NEW_KEY"; do
    if grep -qF -- "$key" "$WORK/api.log"; then die "an API key is in the API's log"; fi
done
log "  no API key in the API's log ($(wc -l <"$WORK/api.log") lines)"

log "memory in use: $(podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' \
    "$api_ctr" "$("${COMPOSE[@]}" ps -q prometheus)" | paste -sd ';' - | sed 's/;/; /g')"

# Another model directory, mounted read-only and named by ECG_MODEL_DIR, replaces the
# baked-in one: a copy of the bundled model republished as version 2 must be what serves.
log "serving a mounted model directory (ECG_MODEL_DIR)"
bundled=$(find saved_models/ecg-autoencoder -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' | sort -V | tail -n 1)
mkdir -p "$WORK/models/ecg-autoencoder"
cp -r "$bundled" "$WORK/models/ecg-autoencoder/2"
rm -rf "$WORK/models/ecg-autoencoder/2/report"
python3 - "$WORK/models/ecg-autoencoder/2/metadata.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["version"] = 2
json.dump(meta, open(sys.argv[1], "w"))
PY
chmod -R a+rX "$WORK/models"
# (podman's stderr goes to a file: without systemd it complains it cannot schedule the
# healthcheck timer, which is why this script runs the healthcheck itself.)
mounted=$(podman run -d --read-only --tmpfs /tmp --label "com.docker.compose.project=$PROJECT" \
    -v "$WORK/models:/models:ro" -e ECG_MODEL_DIR=/models -e ECG_WORKERS=1 "$API_IMAGE" \
    2>"$WORK/podman-run.log") || { cat "$WORK/podman-run.log"; die "podman run failed"; }
for i in $(seq 60); do
    podman healthcheck run "$mounted" >/dev/null 2>&1 && break
    ((i < 60)) || die "API with the mounted model not healthy after 120s"
    sleep 2
done
served=$(podman exec "$mounted" python3 -c "
import json, urllib.request
info = json.load(urllib.request.urlopen('http://127.0.0.1:8000/v1/models/ecg-autoencoder'))
print(info['name'], 'version', info['version'], 'of', info['versions_available'])")
[[ $served == "ecg-autoencoder version 2 of [2]" ]] || die "mounted model not served: $served"
log "  /v1/models/ecg-autoencoder: $served"

# SIGTERM to PID 1, as `podman stop` (and Kubernetes) sends it: the server drains (README,
# Lifecycle) and exits 0 within its 5 s delay and 20 s graceful timeout.
log "stopping it with SIGTERM (podman stop)"
podman stop -t 40 "$mounted" >/dev/null 2>>"$WORK/podman-run.log"
code=$(podman inspect --format '{{.State.ExitCode}}' "$mounted")
podman logs "$mounted" >"$WORK/mounted.log" 2>&1 || true
podman rm -f "$mounted" >/dev/null 2>&1
[[ $code == 0 ]] || die "the API exited with status $code on SIGTERM"
if ! grep -q "draining: readiness answers 503" "$WORK/mounted.log" || ! grep -q "closing: " "$WORK/mounted.log"; then
    die "no drain in the API's log: $(tail -n 20 "$WORK/mounted.log")"
fi
log "  drained and exited 0"

# The slim image (README, Runtimes): RUNTIME=litert, no TensorFlow, the same server code
# serving the bundled version's checked LiteRT copy. Same beats as above, same scores.
log "the slim image (RUNTIME=litert)"
old_slim=$(podman image inspect --format '{{.Id}}' "$SLIM_IMAGE" 2>/dev/null || true)
build_api_image "$WORK" "$HOST_CA" "$BASE_IMAGE" "$SLIM_IMAGE" litert
new_slim=$(podman image inspect --format '{{.Id}}' "$SLIM_IMAGE")
[[ -z $old_slim || $old_slim == "$new_slim" ]] || podman rmi "$old_slim" >/dev/null 2>&1 || true
full_size=$(podman image inspect --format '{{.Size}}' "$API_IMAGE")
slim_size=$(podman image inspect --format '{{.Size}}' "$SLIM_IMAGE")
slim=$(podman run -d --read-only --tmpfs /tmp --label "com.docker.compose.project=$PROJECT" \
    -p "127.0.0.1:$SLIM_PORT:8000" "$SLIM_IMAGE" 2>>"$WORK/podman-run.log") \
    || { cat "$WORK/podman-run.log"; die "podman run (slim) failed"; }
for i in $(seq 60); do
    podman healthcheck run "$slim" >/dev/null 2>&1 && break
    ((i < 60)) || die "the slim API is not healthy after 120s"
    sleep 2
done
[[ $(podman exec "$slim" id -u) == 10001 ]] || die "the slim API does not run as 10001"
if podman exec "$slim" python3 -c "import tensorflow" 2>/dev/null; then die "TensorFlow is in the slim image"; fi
python3 - "http://127.0.0.1:$SLIM_PORT" "http://127.0.0.1:$API_PORT" "$NEW_KEY" data/ECG5000_TEST.tsv.gz <<'PY'
import gzip, json, sys, urllib.request

slim, full, key, path = sys.argv[1:5]
with gzip.open(path, "rt") as f:
    beats = [[float(v) for v in line.split()[1:]] for _, line in zip(range(300), f)]

def scores(base, headers):
    req = urllib.request.Request(base + "/predict", data=json.dumps({"beats": beats}).encode(),
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)

a = scores(slim, {})  # the slim container runs without keys
b = scores(full, {"Authorization": f"Bearer {key}"})
diff = max(abs(p["mse"] - q["mse"]) for p, q in zip(a["predictions"], b["predictions"]))
same = [p["is_anomaly"] for p in a["predictions"]] == [q["is_anomaly"] for q in b["predictions"]]
assert diff <= 1e-6 and same, (diff, same)
print(f"  300 real beats: max |mse litert - tensorflow| {diff:.2g}, the same flags")
PY
ratio=$(python3 -c "print(f'{$slim_size / $full_size:.3f}')")
log "  image sizes: tensorflow $(numfmt --to=iec "$full_size"), litert $(numfmt --to=iec "$slim_size"): $ratio of it"
python3 -c "import sys; sys.exit(0 if $slim_size <= 0.35 * $full_size else 1)" \
    || die "the slim image is over 35 % of the TensorFlow image ($ratio)"
podman rm -f "$slim" >/dev/null 2>&1

log "all checks passed"
