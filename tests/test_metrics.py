"""The metrics module on its own: bulk observation equals one-by-one observation."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from service.metrics import mse_buckets, observe_many


def histogram_samples(observe) -> dict[tuple, float]:
    registry = CollectorRegistry()
    histogram = Histogram("h", "test", buckets=mse_buckets(0.0027), registry=registry)
    observe(histogram)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@pytest.mark.parametrize("seed", range(5))
def test_bulk_observe_fills_the_same_buckets_as_one_by_one(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.lognormal(np.log(0.0027), 1.5, 300), np.asarray(mse_buckets(0.0027)), [0.0, 1e9]]
    ).astype(np.float32)

    def one_by_one(h):
        for v in values:
            h.observe(float(v))

    bulk = histogram_samples(lambda h: observe_many(h, values))
    single = histogram_samples(one_by_one)
    assert bulk.keys() == single.keys()
    for key, value in single.items():
        assert bulk[key] == pytest.approx(value, rel=1e-9), key
