"""Scoring without a server: numpy in, numpy out."""

from __future__ import annotations

import numpy as np
import pytest

from service.artifact import read_metadata
from service.predictor import Predictor
from training.data import scale


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor(tiny_run.path, read_metadata(tiny_run.path))


def test_scores_equal_the_training_sides_scoring(predictor, tiny_run, pool):
    """The contract: the server's numbers are the Keras model's on the same beats, to 1e-6."""
    beats = pool.beats[:200]
    scaled = scale(beats, tiny_run.metadata.scaler)
    errors = (scaled - tiny_run.trained.model(scaled, training=False).numpy()) ** 2
    scores = predictor.predict(beats)
    np.testing.assert_allclose(scores.point_errors, errors, atol=1e-6)
    np.testing.assert_allclose(scores.mse, errors.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(scores.is_anomaly, scores.mse > tiny_run.metadata.threshold.value)


def test_mse_is_the_mean_of_the_point_errors(predictor, pool):
    scores = predictor.predict(pool.beats[:50])
    np.testing.assert_allclose(scores.point_errors.mean(axis=1), scores.mse, rtol=1e-5)


def test_a_threshold_override_changes_only_the_flags(predictor, pool):
    beats = pool.beats[:100]
    default = predictor.predict(beats)
    everything = predictor.predict(beats, threshold=1e-12)
    np.testing.assert_array_equal(default.mse, everything.mse)
    assert everything.is_anomaly.all() and everything.threshold == 1e-12
    assert default.threshold == predictor.threshold


def test_beats_outside_the_training_range_are_marked(predictor, pool):
    beats = pool.beats[:3].copy()
    beats[1, 70] = predictor.metadata.scaler.data_max + 1.0
    beats[2, 0] = predictor.metadata.scaler.data_min - 1.0
    assert predictor.predict(beats).out_of_range.tolist() == [False, True, True]


def test_the_reconstruction_comes_back_in_raw_units(predictor, pool):
    beats = pool.beats[:20]
    scores = predictor.predict(beats)
    # a working autoencoder's reconstruction is near the beat, in the beat's own units
    assert np.abs(scores.reconstruction - beats).mean() < np.abs(beats).mean()


def test_a_batch_of_the_wrong_shape_is_refused(predictor):
    with pytest.raises(ValueError, match=r"shape \(n, 140\)"):
        predictor.predict(np.zeros((2, 139), np.float32))
