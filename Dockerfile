# ECG anomaly detection model server: gunicorn + Flask serving the bundled Keras autoencoder.
#
#   docker build -t ecg-anomaly:latest .
#   docker run --rm -p 8000:8000 ecg-anomaly:latest
#   docker build --build-arg RUNTIME=litert -t ecg-anomaly:litert .   # the slim image
#
# RUNTIME chooses what runs the model: tensorflow (the default: the SavedModel, TensorFlow
# installed) or litert (each version's checked LiteRT copy, ai-edge-litert installed and
# no TensorFlow: a fraction of the size, memory and start-up; README, Runtimes). The
# image's ECG_RUNTIME is set to match.
#
# BASE_IMAGE must provide python3 (3.11) with the venv module; both stages use it, so the
# virtual environment built in the first stage runs unchanged in the second.
# deploy/container-test.sh builds with a debootstrapped Debian bookworm base instead of the
# default (python3 + python3-venv from Debian), as that host cannot pull from registries.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME=tensorflow

# ---------------------------------------------------------------------------------------
# builder: the serving dependencies, pinned by requirements/serving.lock (TensorFlow) or
# requirements/serving-litert.lock (LiteRT), in /opt/venv.
# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
ARG RUNTIME

ENV PIP_NO_CACHE_DIR=1 \
    PIP_PROGRESS_BAR=off \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY requirements/serving.lock requirements/serving-litert.lock /tmp/

# --no-deps: the lock is the complete dependency closure, so nothing unpinned can slip in;
# `pip check` then proves the closure is consistent. A build secret `pip_cert` (a CA bundle
# file) is used when given, for builds behind a TLS-intercepting proxy; it never lands in a
# layer:  docker build --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt .
# Then drop what serving never uses: TensorFlow's C++ headers (~290 MB, for compiling
# custom ops) and pip itself.
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && case "$RUNTIME" in \
         tensorflow) lock=/tmp/serving.lock ;; \
         litert) lock=/tmp/serving-litert.lock ;; \
         *) echo "RUNTIME must be tensorflow or litert, not '$RUNTIME'" >&2; exit 1 ;; \
       esac \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --require-virtualenv -r "$lock" \
    && /opt/venv/bin/pip check \
    && rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include \
    && /opt/venv/bin/pip uninstall --yes pip

# ---------------------------------------------------------------------------------------
# runtime: the venv, the serving code, its gunicorn config and the bundled model. Nothing
# from training/ and no build tools.
# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG RUNTIME

# Fixed non-root ids, so a mounted model directory only has to be readable by uid 10001
# (or world-readable) and orchestrators can check runAsNonRoot.
RUN groupadd --system --gid 10001 ecg \
    && useradd --system --uid 10001 --gid ecg --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ecg

# ECG_BIND: listen on all interfaces inside the container (the code's default is loopback).
# PROMETHEUS_MULTIPROC_DIR and the worker heartbeat dir live on tmpfs (/tmp, /dev/shm), so
# the container also runs with a read-only root filesystem (see docker-compose.yml).
# KERAS_HOME: keras writes its config there on import; HOME is not writable.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KERAS_HOME=/tmp/keras \
    ECG_RUNTIME=${RUNTIME} \
    ECG_BIND=0.0.0.0:8000 \
    ECG_MODEL_DIR=/app/saved_models \
    ECG_DATA_DIR=/app/data \
    ECG_WORKER_TMP_DIR=/dev/shm \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc

WORKDIR /app

COPY --from=builder /opt/venv /opt/venv
# Code and model stay root-owned: the server only reads them.
COPY gunicorn.conf.py ./
COPY service/ ./service/
COPY saved_models/ ./saved_models/
# ECG5000, for the explorer's test split (the artifact names its rows; the server checks
# each file's sha256 against metadata.json).
COPY data/ ./data/
# Byte-compile the server now: at run time the filesystem may be read-only.
RUN python3 -m compileall -q service

USER 10001:10001
EXPOSE 8000

# Healthy once a worker has loaded and warmed the model (/readyz answers 200, else 503:
# urlopen raises, python exits 1). Python's urllib, so the image needs no curl. The code
# has no spaces because podman's Docker-compatible API splits healthcheck arguments on
# whitespace (docker-compose.yml repeats this check).
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:8000/readyz',timeout=4)"]

# OCI labels last: a new revision or date then rebuilds only this metadata layer.
ARG VERSION=0.2.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="ecg-anomaly" \
      org.opencontainers.image.description="ECG heartbeat anomaly detection: gunicorn/Flask server for a Keras autoencoder" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

CMD ["python3", "-m", "service", "-c", "gunicorn.conf.py"]
