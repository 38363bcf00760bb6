# shellcheck shell=bash
# What deploy/container-test.sh and deploy/scale-test.sh share: podman and its helpers from
# Debian, a containers.conf this host can run, the debootstrapped Debian base image, and
# removing whatever a compose project left behind. Sourced, after `log` and `die`.

# podman, runc, debootstrap, docker-compose and podman's network helpers, from Debian.
install_podman_tools() {
    local missing=() tool cmd pkg
    for tool in podman:podman runc:runc debootstrap:debootstrap docker-compose:docker-compose \
                netavark:netavark aardvark-dns:aardvark-dns python3:python3; do
        cmd=${tool%%:*} pkg=${tool#*:}
        [[ $cmd == netavark || $cmd == aardvark-dns ]] && cmd=/usr/lib/podman/$cmd
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# runc, and open-file and process limits the host allows: podman's rootful defaults
# (1048576 files, 4194304 processes) can exceed the hard limits, and then runc cannot start
# a container ("error setting rlimit"). nproc is capped further because conmon may run with
# a lower hard limit than this shell (32768 on the VM this was written on). The podman
# service the scripts start reads this file too. $1: the work directory.
write_containers_conf() {
    local nofile nproc
    nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
    [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
    [[ $nproc == unlimited || $nproc -gt 16384 ]] && nproc=16384
    cat >"$1/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
CONF
    export CONTAINERS_CONF=$1/containers.conf
}

# The Debian bookworm base image, debootstrapped once and then reused.
# $1: image name, $2: Debian mirror, $3: work directory.
ensure_base_image() {
    local image=$1 mirror=$2 work=$3
    if podman image exists "$image"; then
        log "base image $image present, reusing it"
        return
    fi
    log "debootstrapping Debian bookworm into $image"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log"; die "debootstrap failed"; }
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
    tar -C "$work/rootfs" --numeric-owner -c . \
        | podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
    rm -rf "$work/rootfs"
    log "base image built: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec)"
}

# Whatever compose could not remove (it failed midway, say), by its project label.
# $1: the compose project name.
remove_project_leftovers() {
    local label="label=com.docker.compose.project=$1" leftover
    leftover=$(podman ps -aq --filter "$label" 2>/dev/null || true)
    if [[ -n $leftover ]]; then
        # shellcheck disable=SC2086  # one id per word
        podman rm -f -t 5 $leftover >/dev/null 2>&1 || true
    fi
    podman volume ls -q --filter "$label" 2>/dev/null | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    podman network ls -q --filter "$label" 2>/dev/null | xargs -r podman network rm -f >/dev/null 2>&1 || true
}

# The API image from ./Dockerfile, and each local image from deploy/local/<name>.Dockerfile
# (Debian's packages on the same base), with podman's layer cache. An image a tag leaves
# behind is removed afterwards, so reruns do not pile up old 1.7 GB images. --format docker
# keeps the HEALTHCHECK (the OCI format has none); the host CA bundle goes in as a build
# secret for pip behind a TLS-intercepting proxy and lands in no layer.
# $1: work dir, $2: CA bundle, $3: base image, $4: API image, then <name>=<image> pairs.
# The API image from ./Dockerfile. $1 work dir, $2 CA bundle, $3 base image, $4 tag,
# $5 RUNTIME (tensorflow or litert: the slim image).
build_api_image() {
    local work=$1 ca=$2 base=$3 image=$4 runtime=$5
    local ca_secret=()
    [[ -s $ca ]] && ca_secret=(--secret "id=pip_cert,src=$ca")
    nice -n 10 podman build --format docker --layers \
        --build-arg BASE_IMAGE="$base" --build-arg RUNTIME="$runtime" \
        --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "${ca_secret[@]}" \
        -t "$image" -f Dockerfile . >"$work/build-api-$runtime.log" 2>&1 \
        || { tail -n 40 "$work/build-api-$runtime.log"; die "API image ($runtime) build failed"; }
    log "API image ($runtime) built: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec)"
}

build_images() {
    local work=$1 ca=$2 base=$3 api=$4 spec name image old new id
    shift 4
    local images=("$api")
    for spec in "$@"; do images+=("${spec#*=}"); done
    old=$(podman image inspect --format '{{.Id}}' "${images[@]}" 2>/dev/null || true)
    log "building ${images[*]}"
    build_api_image "$work" "$ca" "$base" "$api" tensorflow
    for spec in "$@"; do
        name=${spec%%=*} image=${spec#*=}
        nice -n 10 podman build --format docker --layers --build-arg BASE_IMAGE="$base" \
            -t "$image" -f "deploy/local/$name.Dockerfile" deploy/local >"$work/build-$name.log" 2>&1 \
            || { tail -n 40 "$work/build-$name.log"; die "$name image build failed"; }
    done
    new=$(podman image inspect --format '{{.Id}}' "${images[@]}")
    for id in $old; do
        grep -qx "$id" <<<"$new" || podman rmi "$id" >/dev/null 2>&1 || true
    done
}

# podman's Docker-compatible API on a socket in the work dir, for docker-compose; sets
# SERVICE_PID (the caller's cleanup stops it) and DOCKER_HOST. $1: work dir.
start_podman_service() {
    podman system service --time=0 "unix://$1/podman.sock" >"$1/podman-service.log" 2>&1 &
    # shellcheck disable=SC2034  # the sourcing script's cleanup reads it
    SERVICE_PID=$!
    for _ in $(seq 50); do [[ -S $1/podman.sock ]] && break; sleep 0.2; done
    [[ -S $1/podman.sock ]] || die "podman system service did not start"
    export DOCKER_HOST=unix://$1/podman.sock
}

# The end of a run, success or not: the last compose logs when it failed, the stack down,
# the podman service stopped, leftovers removed, the work dir gone (unless kept), and the
# verdict. Reads the caller's COMPOSE, PROJECT, SERVICE_PID and START.
# $1: the exit status, $2: 1 to keep the work dir, $3: the work dir.
finish_stack() {
    local status=$1 keep=$2 work=$3
    if [[ -n $SERVICE_PID ]]; then
        log "tearing down the stack"
        if [[ $status -ne 0 ]]; then
            "${COMPOSE[@]}" logs --no-color --tail=60 >"$work/compose-logs.txt" 2>&1 || true
            log "last compose logs:"; tail -n 100 "$work/compose-logs.txt" || true
        fi
        if [[ $keep == 1 ]]; then
            "${COMPOSE[@]}" logs --no-color --timestamps >"$work/compose-logs-all.txt" 2>&1 || true
        fi
        "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 || true
        kill "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    remove_project_leftovers "$PROJECT"
    if [[ $keep == 1 ]]; then log "logs kept in $work"; else rm -rf "$work"; fi
    if [[ $status -eq 0 ]]; then log "PASSED in $((SECONDS - START))s"; else log "FAILED (exit $status)"; fi
}
