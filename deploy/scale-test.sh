#!/usr/bin/env bash
# Scale-out test: three API replicas (api1..api3) behind HAProxy (docker-compose.scale.yml), built and
# run with podman and no image registry, proving under load that
#
#   1. requests spread over every replica (each replica's own /metrics, HAProxy's header);
#   2. a rolling restart, one replica at a time (SIGTERM: drain, exit 0; start; back in
#      rotation only once /readyz answers 200), fails no request;
#   3. a replica SIGKILLed fails at most the requests in flight on it, then none, and
#      comes back by itself (restart: unless-stopped);
#   4. Prometheus scrapes every replica (one target each).
#
#   sudo deploy/scale-test.sh        (needs root: debootstrap and rootful podman)
#
# About 1 min 45 s once the images exist (reruns: layer cache); on a fresh machine add
# container-test.sh's cold build (~3 min). The load: deploy/scale_load.py, STEST_THREADS
# client threads at STEST_RATE requests/s in all, each request a new connection to
# HAProxy posting 2 real ECG5000 beats to /predict (ok only if 200 with 2 predictions).
#
# Images as deploy/container-test.sh makes them (a debootstrapped Debian bookworm base,
# the API from ./Dockerfile, Prometheus from Debian's package), plus HAProxy from Debian's
# package (deploy/local/haproxy.Dockerfile). The pieces that build them are copied from
# container-test.sh, which is left as it is. Everything started here is torn down on exit,
# success or not (images are kept as cache).
#
# Environment: STEST_LB_PORT (default 18080), STEST_STATS_PORT (18404) and
# STEST_PROMETHEUS_PORT (19091) are the host ports (loopback only); STEST_THREADS (8) and
# STEST_RATE (150 requests/s in all) shape the load; STEST_WORKERS (1) is ECG_WORKERS per
# replica; STEST_RESULTS names a file for the measured numbers (JSON); DEBIAN_MIRROR,
# CTEST_CA_BUNDLE as for container-test.sh; STEST_KEEP_LOGS=1 keeps the work directory.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PROJECT=ecg-scale
SERVICES=(api1 api2 api3)                           # the replicas in docker-compose.scale.yml
BASE_IMAGE=localhost/ecg-debian-base:bookworm
API_IMAGE=localhost/ecg-anomaly:local                # the names container-test.sh uses
PROMETHEUS_IMAGE=localhost/ecg-prometheus:local
HAPROXY_IMAGE=localhost/ecg-haproxy:local
LB_PORT=${STEST_LB_PORT:-18080}
STATS_PORT=${STEST_STATS_PORT:-18404}
PROMETHEUS_PORT=${STEST_PROMETHEUS_PORT:-19091}
THREADS=${STEST_THREADS:-8}
RATE=${STEST_RATE:-150}
WORKERS=${STEST_WORKERS:-1}
SHUTDOWN_DELAY=5                                     # the server's default drain delay
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=${CTEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
COMPOSE=(docker-compose --project-name "$PROJECT" -f docker-compose.scale.yml)
LB_URL=http://127.0.0.1:$LB_PORT
STATS_URL=http://127.0.0.1:$STATS_PORT

START=$SECONDS
log() { printf '[scale-test +%4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { log "FAIL: $*"; exit 1; }
# shellcheck source=deploy/lib-podman.sh
source "$REPO/deploy/lib-podman.sh"
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and rootful podman need it)"

WORK=$(mktemp -d /tmp/ecg-stest.XXXXXX)
SERVICE_PID=
LOAD_PID=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $LOAD_PID ]]; then kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; fi
    finish_stack "$status" "${STEST_KEEP_LOGS:-0}" "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools (as container-test.sh) -------------------------------------------------------------
install_podman_tools
write_containers_conf "$WORK"

# --- images (as container-test.sh, plus HAProxy) ----------------------------------------------
ensure_base_image "$BASE_IMAGE" "$MIRROR" "$WORK"

[[ -n $(find saved_models -name saved_model.pb -print -quit 2>/dev/null) ]] \
    || die "no SavedModel under saved_models/: train one first (the image bakes it in)"

