"""Anomaly threshold strategies on reconstruction errors.

The decision rule everywhere is ``is_anomaly = mse > threshold`` (strict). scikit-learn's
curves flag ``score >= t``; a chosen curve point is therefore turned into a threshold
halfway between that score and the next lower observed score, which flags exactly the
same beats under the strict rule and generalises better than sitting on a data point.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from service.artifact import Threshold

from . import contamination
from .config import ThresholdSpec


def _strict(scores: np.ndarray, at_least: float) -> float:
    """A threshold ``t`` with ``scores > t`` equal to ``scores >= at_least``."""
    below = scores[scores < at_least]
    return float((at_least + below.max()) / 2) if below.size else float(at_least) * 0.999999


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return _strict(scores, thresholds[int(np.argmax(f1[:-1]))])


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    positives = labels.sum()
    negatives = len(labels) - positives
    accuracy = (tpr * positives + (1 - fpr) * negatives) / len(labels)
    best = int(np.argmax(accuracy[1:])) + 1  # index 0 is the "flag nothing" point at +inf
    return _strict(scores, thresholds[best])


def choose(
    spec: ThresholdSpec,
    train_errors: np.ndarray,
    validation_errors: np.ndarray,
    validation_labels: np.ndarray,
) -> Threshold:
    """Labelled strategies look at the validation split; the others need no labels:
    ``percentile`` and ``mean-std`` read the training errors, ``contamination`` the
    validation errors as an unlabelled stream with a known anomaly ratio, and ``auto``
    the training errors with the anomaly ratio estimated from them (a two-mode mixture,
    training/contamination.py), for users with no labelled beats at all."""
    p = spec.parameter
    on: Literal["train", "validation"]
    match spec.strategy:
        case "best-f1":
            value, on = best_f1(validation_errors, validation_labels), "validation"
        case "best-accuracy":
            value, on = best_accuracy(validation_errors, validation_labels), "validation"
        case "percentile" if p is not None:
            value, on = float(np.percentile(train_errors, p)), "train"
        case "mean-std" if p is not None:
            value, on = float(train_errors.mean() + p * train_errors.std()), "train"
        case "contamination" if p is not None:
            value, on = float(np.quantile(validation_errors, 1.0 - p)), "validation"
        case "auto":
            value, on = contamination.estimate(train_errors).cut, "train"
        case _:  # ThresholdSpec.parse already refused anything else, and a missing parameter
            raise ValueError(f"unknown threshold strategy {spec.strategy!r} (parameter {p!r})")
    return Threshold(value=value, strategy=spec.strategy, parameter=p, chosen_on=on)
