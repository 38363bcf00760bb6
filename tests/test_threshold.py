"""Threshold strategies on constructed error distributions."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import ThresholdSpec
from training.threshold import choose

rng = np.random.default_rng(0)
NORMAL = rng.uniform(0.0, 1.0, 900)
ABNORMAL = rng.uniform(2.0, 3.0, 100)
SCORES = np.concatenate([NORMAL, ABNORMAL])
LABELS = np.concatenate([np.zeros(900, int), np.ones(100, int)])
TRAIN = rng.normal(1.0, 0.1, 5000)


def pick(text: str, scores=SCORES, labels=LABELS):
    return choose(ThresholdSpec.parse(text), TRAIN, scores, labels)


@pytest.mark.parametrize("strategy", ["best-f1", "best-accuracy"])
def test_labelled_strategies_separate_separable_errors(strategy):
    """On separable errors the threshold falls in the gap and flags exactly the abnormal."""
    t = pick(strategy)
    assert NORMAL.max() < t.value < ABNORMAL.min()
    assert t.chosen_on == "validation" and t.strategy == strategy
    np.testing.assert_array_equal(SCORES > t.value, LABELS.astype(bool))


def test_best_f1_and_best_accuracy_differ_where_they_should():
    """With a few abnormal beats hidden among normal errors, best-accuracy flags fewer."""
    scores = np.concatenate([np.linspace(0, 1, 900), np.linspace(0.5, 1, 50), np.linspace(1.5, 2, 50)])
    labels = np.concatenate([np.zeros(900, int), np.ones(100, int)])
    f1 = pick("best-f1", scores, labels)
    acc = pick("best-accuracy", scores, labels)
    flagged_f1, flagged_acc = (scores > f1.value), (scores > acc.value)
    assert flagged_acc.sum() <= flagged_f1.sum()
    assert (flagged_acc == labels).mean() >= (flagged_f1 == labels).mean()


def test_the_threshold_is_strict_and_off_the_data():
    """The chosen value is no observed score, so ">" and ">=" flag the same beats."""
    t = pick("best-f1").value
    assert t not in SCORES
    np.testing.assert_array_equal(SCORES > t, SCORES >= t)


def test_percentile_reads_the_training_errors():
    t = pick("percentile:99")
    assert t.value == pytest.approx(np.percentile(TRAIN, 99))
    assert (t.strategy, t.parameter, t.chosen_on) == ("percentile", 99.0, "train")


def test_mean_std_reads_the_training_errors():
    t = pick("mean-std:3")
    assert t.value == pytest.approx(TRAIN.mean() + 3 * TRAIN.std())
    assert t.chosen_on == "train"


def test_contamination_flags_that_share_of_validation_beats():
    t = pick("contamination:0.1")
    assert (SCORES > t.value).mean() == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("median", "unknown threshold strategy"),
        ("percentile", "is written 'percentile:<number>'"),
        ("percentile:100", "0 < P < 100"),
        ("contamination:1.5", "0 < R < 1"),
        ("mean-std:x", "not a number"),
        ("best-f1:3", "is written 'best-f1'"),
    ],
)
def test_malformed_strategies_are_refused(text, problem):
    with pytest.raises(ValueError, match=problem):
        ThresholdSpec.parse(text)