build_images "$WORK" "$HOST_CA" "$BASE_IMAGE" "$API_IMAGE" prometheus="$PROMETHEUS_IMAGE" haproxy="$HAPROXY_IMAGE"
log "  haproxy $(podman run --rm --entrypoint /usr/sbin/haproxy "$HAPROXY_IMAGE" -v 2>/dev/null | head -n 1)"

log "haproxy -c deploy/haproxy/haproxy.cfg"
podman run --rm -v "$REPO/deploy/haproxy:/usr/local/etc/haproxy:ro" "$HAPROXY_IMAGE" \
    -c -f /usr/local/etc/haproxy/haproxy.cfg >"$WORK/haproxy-check.log" 2>&1 \
    || { cat "$WORK/haproxy-check.log"; die "haproxy rejects its configuration"; }

# --- the stack --------------------------------------------------------------------------------
for port in "$LB_PORT" "$STATS_PORT" "$PROMETHEUS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken (set STEST_LB_PORT / STEST_STATS_PORT / STEST_PROMETHEUS_PORT)"
    fi
done

start_podman_service "$WORK"
export ECG_API_IMAGE=$API_IMAGE PROMETHEUS_IMAGE HAPROXY_IMAGE BASE_IMAGE ECG_WORKERS=$WORKERS
export API_PORT=$LB_PORT LB_STATS_PORT=$STATS_PORT PROMETHEUS_PORT PUBLISH_ADDR=127.0.0.1

log "docker-compose -f docker-compose.scale.yml up -d (${SERVICES[*]}, lb, prometheus)"
t_up=$(now)
"${COMPOSE[@]}" up -d --no-build >"$WORK/compose-up.log" 2>&1 \
    || { cat "$WORK/compose-up.log"; die "docker-compose up failed"; }
declare -A CTR
for svc in "${SERVICES[@]}"; do
    CTR[$svc]=$("${COMPOSE[@]}" ps -q "$svc")
    [[ -n ${CTR[$svc]} ]] || die "no $svc container"
    # Only the load balancer publishes ports.
    bindings=$(podman port "${CTR[$svc]}" 2>/dev/null || true)
    [[ -z $bindings ]] || die "$svc publishes $bindings"
done
log "  replicas ${SERVICES[*]}, none publishing a port; lb publishes $(podman port "$("${COMPOSE[@]}" ps -q lb)" | paste -sd ' ' -)"

