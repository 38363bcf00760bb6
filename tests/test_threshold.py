"""Threshold strategies on constructed error distributions."""

from __future__ import annotations

import numpy as np
import pytest

from training import contamination
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
        ("auto:0.1", "is written 'auto'"),
    ],
)
def test_malformed_strategies_are_refused(text, problem):
    with pytest.raises(ValueError, match=problem):
        ThresholdSpec.parse(text)


def test_auto_recovers_a_known_contamination_from_training_errors_alone():
    """10 % of log-normal errors shifted up: ``auto`` finds about that share and cuts between."""
    gen = np.random.default_rng(1)
    normal = np.exp(gen.normal(-6.0, 0.4, 1800))
    anomalous = np.exp(gen.normal(-3.5, 0.5, 200))
    train = np.concatenate([normal, anomalous])
    t = choose(ThresholdSpec.parse("auto"), train, SCORES, LABELS)
    assert (t.strategy, t.parameter, t.chosen_on) == ("auto", None, "train")
    assert (train > t.value).mean() == pytest.approx(0.10, abs=0.02)
    assert (normal > t.value).mean() < 0.02 and (anomalous > t.value).mean() > 0.9


def test_auto_on_clean_errors_flags_only_the_normal_tail():
    """One log-normal mode: no contamination is invented; about the top 0.5 % is flagged."""
    clean = np.exp(np.random.default_rng(2).normal(-6.0, 0.4, 2000))
    estimate = contamination.estimate(clean)
    assert estimate.components == 1
    assert estimate.share < 0.02
    t = choose(ThresholdSpec.parse("auto"), clean, SCORES, LABELS)
    assert t.value == pytest.approx(estimate.cut)


@pytest.mark.parametrize("share", [0.05, 0.3, 0.5])
def test_the_contamination_estimate_follows_the_true_share(share):
    gen = np.random.default_rng(3)
    n = 3000
    k = int(share * n)
    errors = np.exp(np.concatenate([gen.normal(-6.0, 0.4, n - k), gen.normal(-3.0, 0.6, k)]))
    assert contamination.estimate(errors).share == pytest.approx(share, abs=0.03)
