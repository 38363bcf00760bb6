"""Scoring without a server: numpy in, numpy out."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import scale


def test_scores_equal_the_training_sides_scoring(tiny_predictor, tiny_run, pool):
    """The contract: the server's numbers are the Keras model's on the same beats, to 1e-6."""
    beats = pool.beats[:200]
    scaled = scale(beats, tiny_run.metadata.scaler)
    errors = (scaled - tiny_run.trained.model(scaled, training=False).numpy()) ** 2
    scores = tiny_predictor.predict(beats)
    np.testing.assert_allclose(scores.point_errors, errors, atol=1e-6)
    np.testing.assert_allclose(scores.mse, errors.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(scores.is_anomaly, scores.mse > tiny_run.metadata.threshold.value)


def test_mse_is_the_mean_of_the_point_errors(tiny_predictor, pool):
    scores = tiny_predictor.predict(pool.beats[:50])
    np.testing.assert_allclose(scores.point_errors.mean(axis=1), scores.mse, rtol=1e-5)


def test_a_threshold_override_changes_only_the_flags(tiny_predictor, pool):
    beats = pool.beats[:100]
    default = tiny_predictor.predict(beats)
    everything = tiny_predictor.predict(beats, threshold=1e-12)
    np.testing.assert_array_equal(default.mse, everything.mse)
    assert everything.is_anomaly.all() and everything.threshold == 1e-12
    assert default.threshold == tiny_predictor.threshold


def test_beats_outside_the_training_range_are_marked(tiny_predictor, pool):
    beats = pool.beats[:3].copy()
    beats[1, 70] = tiny_predictor.metadata.scaler.data_max + 1.0
    beats[2, 0] = tiny_predictor.metadata.scaler.data_min - 1.0
    assert tiny_predictor.predict(beats).out_of_range.tolist() == [False, True, True]


def test_the_reconstruction_comes_back_in_raw_units(tiny_predictor, pool):
    beats = pool.beats[:20]
    scores = tiny_predictor.predict(beats)
    # a working autoencoder's reconstruction is near the beat, in the beat's own units
    assert np.abs(scores.reconstruction - beats).mean() < np.abs(beats).mean()


def test_a_batch_of_the_wrong_shape_is_refused(tiny_predictor):
    with pytest.raises(ValueError, match=r"shape \(n, 140\)"):
        tiny_predictor.predict(np.zeros((2, 139), np.float32))


@pytest.mark.parametrize("onednn", [False, True])
def test_a_fresh_worker_runs_tensorflows_plain_kernels_unless_asked_and_scores_the_same(
    onednn, tiny_predictor, tiny_run, pool
):
    """oneDNN is off by default (ECG_TF_ONEDNN): it is slower for this model's small
    matmuls. The switch only works before TensorFlow is imported, hence a fresh process."""
    import json
    import subprocess
    import sys

    from service.artifact import REPO_ROOT

    script = (
        "import json, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from service.artifact import Artifact, read_metadata\n"
        "from service.predictor import Predictor\n"
        "path = Path(sys.argv[1])\n"
        "artifact = Artifact(path, read_metadata(path))\n"
        "p = Predictor.load(artifact, 'tensorflow', 1, onednn=sys.argv[2] == '1')\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "mse = p.predict(np.array(json.loads(sys.stdin.read()), dtype=np.float32)).mse\n"
        "print(json.dumps([_pywrap_util_port.IsMklEnabled(), mse.tolist()]))\n"
    )
    beats = pool.beats[:50]
    out = subprocess.run(
        [sys.executable, "-c", script, str(tiny_run.path), "1" if onednn else "0"],
        input=json.dumps(beats.tolist()),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    enabled, mse = json.loads(out.stdout.strip().splitlines()[-1])
    assert enabled is onednn
    np.testing.assert_allclose(mse, tiny_predictor.predict(beats).mse, rtol=1e-5, atol=1e-8)
