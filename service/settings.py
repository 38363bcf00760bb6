"""The server's configuration: one typed object read from ``ECG_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .artifact import BUNDLED_MODEL_DIR, REPO_ROOT, Runtime


class Settings(BaseSettings):
    """Every field is set by the environment variable ``ECG_<FIELD NAME>``, e.g.
    ``ECG_MODEL_VERSION=3``. gunicorn.conf.py reads the same object."""

    model_config = SettingsConfigDict(env_prefix="ECG_", extra="ignore", protected_namespaces=())

    model_dir: Path = Field(BUNDLED_MODEL_DIR, description="Folder holding <model-name>/<version>/.")
    model_name: str = Field("ecg-autoencoder", description="Model to serve.")
    data_dir: Path = Field(
        REPO_ROOT / "data",
        description="Folder holding the ECG5000 files the model's split indexes (the explorer's"
        " test split); checked against the metadata's sha256. Absent: the explorer has no test split.",
    )
    model_version: int | None = Field(None, ge=1, description="Version to serve; unset serves the newest.")
    runtime: Runtime = Field(
        "tensorflow",
        description="What runs the model: tensorflow (the SavedModel) or litert (the version's"
        " checked LiteRT copy: a fraction of the memory and start-up; README, Runtimes).",
    )
    bind: str = Field("127.0.0.1:8000", description="gunicorn listen address (host:port).")
    metrics_bind: str | None = Field(
        None,
        description="A second listen address (host:port) that serves only /metrics, with no key;"
        " set, the API's address no longer serves /metrics (README, Security).",
    )
    api_keys_file: Path | None = Field(
        None,
        description="File of API keys, one a line (# comments, blank lines); set, every route"
        " but ECG_AUTH_OPEN_ROUTES needs `Authorization: Bearer <key>`. Reread when it changes.",
    )
    auth_open_routes: Annotated[tuple[str, ...], NoDecode] = Field(
        ("/livez", "/readyz", "/metrics"),
        description="Comma-separated paths that need no key when keys are on; a trailing *"
        " matches a prefix (e.g. /explorer/*).",
    )
    api_keys_check_seconds: float = Field(
        1.0, gt=0, le=60, description="How often each worker looks for a change of the keys file."
    )
    workers: int = Field(2, ge=1, description="gunicorn worker processes.")
    timeout_seconds: int = Field(30, ge=1, description="A worker silent this long is restarted.")
    graceful_timeout_seconds: int = Field(
        20, ge=1, description="Time to finish in-flight requests on shutdown or reload."
    )
    shutdown_delay_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="On SIGTERM, how long readiness answers 503 while connections are still"
        " accepted and served, for load balancers to stop sending (README, Lifecycle).",
    )
    keepalive_seconds: int = Field(5, ge=0, description="Idle keep-alive connection lifetime.")
    client_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="A client silent this long mid-request is dropped (408 mid-body)."
    )
    request_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="Most time a client may take to send a whole request, however it trickles"
        " (408 mid-body); under ECG_TIMEOUT_SECONDS, so a slow client never gets its worker killed.",
    )
    max_beats: int = Field(1024, ge=1, description="Most beats accepted in one request (413 over).")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 over)."
    )
    linger_max_bytes: int = Field(
        128 * 1024 * 1024,
        ge=0,
        description="After an early answer (a 413), most request bytes still read and dropped"
        " so that a client which sends its whole body before reading gets the answer.",
    )
    ready_wait_seconds: float = Field(
        10.0,
        ge=0,
        le=60,
        description="How long /predict waits for a model still loading before answering 503.",
    )
    tf_intra_op_threads: int = Field(
        0, ge=0, description="TensorFlow threads per op per worker; 0 = CPUs / workers."
    )
    tf_onednn: bool | None = Field(
        None,
        description="Run TensorFlow's oneDNN kernels; unset: only when a worker has several"
        " intra-op threads. Single-threaded, the plain kernels are faster at every batch size"
        " (one beat ~14 us a call against ~31 us); with 2 threads oneDNN is faster at 256 beats.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the JSON logs on stdout."
    )
    worker_tmp_dir: Path | None = Field(
        None, description="gunicorn heartbeat folder; default /dev/shm when present."
    )

    @field_validator("auth_open_routes", mode="before")
    @classmethod
    def _split_routes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("auth_open_routes")
    @classmethod
    def _routes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for route in value:
            if not route.startswith("/") or "*" in route[:-1]:
                raise ValueError(f"{route!r}: a path starting with /, with * only at its end")
        return value

    @model_validator(mode="after")
    def _metrics_port_differs(self) -> Settings:
        port = self.bind.rpartition(":")[2]
        if self.metrics_bind is not None and self.metrics_bind.rpartition(":")[2] == port:
            raise ValueError(f"ECG_METRICS_BIND ({self.metrics_bind}) needs a port other than ECG_BIND's")
        return self

    @model_validator(mode="after")
    def _deadlines_fit(self) -> Settings:
        if self.request_timeout_seconds >= self.timeout_seconds:
            raise ValueError(
                f"ECG_REQUEST_TIMEOUT_SECONDS ({self.request_timeout_seconds:g}) must be under"
                f" ECG_TIMEOUT_SECONDS ({self.timeout_seconds}): gunicorn kills a worker busy that long"
            )
        return self

    def intra_op_threads(self) -> int:
        return self.tf_intra_op_threads or max(1, (os.cpu_count() or 1) // self.workers)

    def onednn(self) -> bool:
        return self.tf_onednn if self.tf_onednn is not None else self.intra_op_threads() > 1
