"""Test-split metrics at the chosen threshold, computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from service.artifact import ABNORMAL_CLASSES, NORMAL_CLASS, ConfusionMatrix, TestMetrics


def abnormal(classes: np.ndarray) -> np.ndarray:
    """The binary labels every metric here uses: 1 for an abnormal beat (class 2-5)."""
    return (classes != NORMAL_CLASS).astype(int)


def evaluate(scores: np.ndarray, classes: np.ndarray, threshold: float) -> TestMetrics:
    """Abnormal beats (class 2-5) are the positive class; a beat is flagged when its
    score is strictly above ``threshold``."""
    labels = abnormal(classes)
    flagged = (scores > threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, flagged, labels=[0, 1]).ravel())
    recall_by_class = {
        str(c): float(flagged[classes == c].mean()) for c in ABNORMAL_CLASSES if (classes == c).any()
    }
    return TestMetrics(
        roc_auc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        precision=float(precision_score(labels, flagged, zero_division=0)),
        recall=float(recall_score(labels, flagged, zero_division=0)),
        f1=float(f1_score(labels, flagged, zero_division=0)),
        accuracy=float(accuracy_score(labels, flagged)),
        fpr=fp / (fp + tn) if fp + tn else 0.0,
        fnr=fn / (fn + tp) if fn + tp else 0.0,
        confusion_matrix=ConfusionMatrix(tn=tn, fp=fp, fn=fn, tp=tp),
        recall_by_class=recall_by_class,
        n_test=len(labels),
        n_abnormal=int(labels.sum()),
    )


def ranking_metrics(scores: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    labels = abnormal(classes)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }
