"""Every Prometheus metric the server exports, defined here and nowhere else.

Metrics are created per application on the registry it is given, never at import time,
so that building two apps in one process (tests, benchmarks) cannot raise "Duplicated
timeseries". Under gunicorn, prometheus-client's multiprocess mode (the
``PROMETHEUS_MULTIPROC_DIR`` environment variable, see ``gunicorn.conf.py``) makes every
worker write to shared files, and a scrape aggregates them, whichever worker answers it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

PREFIX = "ecg"
Values = Sequence[float] | np.ndarray  # per-beat values, as a list or as numpy gives them
LATENCY_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# MSE buckets are multiples of the model's threshold, dense around 1x, so a shift of the
# score distribution towards (or past) the threshold shows up as moving bucket shares.
MSE_BUCKET_MULTIPLES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)


# Any other method (clients can send any token) is counted as "other": a label value per
# made-up method would let one client grow the metrics without bound.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNPARSED_ROUTE = "unparsed"  # the route label of a request HTTP parsing refused (service/worker.py)


def mse_buckets(threshold: float) -> tuple[float, ...]:
    return tuple(float(f"{threshold * m:.6g}") for m in MSE_BUCKET_MULTIPLES)


class ServiceMetrics:
    """The server's metrics on one registry."""

    def __init__(self, registry: CollectorRegistry, mse_threshold: float) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from receiving a request to handing back its response.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_predict_batch_size_beats",
            "Beats per accepted /predict or /v2 inference request.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.beats_scored = Counter(f"{PREFIX}_beats_scored", "Beats scored by the model.", registry=registry)
        self.anomalies = Counter(
            f"{PREFIX}_anomalies_flagged",
            "Beats whose MSE exceeded the threshold in force for their request.",
            registry=registry,
        )
        self.out_of_range = Counter(
            f"{PREFIX}_out_of_range_beats",
            "Beats with at least one value outside the training data's min/max.",
            registry=registry,
        )
        self.mse = Histogram(
            f"{PREFIX}_beat_mse",
            "Reconstruction MSE per scored beat (scaled space); buckets are multiples of the"
            " model's threshold.",
            buckets=mse_buckets(mse_threshold),
            registry=registry,
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "The model being served (value 1), with its name, version and threshold.",
            ["model_name", "model_version", "threshold"],
            multiprocess_mode="livemax",  # a reloaded or dead worker's value goes with it
            registry=registry,
        )
        self.model_load_duration = Gauge(
            f"{PREFIX}_model_load_duration_seconds",
            "Time a worker took to import TensorFlow, load the SavedModel and warm it up.",
            multiprocess_mode="livemax",  # a reloaded or dead worker's value goes with it
            registry=registry,
        )
        self.workers_ready = Gauge(
            f"{PREFIX}_worker_ready",
            "1 for each live worker whose model is loaded and warmed.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.auth_failures = Counter(
            f"{PREFIX}_auth_failures",
            "Requests refused for want of a valid API key, by route template and reason"
            " (missing, invalid); never by key.",
            ["route", "reason"],
            registry=registry,
        )
        self.api_keys_loaded = Gauge(
            f"{PREFIX}_api_keys_loaded_timestamp_seconds",
            "When the worker last read the API keys file (Unix time); the minimum over live"
            " workers: every worker holds the file as it was then, or newer.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.api_keys_reload_failures = Counter(
            f"{PREFIX}_api_keys_reload_failures",
            "Changes of the API keys file that were not applied (unreadable, a malformed line,"
            " no key): the worker kept the keys it had.",
            registry=registry,
        )

        self._request_children: dict[tuple[str, str, str], tuple] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration. The labelled children are cached:
        ``labels()`` re-validates its arguments on every call, and this runs per request."""
        if method not in HTTP_METHODS:
            method = "other"
        key = (route, method, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.request_duration.labels(route, method))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_scores(self, mse: Values, n_anomalies: int, n_out_of_range: int) -> None:
        n = len(mse)
        self.batch_size.observe(n)
        self.beats_scored.inc(n)
        if n_anomalies:
            self.anomalies.inc(n_anomalies)
        if n_out_of_range:
            self.out_of_range.inc(n_out_of_range)
        observe_many(self.mse, mse)


def observe_many(histogram: Histogram, values: Values) -> None:
    """``histogram.observe(v)`` for every value, with one update per bucket, not per value.

    prometheus-client has no bulk observe, and one call per beat cost ~0.7 ms for a batch
    of 256 (each is a locked write to a shared file in multiprocess mode). Same semantics:
    a value counts in the first bucket whose upper bound is >= it (the buckets are
    cumulated at export), and joins the sum; a NaN joins only the sum.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) <= 4:
        # few values (numpy would cost more than it saves), or the private layout changed
        for value in values:
            histogram.observe(float(value))
        return
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)[: len(bounds)]  # NaN sorts past +Inf
    total.inc(float(array.sum()))
    for i in np.flatnonzero(counts):
        buckets[i].inc(int(counts[i]))


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition and its Content-Type, in the format the scraper's ``Accept`` asks for
    (Prometheus' text format or OpenMetrics); aggregated over all workers in multiprocess
    mode."""
    encode, content_type = choose_encoder(accept)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        return encode(scrape), content_type
    return encode(registry), content_type


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_metric_names() -> set[str]:
    """Every family and sample name the server can export (for checking dashboards and
    alerts); derived from the types, since a labelled metric has no samples until used."""
    metrics = ServiceMetrics(CollectorRegistry(), mse_threshold=1.0)
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names
