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
# 3. docker-compose.yml + docker-compose.local.yml with Debian's docker-compose against a
#    private `podman system service` socket (Grafana is not run: no image can be had here).
# 4. Waits for the API's HEALTHCHECK to pass, posts real ECG5000 beats to /predict and to /v2 (binary), checks
#    the container's hardening (non-root, read-only root fs, memory limit, no training
#    packages), then asks Prometheus (HTTP API) that its ecg-api target is up, that it
#    scraped the request and beat counts, and that the alert rules loaded.
# 5. Runs the API image once more with another model directory mounted (ECG_MODEL_DIR) and
#    checks that model is the one served.
# Everything started here is torn down on exit, success or not (images are kept as cache).
#
# Environment: CTEST_API_PORT (default 18000), CTEST_PROMETHEUS_PORT (19090) are the host
# ports (loopback only); DEBIAN_MIRROR (http://deb.debian.org/debian); CTEST_CA_BUNDLE
# (/etc/ssl/certs/ca-certificates.crt, used when present) is the CA bundle pip trusts in the
# image build; CTEST_KEEP_LOGS=1 keeps the work directory with the build and service logs.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PROJECT=ecg-ctest
BASE_IMAGE=localhost/ecg-debian-base:bookworm
API_IMAGE=localhost/ecg-anomaly:local           # the names docker-compose.local.yml uses
PROMETHEUS_IMAGE=localhost/ecg-prometheus:local
API_PORT=${CTEST_API_PORT:-18000}
PROMETHEUS_PORT=${CTEST_PROMETHEUS_PORT:-19090}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=${CTEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}  # pip's CA bundle in the build
COMPOSE=(docker-compose --project-name "$PROJECT" -f docker-compose.yml -f docker-compose.local.yml)

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
for port in "$API_PORT" "$PROMETHEUS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken (set CTEST_API_PORT / CTEST_PROMETHEUS_PORT)"
    fi
done

start_podman_service "$WORK"
export API_PORT PROMETHEUS_PORT PUBLISH_ADDR=127.0.0.1

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
log "  uid 10001, read-only root fs, memory limit $(numfmt --to=iec "$mem"), no scikit-learn"

log "posting real ECG5000 beats to /predict and /v2"
python3 - "http://127.0.0.1:$API_PORT" data/ECG5000_TEST.tsv.gz <<'PY'
import gzip, json, sys, urllib.request

base, path = sys.argv[1], sys.argv[2]
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
                                 headers={"Content-Type": "application/json"})
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
                                                     "Inference-Header-Content-Length": str(len(head))})
with urllib.request.urlopen(req, timeout=30) as resp:
    reply, length = resp.read(), int(resp.headers["Inference-Header-Content-Length"])
mse = array("f")
mse.frombytes(reply[length:])
if sys.byteorder != "little":
    mse.byteswap()
assert len(mse) == 200 and max(abs(a - p["mse"]) for a, p in zip(mse, preds)) < 1e-6, "/v2 and /predict differ"
print("  /v2 binary tensors: the same 200 MSEs as /predict")

metrics = call("GET", "/metrics")[1].decode()
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

# Wait for a scrape after the requests above and for every rule's first evaluation.
deadline = time.monotonic() + 120
while True:
    try:
        up = scalar('up{job="ecg-api"}')
        beats = scalar('sum(ecg_beats_scored_total{job="ecg-api"})')
        requests = scalar('sum(ecg_http_requests_total{job="ecg-api"})')
        health = {r["name"]: r["health"] for r in alert_rules()}
    except OSError:  # Prometheus still starting
        up = beats = requests = health = None
    if (up == 1 and beats == 420 and requests is not None and requests >= 6
            and health and "unknown" not in health.values()):
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"Prometheus after 120s: up={up} beats={beats} requests={requests} "
                         f"rules={health}")
    time.sleep(2)
targets = [t for t in api("targets")["activeTargets"] if t["labels"]["job"] == "ecg-api"]
assert [t["health"] for t in targets] == ["up"], targets
predict = scalar('sum(ecg_http_requests_total{job="ecg-api", method="POST", status="200"})')
assert predict == 6, f"scraped {predict} successful POSTs, expected 6"
rules = alert_rules()
bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
assert len(rules) == 8 and not bad, (len(rules), bad)
print(f"  target {targets[0]['scrapeUrl']} up; scraped {requests:.0f} requests "
      f"(6 successful POSTs), {beats:.0f} beats; {len(rules)} alert rules loaded and healthy")
PY

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

log "all checks passed"