ctr_ip() { podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
ctr_state() { podman inspect --format '{{.State.Status}}' "$1"; }

# HAProxy's view of the backend, from its stats page: "server address status requests".
cat >"$WORK/lb.py" <<'PY'
import csv, io, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/stats;csv", timeout=2).read().decode()
for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
    if row["pxname"] == "api" and row["svname"] not in ("FRONTEND", "BACKEND"):
        addr = (row.get("addr") or "-").rsplit(":", 1)[0] or "-"
        print(row["svname"], addr, row["status"].replace(" ", "_"), row["stot"])
PY
lb_servers() { python3 "$WORK/lb.py" "$STATS_URL" 2>/dev/null || true; }
# "UP 1/2" (one check failed) still gets traffic; "DOWN", "DOWN 1/2", "MAINT" do not.
lb_in_rotation() { lb_servers | awk -v s="$1" '$1 == s && $3 ~ /^UP/ { found = 1 } END { exit !found }'; }

# Until HAProxy has every replica UP at the address its container has now.
wait_lb_up() {
    local timeout=$1 deadline=$((SECONDS + $1)) svc servers all_up
    while :; do
        servers=$(lb_servers) all_up=1
        for svc in "${SERVICES[@]}"; do
            [[ $(ctr_state "${CTR[$svc]}") == running ]] \
                && grep -qx "$svc $(ctr_ip "${CTR[$svc]}") UP [0-9]*" <<<"$servers" || all_up=0
        done
        ((all_up)) && return 0
        ((SECONDS < deadline)) || { echo "$servers"; die "HAProxy has not every replica UP after ${timeout}s"; }
        sleep 0.2
    done
}

log "waiting for every replica's healthcheck and for HAProxy to have them UP"
for svc in "${SERVICES[@]}"; do
    for i in $(seq 90); do
        podman healthcheck run "${CTR[$svc]}" >/dev/null 2>&1 && break
        [[ $(ctr_state "${CTR[$svc]}") == running ]] || die "$svc is $(ctr_state "${CTR[$svc]}")"
        ((i < 90)) || die "$svc not healthy after 180s"
        sleep 2
    done
done
wait_lb_up 60
t_ready=$(now)
log "  ${#SERVICES[@]} replicas ready and UP in HAProxy $(elapsed "$t_up" "$t_ready") s after up: $(lb_servers | awk '{ print $1 "=" $2 }' | paste -sd ' ' -)"

# A replica's /predict answers, from its own /metrics: "<200s> <other statuses>".
METRICS_PY='
import urllib.request
text = urllib.request.urlopen("http://127.0.0.1:8000/metrics", timeout=5).read().decode()
ok = other = 0
for line in text.splitlines():
    if line.startswith("ecg_http_requests_total{") and "route=\"/predict\"" in line:
        if "status=\"200\"" in line:
            ok += float(line.split()[-1])
        else:
            other += float(line.split()[-1])
print(int(ok), int(other))'
predict_counts() { podman exec "$1" python3 -c "$METRICS_PY"; }

# The load client in the background until $WORK/stop-<name> appears; waits for its first answer.
start_load() {
    local name=$1
    rm -f "$WORK/stop-$name" "$WORK/ready-$name"
    python3 deploy/scale_load.py --url "$LB_URL" --threads "$THREADS" --rate "$RATE" \
        --stop-file "$WORK/stop-$name" --ready-file "$WORK/ready-$name" --duration 600 \
        --out "$WORK/load-$name.json" >"$WORK/load-$name.log" 2>&1 &
    LOAD_PID=$!
    for _ in $(seq 100); do [[ -e $WORK/ready-$name ]] && return 0; sleep 0.1; done
    die "the load client got no answer in 10 s"
}
stop_load() {
    touch "$WORK/stop-$1"
    wait "$LOAD_PID" || die "the load client failed: $(tail -n 5 "$WORK/load-$1.log")"
    LOAD_PID=
}
field() { python3 -c "import json, sys; print(eval(sys.argv[2], {}, json.load(open(sys.argv[1]))))" "$WORK/load-$1.json" "$2"; }

# --- 1. spread ------------------------------------------------------------------------------
log "1. spread: $THREADS threads at $RATE requests/s for 15 s"
declare -A BEFORE
for svc in "${SERVICES[@]}"; do read -r "BEFORE[$svc]" _ < <(predict_counts "${CTR[$svc]}"); done
start_load spread
sleep 15
stop_load spread
ok=$(field spread ok) failed=$(field spread failed)
spread_line=
for svc in "${SERVICES[@]}"; do
    read -r n _ < <(predict_counts "${CTR[$svc]}")
    served=$((n - BEFORE[$svc]))
    spread_line+="$svc=$served "
    header=$(field spread "served_by.get('$svc', 0)")
    ((served == header)) || die "$svc counted $served requests, HAProxy's header says $header"
    ((served * 100 >= ok * 20)) || die "$svc served $served of $ok (< 20 %)"
done
log "  $ok ok, $failed failed in $(field spread seconds) s; per replica (its /metrics, = X-Served-By): $spread_line"
((failed == 0)) || die "spread: $failed requests failed: $(field spread errors)"

# A restarted replica must get no request before its model is ready: in its log since the
# restart, no /predict may have started before the first "model ready".
GATED_PY='
import json, sys
lines = sys.stdin.read().splitlines()
start = max(i for i, l in enumerate(lines) if "Starting gunicorn" in l)
ready, first = None, None
for line in lines[start:]:
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "model ready" and ready is None:
        ready = rec["ts"]
    if rec.get("route") == "/predict":
        t = rec["ts"] - rec["duration_ms"] / 1000
        first = t if first is None else min(first, t)
if ready is None or first is None or first < ready:
    sys.exit(f"model ready at {ready}, first /predict started at {first}")
print(f"{first - ready:.2f}")'

# --- 2. rolling restart ---------------------------------------------------------------------
log "2. rolling restart under load ($THREADS threads, $RATE requests/s)"
start_load rolling
sleep 3
declare -a ROLL
for svc in "${SERVICES[@]}"; do
    ctr=${CTR[$svc]} ip=$(ctr_ip "${CTR[$svc]}")
    t0=$(now)
    podman stop -t 40 "$ctr" >/dev/null 2>>"$WORK/podman.log" &
    stop_pid=$!
    # HAProxy must take it out of rotation within the drain delay.
    t_down=
    while kill -0 "$stop_pid" 2>/dev/null; do
        if ! lb_in_rotation "$svc"; then t_down=$(now); break; fi
        sleep 0.1
    done
    wait "$stop_pid" || die "podman stop $svc failed"
    t_stopped=$(now)
    [[ -n $t_down ]] || die "HAProxy still had $svc in rotation when it had stopped"
    code=$(podman inspect --format '{{.State.ExitCode}}' "$ctr")
    [[ $code == 0 ]] || die "$svc exited $code on SIGTERM"
    podman logs "$ctr" >"$WORK/$svc.log" 2>&1 || true
    grep -q "draining: readiness answers 503" "$WORK/$svc.log" || die "$svc did not drain"
    down_s=$(elapsed "$t0" "$t_down")
    python3 -c "import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))" "$down_s" "$SHUTDOWN_DELAY" \
        || die "HAProxy took ${down_s}s to take $svc out (drain delay ${SHUTDOWN_DELAY}s)"
    podman start "$ctr" >/dev/null 2>>"$WORK/podman.log"
    t_started=$(now)
    wait_lb_up 120
    t_back=$(now)
    [[ $(ctr_ip "$ctr") == "$ip" ]] || die "$svc came back at $(ctr_ip "$ctr"), not its fixed $ip"
    ROLL+=("$svc: out of rotation $down_s s after SIGTERM, exited 0 after $(elapsed "$t0" "$t_stopped") s, UP again $(elapsed "$t_started" "$t_back") s after start")
    log "  ${ROLL[-1]}"
done
sleep 3
stop_load rolling
ok=$(field rolling ok) failed=$(field rolling failed)
log "  $ok ok, $failed failed in $(field rolling seconds) s; per replica: $(field rolling served_by); latency $(field rolling latency_s)"
((failed == 0)) || die "rolling restart: $failed requests failed: $(field rolling "failures[:10]")"
((ok >= 2000)) || die "rolling restart: only $ok requests"
restarted_line=
for svc in "${SERVICES[@]}"; do
    read -r rok rother < <(predict_counts "${CTR[$svc]}")
    ((rother == 0)) || die "$svc answered $rother /predict requests with another status than 200"
    ((rok > 0)) || die "$svc got no request after its restart"
    podman logs "${CTR[$svc]}" >"$WORK/$svc.log" 2>&1 || true
    gap=$(python3 -c "$GATED_PY" <"$WORK/$svc.log") || die "$svc got traffic before it was ready: $gap"
    restarted_line+="$svc=$rok (first ${gap}s after model ready) "
done
log "  since each restart (its /metrics, all 200; its log): $restarted_line"

# --- 3. a replica SIGKILLed -----------------------------------------------------------------
victim=api2
log "3. SIGKILL to $victim's processes under load"
start_load kill
sleep 5
pid=$(podman inspect --format '{{.State.Pid}}' "${CTR[$victim]}")
restarts_before=$(podman inspect --format '{{.RestartCount}}' "${CTR[$victim]}")
t_kill=$(now)
kill -KILL "$pid"     # PID 1 of the container: the kernel kills every process in it
deadline=$((SECONDS + 30))
until [[ $(podman inspect --format '{{.RestartCount}}' "${CTR[$victim]}") != "$restarts_before" \
         && $(ctr_state "${CTR[$victim]}") == running ]]; do
    ((SECONDS < deadline)) || die "$victim was not restarted by its restart policy in 30 s"
    sleep 0.2
done
t_restarted=$(now)
wait_lb_up 120
t_back=$(now)
sleep 5
stop_load kill
ok=$(field kill ok) failed=$(field kill failed)
kill_window=$(python3 - "$WORK/load-kill.json" "$t_kill" <<'PY'
import json, sys
summary, t_kill = json.load(open(sys.argv[1])), float(sys.argv[2])
print(" ".join(f"{f['at'] - t_kill:+.3f}s ({f['error'][:40]})" for f in summary["failures"]) or "none")
PY
)
log "  $ok ok, $failed failed in $(field kill seconds) s (failed requests sent at, from the kill: $kill_window)"
log "  restarted by podman (restart: unless-stopped) $(elapsed "$t_kill" "$t_restarted") s after the kill, UP in HAProxy after $(elapsed "$t_kill" "$t_back") s; latency $(field kill latency_s)"
# At most the requests in flight on it (one per worker, plus what its backlog held: at most
# every client thread), and none once HAProxy had marked it down (2 s after the kill).
((failed <= THREADS)) || die "SIGKILL: $failed failed requests, more than the $THREADS in flight"
python3 - "$WORK/load-kill.json" "$t_kill" <<'PY' || die "SIGKILL: a request failed more than 2 s after the kill"
import json, sys
summary, t_kill = json.load(open(sys.argv[1])), float(sys.argv[2])
sys.exit(any(f["at"] - t_kill > 2.0 or f["at"] + f["seconds"] < t_kill for f in summary["failures"]))
PY
podman logs "${CTR[$victim]}" >"$WORK/$victim.log" 2>&1 || true
gap=$(python3 -c "$GATED_PY" <"$WORK/$victim.log") || die "$victim got traffic before it was ready: $gap"
log "  $victim back in rotation only once ready: its first /predict ${gap}s after its model was"

# --- 4. Prometheus ----------------------------------------------------------------------------
log "4. Prometheus: one ecg-api target per replica"
prom=$(python3 - "http://127.0.0.1:$PROMETHEUS_PORT" "${SERVICES[*]}" <<'PY'
import json, sys, time, urllib.parse, urllib.request

base, want = sys.argv[1], sorted(f"{s}:8000" for s in sys.argv[2].split())

def api(path, **params):
    with urllib.request.urlopen(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]

query = 'sum by (instance) (ecg_http_requests_total{job="ecg-api", route="/predict"})'
deadline = time.monotonic() + 90
while True:
    try:
        targets = [t for t in api("targets")["activeTargets"] if t["labels"]["job"] == "ecg-api"]
        up = sorted(t["labels"]["instance"] for t in targets if t["health"] == "up")
        series = api("query", query=query)["result"]
        instances = sorted(s["metric"]["instance"] for s in series)
    except OSError:
        targets, up, instances = [], [], []
    if len(targets) == len(want) and up == want and instances == want:
        break
    if time.monotonic() > deadline:
        sys.exit(f"after 90 s: targets {[(t['labels']['instance'], t['health']) for t in targets]}, "
                 f"series of {instances}, replicas {want}")
    time.sleep(1)
print(f"{len(up)} targets up; {query}: "
      + ", ".join(f"{s['metric']['instance']} {float(s['value'][1]):.0f}" for s in series))
PY
) || die "Prometheus: $prom"
log "  $prom"

if [[ -n ${STEST_RESULTS:-} ]]; then
    python3 - "$WORK" "$STEST_RESULTS" "$spread_line" "$restarted_line" "$kill_window" "$prom" "${ROLL[@]}" <<'PY'
import json, sys
work, out, spread, restarted, kill_window, prom, *roll = sys.argv[1:]
result = {name: json.load(open(f"{work}/load-{name}.json")) for name in ("spread", "rolling", "kill")}
result.update(spread_per_replica=spread, since_restart=restarted, kill_failures=kill_window,
              rolling_restart=roll, prometheus=prom)
json.dump(result, open(out, "w"), indent=1)
PY
    log "numbers written to $STEST_RESULTS"
fi
log "all checks passed"
