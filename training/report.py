"""The human-facing report beside a model version: four PNGs and a Markdown page."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

from service.artifact import Metadata

from .evaluate import abnormal


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(folder: Path, metadata: Metadata, test_scores: np.ndarray, test_classes: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = abnormal(test_classes)
    threshold = metadata.threshold.value

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in metadata.history.items():
        if key.endswith("loss"):  # robust fits add other traces (kept share, trim fraction)
            ax.plot(np.arange(1, len(values) + 1), values, label=key)
    ax.set(xlabel="epoch", ylabel="loss (scaled MSE)", yscale="log", title="Training history")
    ax.legend()
    _save(fig, folder / "loss.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    RocCurveDisplay.from_predictions(labels, test_scores, ax=ax, name="autoencoder MSE")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_title(f"ROC on the test split (AUC {metadata.metrics.roc_auc:.4f})")
    _save(fig, folder / "roc.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    PrecisionRecallDisplay.from_predictions(labels, test_scores, ax=ax, name="autoencoder MSE")
    ax.set_title(f"Precision-recall on the test split (AP {metadata.metrics.average_precision:.4f})")
    _save(fig, folder / "pr.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    positive = test_scores[test_scores > 0]
    low = positive.min() if positive.size else 1e-6
    bins = np.geomspace(low, max(test_scores.max(), threshold * 1.01), 60).tolist()
    ax.hist(test_scores[labels == 0], bins=bins, alpha=0.6, label="normal (class 1)")
    ax.hist(test_scores[labels == 1], bins=bins, alpha=0.6, label="abnormal (classes 2-5)")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(xscale="log", xlabel="reconstruction MSE (scaled)", ylabel="test beats")
    ax.set_title("Test errors, normal vs abnormal")
    ax.legend()
    _save(fig, folder / "errors.png")

    m = metadata.metrics
    cm = m.confusion_matrix
    per_class = "\n".join(f"| {c} | {r:.4f} |" for c, r in m.recall_by_class.items())
    page = f"""# {metadata.model_name} version {metadata.version}

Created {metadata.created_at.isoformat()}; threshold {threshold:.6g}
({metadata.threshold.strategy}{
        "" if metadata.threshold.parameter is None else f":{metadata.threshold.parameter:g}"
    }, chosen on the {metadata.threshold.chosen_on} split).
Test split: {m.n_test} beats, {m.n_abnormal} abnormal.

| metric | test |
|---|---|
| ROC AUC | {m.roc_auc:.4f} |
| average precision | {m.average_precision:.4f} |
| precision | {m.precision:.4f} |
| recall | {m.recall:.4f} |
| F1 | {m.f1:.4f} |
| accuracy | {m.accuracy:.4f} |
| false positive rate | {m.fpr:.4f} |
| false negative rate | {m.fnr:.4f} |

Confusion matrix (rows: truth, columns: flagged): normal {cm.tn} / {cm.fp}, abnormal {cm.fn} / {cm.tp}.

| abnormal class | recall |
|---|---|
{per_class}

![errors](errors.png)
![roc](roc.png) ![pr](pr.png)
![loss](loss.png)
"""
    (folder / "report.md").write_text(page)
    return folder / "report.md"
