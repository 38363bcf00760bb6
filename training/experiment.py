"""The contamination experiment: how detectors hold up when training beats are not all normal.

``python -m training.experiment`` fits each method on the same splits with 0 / 10 / 30 / 50 %
abnormal training beats, over several seeds, appends one JSON record per (method,
fraction, seed) to ``training/results/contamination.jsonl`` and rewrites
``training/RESULTS.md`` from every record in that file. ``--methods``, ``--fractions`` and
``--seeds`` run a subset (one cell takes about a minute); ``--set key=value`` overrides a
training setting for a screening variant; ``--render-only`` just rewrites the tables.
Nothing is exported: this is a study, not a release.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from sklearn.decomposition import PCA
from sklearn.svm import OneClassSVM

from service.artifact import NORMAL_CLASS, Scaler

from . import contamination
from .config import TrainingConfig
from .data import Dataset, load_pool, scale

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
RECORDS = HERE / "results" / "contamination.jsonl"
ROBUST = ("trim", "trim-auto", "refit", "rda", "core")
METHODS = ("autoencoder", *ROBUST, "pca", "ocsvm")
DEFAULT_METHODS = ("autoencoder", "core", "pca", "ocsvm")
BASELINES = ("pca", "ocsvm")  # fit no autoencoder: the network's settings do not apply
ROBUST_TARGETS = {0.1: 0.95, 0.3: 0.90, 0.5: 0.75}  # issue 19: mean test ROC AUC over >= 5 seeds
CLEAN_COST = 0.005  # ... and at most this much AUC lost on clean data
CLEAN_GOAL = {"roc_auc": 0.995, "average_precision": 0.985, "f1": 0.978}  # item 4, 5-seed test means
SCREEN_SEEDS = (0, 1)  # clean-data variants are ranked on these seeds' validation ROC AUC
SEARCH_SEEDS = (0, 1, 2, 3, 4)  # ... compared on these, and the goal is checked on them
CONFIRM_SEEDS = (5, 6, 7, 8, 9)  # never used to choose: a change of default is re-checked here
# Labels name the settings that differ from this network (the default when the records began),
# so a label keeps its meaning when a default changes. Every recorded network setting is
# pinned here: a default that moves later shows up in the labels of the runs that used it.
LABEL_REFERENCE: dict[str, Any] = {
    "validation_fraction": 0.2,
    "test_fraction": 0.2,
    "architecture": "dense",
    "hidden_layers": [128, 64],
    "conv_filters": [16, 32],
    "conv_kernel": 7,
    "latent_size": 8,
    "activation": "relu",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "regularizer": "l2",
    "regularization_rate": 1e-5,
    "epochs": 300,
    "batch_size": 64,
    "early_stopping_patience": 25,
    "kept_weights": "val-loss",
    "input_noise": 0.0,
    "ensemble_size": 1,
    "trim_fraction": 0.3,
    "refit_rounds": 2,
    "rda_lambda": 1.5,
    "core_components": 4,
}
NOT_NETWORK = {"data_files", "model_name", "seed", "abnormal_fraction", "threshold"}  # set per cell
NAMED_BY_METHOD = {"robust", "robust_method"}  # the label's method already says these


def network_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings a record keeps under ``config``: everything but what each cell sets."""
    return {k: v for k, v in config.recorded().items() if k not in NOT_NETWORK}


def label_of(method: str, settings: dict[str, Any], scaling: str = "global") -> str:
    """``method`` and, in the configuration's field order, each of ``settings`` that differs
    from ``LABEL_REFERENCE`` (a setting a record lacks was the reference's)."""
    parts = [
        f"{k}={v}"
        for k, v in settings.items()
        if k not in NAMED_BY_METHOD and k in LABEL_REFERENCE and LABEL_REFERENCE[k] != v
    ]
    if scaling != "global":
        parts.append(f"scaling={scaling}")
    return " ".join([method, *parts])


def label_for(
    method: str, overrides: dict[str, Any], scaling: str = "global", defaults: TrainingConfig | None = None
) -> str:
    """The label of a run of ``method`` with ``overrides`` on today's defaults (or
    ``defaults``); PCA and the SVM fit no network, so only their overrides count."""
    if method in BASELINES:
        defaults = TrainingConfig(**LABEL_REFERENCE)
    config = TrainingConfig.model_validate({**(defaults or TrainingConfig()).model_dump(), **overrides})
    return label_of(method, network_settings(config), scaling)


CLEAN_DEFAULT = label_for("autoencoder", {})  # the label of the default configuration's records
# What the clean-data search chose, and on what (written when the search was done).
CLEAN_CHOICE = [
    "What chose what (2026-12-01, one shared core, about two hours):",
    "",
    "1. Screen, seeds 0 and 1: dense variants one step from the old default or from latent 16"
    " (latent 32; [256, 128]-16; latent 16 without L2, with elu, at batch 32), the 1-D"
    " convolutional autoencoder (`architecture=conv`, `--architecture conv`) and per-point"
    " scaling (`scaling=per-point`, a study only: the artifact's scaler is global, so it could"
    " not become the default without changing what the server reads). Earlier runs (latent 16,"
    " ensemble of 3, 600 epochs) are ranked the same way. On these two seeds the validation"
    " AUCs of all variants lie close together; the screen separates little.",
    "2. Confirmation, seeds 2-4: the screen leader (`architecture=conv`) and the best-screened"
    " variant without 5 seeds yet (`latent_size=16 batch_size=32`); `latent_size=16` had 5"
    " seeds already. The conv model, first on seeds 0 and 1, has the lowest validation AUC of the"
    " three on seeds 2-4, so a two-seed screen misleads here.",
    "3. Candidate: of the variants with 5 seeds, the highest mean validation ROC AUC:"
    " `latent_size=16 batch_size=32`.",
    "4. Default: the rule fixed before the confirmation was to make the candidate the default if"
    " its 5-seed test means met the goal, or beat the old default's on all of ROC AUC, AP and F1."
    " They beat them on all three (per seed: ROC AUC and AP higher on every seed, F1 higher on"
    " three, equal on one, lower on one), and meet the goal for AP only; so `python -m training`"
    " now uses latent 16 at batch 32. Test numbers gated that change; they never ranked variants."
    " Class 4 (SP/EB) recall is lower than the old default's on two of the five seeds and higher"
    " on one (recall table). `--robust` alone fits `core` on the same network, so its targets"
    " table above reads the `core latent_size=16 batch_size=32` rows; the `core` rows are the"
    " old network's.",
    "5. Not run, for time: learning rate 3e-4 and conv with latent 16 (both stopped before a"
    " cell finished, to give the shared core to the confirmations), an ensemble of latent-16"
    " models, conv + ensemble (conv lost on 5 seeds), and an optuna search (not installed;"
    " at about a minute per fit only a few dozen trials fitted, and a listed grid is easier"
    " to audit).",
    "",
    "Round 2 (2026-12-01, 18:36-20:35 UTC, two cores), every variant straight"
    " on seeds 0-4 (the two-seed screen had misled):",
    "",
    "6. Network variants of latent 16 at batch 32: an ensemble of 3, [256, 128], learning rate"
    " 3e-4, no L2, and a denoising fit (`--input-noise`, new: Gaussian noise on the scaled"
    " inputs while fitting) at 0.01, 0.02 and 0.05. Only noise 0.01 passed the default's mean"
    " validation ROC AUC (0.9937 against 0.9935), and it failed step 4's gate on F1 (0.9714"
    " against 0.9738; ROC AUC 0.9938 and AP 0.9862 were higher by 0.0001 and 0.0002).",
    "7. The epoch kept. The default exported the epoch of lowest validation *loss*. On the"
    " bundled split (seed 42) the validation ROC AUC peaks at epoch 7 (0.9940) and falls to"
    " 0.988 by epoch 240 while the loss still improves: the better the network rebuilds normal"
    " beats, the better it rebuilds anomalies too. `--kept-weights val-auc` (new) keeps the"
    " epoch of highest validation ROC AUC: the epoch count as a hyper-parameter of the"
    " labelled validation split, which already picks the threshold. Its validation AUC is a"
    " maximum over epochs, hence optimistic and not comparable with the val-loss rows; so, as"
    " in step 4, test means on seeds 0-4 gated it (they rank nothing): 0.9948 / 0.9891 / 0.9749"
    " (ROC AUC / AP / F1) against 0.9937 / 0.9860 / 0.9738, higher on all three; ROC AUC per"
    " seed +0.0000, -0.0001, +0.0033, +0.0003, +0.0020. Epochs kept (of those run): 208/209,"
    " 12/300, 19/300, 118/118, 29/258 on seeds 0-4; 10, 14, 32, 29, 299 on seeds 5-9; 7/240"
    " on seed 42.",
    "8. Network variants under val-auc, ranked by validation ROC AUC among themselves (the same"
    " optimism on every side): no L2 first (0.9958), then the default network (0.9949), noise"
    " 0.02 (0.9948), noise 0.01 (0.9945), latent 8 (0.9942), L2 1e-4 (0.9776). No L2 failed the"
    " gate of step 4 on AP (0.9855 against 0.9860; ROC AUC 0.9945 and F1 0.9763 were higher),"
    " the default network passed it (step 7). So `python -m training` now keeps the best"
    " validation-AUC epoch of latent 16 at batch 32 with L2 1e-5. Unset, `--kept-weights`"
    " follows the threshold: a label-free one (`percentile`, `mean-std`, `contamination`,"
    " `auto`) keeps val-loss, which reads no labelled anomaly. Run after the choice, for"
    " completeness: an ensemble of 3 under val-auc, validation 0.9949 (the default's, to four"
    " places) and test 0.9942 / 0.9868 / 0.9731, below the default on all three. Averaging"
    " three reconstructions rebuilds anomalies better too (seed 0: 0.9889 against 0.9925 for"
    " its first member alone), as longer training does.",
    "9. Confirmation on seeds 5-9, run after the choice (table below): 0.9936 / 0.9905 / 0.9694"
    " against 0.9934 / 0.9893 / 0.9713 for val-loss, so ROC AUC +0.0002, AP +0.0012, F1 -0.0018:"
    " the gain of seeds 0-4 mostly did not replicate. No split lost more than 0.0010 ROC AUC;"
    " the two where the AUC peaks early gained 0.0033 (seed 2) and 0.0048 (seed 42, the bundled"
    " model: 0.9992 / 0.9989 / 0.9747 against 0.9944 / 0.9902 / 0.9715).",
    "10. `--robust` alone (`core`) now keeps its best validation-AUC epoch too: 0.985 / 0.979 /"
    " 0.978 at 10 / 30 / 50 % on seeds 0-4 against 0.979 / 0.974 / 0.971 on val-loss, and"
    " 0.984 / 0.986 / 0.985 on seeds 5-9 (run after the choice). Where class 4 (SP/EB) recall"
    " fell under `core` at 30 % on val-loss (seeds 2 and 3: 0.72 and 0.49), 22 and 21 class-4"
    " rows had slipped into the kept rows (`kept.abnormal_rows_by_class` in the records; 3"
    " abnormal rows in all on seed 0): SP/EB beats look normal in PCA space. On val-auc the"
    " same rows are kept and class-4 recall is 0.97 and 0.90, at least 0.85 on every seed and"
    " fraction: the epoch kept (12-124 on seeds 5-9) comes before the network learns to"
    " rebuild them.",
    "11. The goal is still not met: ROC AUC 0.9948 (goal 0.995) and F1 0.9749 (0.978). The"
    " best-F1 threshold chosen on the test split itself averages F1 0.978 for this model, so"
    " the F1 goal needs a better ranking, not a better threshold.",
]

# What each method is given. No method reads a training label; every one is scored on the
# test split, and its threshold for F1 is the best-F1 point on the labelled validation split.
SEES = {
    "autoencoder": "all training rows (normal + mixed-in abnormal, unlabelled); normal validation"
    " beats for early stopping",
    "trim": "as autoencoder; each batch's worst-reconstructed `trim_fraction` (0.3) is left out of the loss",
    "trim-auto": "as autoencoder; the trimmed share is re-estimated every 5 epochs from the training"
    " errors (two-mode mixture on log MSE)",
    "refit": "as autoencoder; after each of `refit_rounds` fits the rows in the upper error mode"
    " are dropped and the model refitted from scratch on the rest",
    "rda": "as autoencoder; Zhou & Paffenroth's L + S split with an L2,1 penalty on S"
    " (`rda_lambda` median residual norms), alternating every 10 epochs",
    "core": "all training rows, unlabelled, and the labelled validation split as a hyper-parameter"
    " chooser: the candidate row sets are all rows and each cluster of 2- to `core_components`"
    " (4)-component Gaussian mixtures in PCA-10 space, each grown `refit_rounds` (2) times by the"
    " rows a PCA-8 fitted on it puts in its lower error mode; the candidate whose PCA-8 has the"
    " best validation ROC AUC is kept and the autoencoder fitted on it; normal validation beats"
    " for early stopping",
    "pca": "all training rows (unlabelled); 8 components, reconstruction MSE",
    "ocsvm": "all training rows (unlabelled); RBF kernel, gamma 'scale', nu 0.05",
}


@dataclass(frozen=True)
class Scores:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    kept: np.ndarray | None = None  # the training rows a row-selecting method kept
    epochs: int = 0
    kept_epoch: int | None = None  # kept_weights=val-auc: the epoch whose weights were kept


SCALINGS = ("global", "per-point")


@dataclass(frozen=True)
class PointScaler:
    """Study only (``--scaling per-point``): one minimum and maximum per sample position,
    fitted on the training rows. ``training.data.scale`` broadcasts it like the global
    scaler; the artifact contract (``service.artifact.Scaler``) has only the global one, so
    a per-point model could not be exported without changing what the server reads."""

    data_min: np.ndarray
    data_max: np.ndarray

    @classmethod
    def fit(cls, beats: np.ndarray) -> PointScaler:
        low, high = beats.min(axis=0), beats.max(axis=0)
        return cls(low.astype(np.float64), np.maximum(high, low + 1e-6).astype(np.float64))


def _autoencoder(config: TrainingConfig, prepared: Any) -> Scores:
    from .model import reconstruction_errors
    from .pipeline import train

    trained = train(config, prepared)
    val, test = prepared.validation, prepared.test
    pool = prepared.pool
    return Scores(
        train=reconstruction_errors(trained.model, scale(pool.beats[prepared.train_rows], prepared.scaler)),
        validation=reconstruction_errors(trained.model, scale(val.beats, prepared.scaler)),
        test=reconstruction_errors(trained.model, scale(test.beats, prepared.scaler)),
        kept=trained.kept,
        epochs=trained.epochs_run,
        kept_epoch=int(trained.history["kept_epoch"][0]) if "kept_epoch" in trained.history else None,
    )


def _baseline(name: str, prepared: Any) -> Scores:
    train = scale(prepared.pool.beats[prepared.train_rows], prepared.scaler)
    parts = [
        train,
        scale(prepared.validation.beats, prepared.scaler),
        scale(prepared.test.beats, prepared.scaler),
    ]
    score: Callable[[np.ndarray], np.ndarray]
    if name == "pca":
        pca = PCA(n_components=8).fit(train)
        score = lambda x: ((x - pca.inverse_transform(pca.transform(x))) ** 2).mean(axis=1)  # noqa: E731
    else:
        svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.05).fit(train)
        score = lambda x: -svm.decision_function(x)  # noqa: E731
    train_s, val_s, test_s = (np.asarray(score(x), dtype=np.float64) for x in parts)
    return Scores(train_s, val_s, test_s)


def _rates(metrics: Any) -> dict[str, float]:
    return {"f1": metrics.f1, "precision": metrics.precision, "recall": metrics.recall}


def run_cell(
    base: TrainingConfig, pool: Dataset, method: str, fraction: float, seed: int, scaling: str = "global"
) -> dict[str, Any]:
    """One method on one split; labels are read here, for scoring only, never by the method."""
    from . import threshold as thresholds
    from .evaluate import evaluate, ranking_metrics
    from .pipeline import prepare

    started = time.time()
    robust = method in ROBUST
    update: dict[str, Any] = {"abnormal_fraction": fraction, "seed": seed, "verbose": 0, "robust": robust}
    if robust:
        update["robust_method"] = method
    config = base.model_copy(update=update)
    prepared = prepare(config, pool)
    if scaling == "per-point":
        point = PointScaler.fit(pool.beats[prepared.train_rows])
        prepared = dataclasses.replace(prepared, scaler=cast(Scaler, point))
    scores = _baseline(method, prepared) if method in ("pca", "ocsvm") else _autoencoder(config, prepared)
    val, test = prepared.validation, prepared.test
    chosen = thresholds.best_f1(scores.validation, val.is_abnormal)
    at_val = evaluate(scores.test, test.classes, chosen)
    oracle = evaluate(scores.test, test.classes, thresholds.best_f1(scores.test, test.is_abnormal))
    record: dict[str, Any] = {
        "method": method,
        "fraction": fraction,
        "seed": seed,
        "validation_roc_auc": ranking_metrics(scores.validation, val.classes)["roc_auc"],
        "roc_auc": at_val.roc_auc,
        "average_precision": at_val.average_precision,
        **_rates(at_val),
        "recall_by_class": at_val.recall_by_class,
        "oracle": _rates(oracle),
        "epochs": scores.epochs,
        **({"kept_epoch": scores.kept_epoch} if scores.kept_epoch is not None else {}),
    }
    if method not in ("pca", "ocsvm"):  # the network's full settings, so a label is never ambiguous
        record["config"] = {**network_settings(config), "scaling": scaling}
    if method != "ocsvm":  # auto needs positive errors; the SVM's score is a signed distance
        estimate = contamination.estimate(scores.train)
        record["auto"] = {
            "estimated_share": estimate.share,
            "true_share": float(pool.is_abnormal[prepared.train_rows].mean()),
            **_rates(evaluate(scores.test, test.classes, estimate.cut)),
        }
    if scores.kept is not None:
        abnormal = pool.is_abnormal[prepared.train_rows].astype(bool)
        classes = pool.classes[prepared.train_rows][scores.kept]
        slipped, counts = np.unique(classes[classes != NORMAL_CLASS], return_counts=True)
        record["kept"] = {
            "share": float(scores.kept.mean()),
            "abnormal_share": float(abnormal[scores.kept].mean()) if scores.kept.any() else 0.0,
            # which anomalies slipped through: a class the model learns to rebuild loses recall
            "abnormal_rows_by_class": {str(c): int(n) for c, n in zip(slipped, counts, strict=True)},
        }
    record["seconds"] = round(time.time() - started, 1)
    return record


def _overrides(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r} is not key=value")
        values[key.replace("-", "_")] = json.loads(text) if text[:1] in "[{0123456789-" else text
    return values


def machine() -> str:
    import keras
    import tensorflow as tf

    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs (TF intra-op threads: {threads}),"
        f" Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" if values else "-"


Cells = dict[tuple[float, str], list[dict[str, Any]]]


def _filled(
    cells: Cells, fractions: list[float], labels: list[str], having: str | None = None
) -> Iterator[tuple[float, str, list[dict[str, Any]]]]:
    """The table rows, fraction by fraction: each (fraction, label) with records (that carry
    ``having``, if given)."""
    for f in fractions:
        for label in labels:
            rs = [r for r in cells.get((f, label), []) if having is None or having in r]
            if rs:
                yield f, label, rs


def render(records: list[dict[str, Any]]) -> str:
    """RESULTS.md from the records: every cell says how many seeds it covers."""
    latest = {(r["label"], r["fraction"], r["seed"]): r for r in records}  # a re-run replaces
    records = list(latest.values())
    cells: Cells = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        cells[(r["fraction"], r["label"])].append(r)
    fractions = sorted({f for f, _ in cells})
    labels = sorted({label for _, label in cells}, key=lambda s: (METHODS.index(s.split(" ")[0]), s))
    lines = [
        "# Contamination experiment: detectors trained on beats that are not all normal",
        "",
        "Generated by `python -m training.experiment` from the records in"
        " `training/results/contamination.jsonl` (one per method, abnormal share and seed); do not"
        " edit by hand. Each seed is its own stratified 60/20/20 split of the pooled ECG5000 data;"
        " the training rows are the split's normal beats plus abnormal ones up to the share (normal"
        " beats subsampled at 50 %). Test split: 1000 beats, 416 abnormal. Values are mean ± std"
        " (min-max) over the seeds listed.",
        "",
        "## What each method sees",
        "",
        "No method reads a training label. A label names the settings that differ from the"
        " reference network: dense [128, 64]-8, batch 64, L2 1e-5, up to 300 epochs, patience 25"
        f" (the default until issue 19 item 4; today's default is labelled `{CLEAN_DEFAULT}`)."
        " F1, precision and"
        " recall are at the best-F1 threshold of the labelled validation split (as `python -m"
        " training` chooses it).",
        "",
        *(f"- `{name}`: {text}." for name, text in SEES.items()),
        "",
        "## Test ROC AUC, AP and F1",
        "",
        "| abnormal in training | method | seeds | ROC AUC | AP | F1 at validation threshold"
        " | validation ROC AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for f, label, rs in _filled(cells, fractions, labels):
        lines.append(
            f"| {f:.0%} | {label} | {','.join(str(r['seed']) for r in rs)} |"
            f" {_fmt([r['roc_auc'] for r in rs])} | {_fmt([r['average_precision'] for r in rs])} |"
            f" {_fmt([r['f1'] for r in rs])} |"
            f" {_mean([r['validation_roc_auc'] for r in rs if 'validation_roc_auc' in r])} |"
        )
    lines += [
        "",
        "## Recall of the rare classes at the validation threshold",
        "",
        "Classes 3 (PVC, 19 test beats) and 4 (SP/EB, 39) are small, so one beat moves recall by"
        " 0.05 or 0.03. Mean over the seeds, and for classes 3 and 4 each seed in the order"
        " listed in the first table. Where F1 is about 0.59 the validation threshold"
        " flags (nearly) every beat, and a recall of 1.000 says nothing.",
        "",
        "| abnormal in training | method | recall class 2 | class 3 (PVC) | class 4 (SP/EB) | class 5 |",
        "|---|---|---|---|---|---|",
    ]
    for f, label, rs in _filled(cells, fractions, labels):
        per = [_mean([r["recall_by_class"].get(c, np.nan) for r in rs]) for c in "2345"]
        for i, c in ((1, "3"), (2, "4")):  # the rare classes: each seed too
            per[i] += " (" + ", ".join(f"{r['recall_by_class'].get(c, np.nan):.2f}" for r in rs) + ")"
        lines.append(f"| {f:.0%} | {label} | " + " | ".join(per) + " |")
    lines += [
        "",
        "## The `auto` threshold (no labels) against the best-F1 threshold on test",
        "",
        "`auto` estimates the anomalous share of the *training* errors with a two-mode mixture"
        " and cuts where a beat becomes likelier anomalous (training/contamination.py). The"
        " reference is the best F1 any threshold reaches on the test split itself (an oracle)."
        " Mean over the seeds.",
        "",
        "| abnormal in training | method | estimated share (true) | auto F1 / P / R"
        " | best-F1 on test F1 / P / R |",
        "|---|---|---|---|---|",
    ]
    for f, label, rs in _filled(cells, fractions, labels, having="auto"):
        a = [r["auto"] for r in rs]
        o = [r["oracle"] for r in rs]
        lines.append(
            f"| {f:.0%} | {label} | {_mean([x['estimated_share'] for x in a])}"
            f" ({_mean([x['true_share'] for x in a])}) |"
            f" {' / '.join(_mean([x[k] for x in a]) for k in ('f1', 'precision', 'recall'))} |"
            f" {' / '.join(_mean([x[k] for x in o]) for k in ('f1', 'precision', 'recall'))} |"
        )
    kept = [
        (f, label)
        for f in fractions
        for label in labels
        if any("kept" in r for r in cells.get((f, label), []))
    ]
    if kept:
        lines += [
            "",
            "## Rows kept by the row-selecting methods",
            "",
            "Share of training rows the final fit learnt from, and the abnormal share among them"
            " (read from the labels after the fact, for this table only). Mean over the seeds.",
            "",
            "| abnormal in training | method | kept share | abnormal among kept |",
            "|---|---|---|---|",
        ]
        for f, label in kept:
            k = [r["kept"] for r in cells[(f, label)] if "kept" in r]
            shares = _mean([x["share"] for x in k]), _mean([x["abnormal_share"] for x in k])
            lines.append(f"| {f:.0%} | {label} | {shares[0]} | {shares[1]} |")
    lines += _targets(cells)
    lines += _clean(cells)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        runs[(r["command"], r["machine"])].append(r)
    lines += [
        "",
        "## Runs",
        "",
        "Each run was pinned to one core (`taskset -c 1`, `TF_NUM_INTRAOP_THREADS=1"
        " TF_NUM_INTEROP_THREADS=1`) of a machine other jobs shared, so wall times are loose.",
        "",
        "| command | cells (method: seeds) | wall time of its cells | machine |",
        "|---|---|---|---|",
    ]
    for (command, where), rs in runs.items():
        by_label: dict[str, set[int]] = defaultdict(set)
        for r in rs:
            by_label[r["label"]].add(r["seed"])
        fracs = ", ".join(f"{f:.0%}" for f in sorted({r["fraction"] for r in rs}))
        what = "; ".join(f"{k}: {sorted(v)}" for k, v in by_label.items())
        lines.append(f"| `{command}` | {what} at {fracs} | {sum(r['seconds'] for r in rs):.0f} s | {where} |")
    lines += [
        "",
        "Anomagram reports AUC ≈ 0.96 clean, ≈ 0.93 at 30 % and ≈ 0.56 at 50 % abnormal"
        " (its 7-3-2 network, its own split).",
        "",
    ]
    return "\n".join(lines)


def _clean(cells: dict[tuple[float, str], list[dict[str, Any]]]) -> list[str]:
    """Issue 19 item 4: the autoencoder variants on clean data, ranked by the screen (mean
    validation ROC AUC on ``SCREEN_SEEDS``), and the goal for the default configuration."""
    clean = {
        label: rs for (f, label), rs in cells.items() if f == 0.0 and label.split(" ")[0] == "autoencoder"
    }
    variants = {
        label: searched
        for label, rs in clean.items()
        if (searched := [r for r in rs if r["seed"] in SEARCH_SEEDS])
    }
    confirmed = {
        label: fresh
        for label, rs in clean.items()
        if (fresh := [r for r in rs if r["seed"] in CONFIRM_SEEDS])
    }
    if not variants:
        return []

    def screen(rs: list[dict[str, Any]]) -> float:
        on = [r["validation_roc_auc"] for r in rs if r["seed"] in SCREEN_SEEDS]
        return float(np.mean(on)) if len(on) == len(SCREEN_SEEDS) else float("nan")

    def rare(rs: list[dict[str, Any]], c: str) -> str:
        return _mean([r["recall_by_class"][c] for r in rs])

    order = sorted(variants, key=lambda label: (-np.nan_to_num(screen(variants[label]), nan=-1.0), label))
    lines = [
        "",
        "## Clean data: autoencoder variants (issue 19, item 4)",
        "",
        "Every variant fitted on clean training beats (0 % abnormal); the label names its settings"
        " that differ from the reference network above or, for `scaling=per-point`, the"
        " study-only scaler of `--scaling`. Screen: the mean *validation* ROC"
        f" AUC on seeds {', '.join(map(str, SCREEN_SEEDS))}; rows are in screen order, and only the"
        " validation columns chose which variants were confirmed on seeds 0-4 and which one became"
        " the candidate for default. Test columns never rank; they gated the two changes of default"
        " (steps 4 and 7). Recall of classes 3 and 4 at"
        " the validation threshold; seconds are the mean wall time of one cell.",
        "",
        *CLEAN_CHOICE,
        "",
        "| variant | seeds | screen: validation ROC AUC, seeds"
        f" {','.join(map(str, SCREEN_SEEDS))} | validation ROC AUC, all its seeds | test ROC AUC | AP"
        " | F1 | recall class 3 | class 4 | s per cell |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in order:
        rs = variants[label]
        lines.append(
            f"| {label} | {','.join(str(r['seed']) for r in rs)} | {screen(rs):.4f} |"
            f" {np.mean([r['validation_roc_auc'] for r in rs]):.4f} |"
            f" {_fmt([r['roc_auc'] for r in rs])} | {_fmt([r['average_precision'] for r in rs])} |"
            f" {_fmt([r['f1'] for r in rs])} | {rare(rs, '3')} | {rare(rs, '4')} |"
            f" {np.mean([r['seconds'] for r in rs]):.0f} |"
        )
    lines += _confirmation(confirmed)
    rs = variants.get(CLEAN_DEFAULT, [])
    lines += [
        "",
        f"### Goal for the default configuration (`{CLEAN_DEFAULT}`) on clean data",
        "",
        "| metric | seeds | mean on test | goal | met |",
        "|---|---|---|---|---|",
    ]
    for key, goal in CLEAN_GOAL.items():
        if rs:
            value = float(np.mean([r[key] for r in rs]))
            met = ("yes" if value >= goal else "no") + ("" if len(rs) >= 5 else " (fewer than 5 seeds)")
            lines.append(
                f"| {key} | {','.join(str(r['seed']) for r in rs)} | {value:.4f} | ≥ {goal} | {met} |"
            )
    return lines


def _confirmation(confirmed: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Seeds no choice looked at: the default and the configuration it replaced, split by split."""
    if not confirmed:
        return []
    seeds = sorted({r["seed"] for rs in confirmed.values() for r in rs})
    lines = [
        "",
        f"### Confirmation on seeds {', '.join(map(str, seeds))} (never used to choose)",
        "",
        "The same protocol on splits that neither the search nor the change of default saw; a"
        " test value per seed, in seed order.",
        "",
        "| variant | seeds | validation ROC AUC | test ROC AUC | per seed | AP | F1"
        " | recall class 3 | class 4 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, rs in sorted(confirmed.items(), key=lambda item: item[0] != CLEAN_DEFAULT):
        per_seed = ", ".join(f"{r['roc_auc']:.4f}" for r in rs)
        lines.append(
            f"| {label} | {','.join(str(r['seed']) for r in rs)} |"
            f" {np.mean([r['validation_roc_auc'] for r in rs]):.4f} | {_fmt([r['roc_auc'] for r in rs])} |"
            f" {per_seed} |"
            f" {_fmt([r['average_precision'] for r in rs])} | {_fmt([r['f1'] for r in rs])} |"
            f" {_mean([r['recall_by_class']['3'] for r in rs])} |"
            f" {_mean([r['recall_by_class']['4'] for r in rs])} |"
        )
    return lines


def _targets(cells: dict[tuple[float, str], list[dict[str, Any]]]) -> list[str]:
    """The issue's targets for the default robust method (``--robust`` with no other flag)."""
    method = label_for(TrainingConfig().robust_method, {})
    lines = [
        "",
        f"## Targets for `--robust` alone (`{method}`)",
        "",
        "| abnormal in training | seeds | mean test ROC AUC | target | met |",
        "|---|---|---|---|---|",
    ]
    for fraction, target in ROBUST_TARGETS.items():
        rs = cells.get((fraction, method), [])
        if rs:
            auc = float(np.mean([r["roc_auc"] for r in rs]))
            seeds = ",".join(str(r["seed"]) for r in rs)
            met = ("yes" if auc >= target else "no") + ("" if len(rs) >= 5 else " (fewer than 5 seeds)")
            lines.append(f"| {fraction:.0%} | {seeds} | {auc:.3f} | ≥ {target} | {met} |")
        else:
            lines.append(f"| {fraction:.0%} | - | not measured with this network | ≥ {target} | - |")
    clean = {r["seed"]: r["roc_auc"] for r in cells.get((0.0, method), [])}
    plain = {r["seed"]: r["roc_auc"] for r in cells.get((0.0, CLEAN_DEFAULT), [])}
    common = sorted(set(clean) & set(plain))
    if common:
        cost = float(np.mean([plain[s] - clean[s] for s in common]))
        seeds = ",".join(map(str, common))
        verdict = ("yes" if cost <= CLEAN_COST else "no") + (
            "" if len(common) >= 5 else " (fewer than 5 seeds)"
        )
        lines.append(
            f"| 0% (AUC lost against the plain autoencoder, same seeds) | {seeds} | {cost:+.4f} |"
            f" ≤ {CLEAN_COST} | {verdict} |"
        )
    return lines


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting (e.g. latent_size=4); the variant is labelled with it",
    )
    parser.add_argument(
        "--scaling",
        choices=SCALINGS,
        default="global",
        help="min-max over all points of the training beats (global, what is exported) or per"
        " sample position (per-point: a study only, the artifact contract has no such scaler)",
    )
    parser.add_argument("--records", type=Path, default=RECORDS, help="JSON lines, appended to")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the Markdown tables")
    parser.add_argument("--render-only", action="store_true", help="rewrite --output from --records")
    args = parser.parse_args(argv)
    if any(not 0 <= f < 1 for f in args.fractions):
        parser.error("fractions must lie in [0, 1)")
    try:
        overrides = _overrides(args.overrides)
        base = TrainingConfig(**{"epochs": args.epochs, **overrides})
    except ValueError as exc:
        parser.error(str(exc))
    if not args.render_only:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        command = " ".join(["python -m training.experiment", *(sys.argv[1:] if argv is None else argv)])
        where = machine()
        pool = load_pool(base.data_files)
        args.records.parent.mkdir(parents=True, exist_ok=True)
        for fraction in args.fractions:
            for seed in args.seeds:
                for method in args.methods:
                    record = run_cell(base, pool, method, fraction, seed, args.scaling)
                    record.update(
                        label=label_for(method, overrides, args.scaling), command=command, machine=where
                    )
                    with open(args.records, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    print(
                        f"{record['label']} abnormal {fraction:.0%} seed {seed}: AUC {record['roc_auc']:.4f}"
                        f" AP {record['average_precision']:.4f} F1 {record['f1']:.4f}"
                        + (
                            f" kept {record['kept']['share']:.2f}/{record['kept']['abnormal_share']:.3f}"
                            if "kept" in record
                            else ""
                        )
                        + f" ({record['seconds']:.0f} s)",
                        flush=True,
                    )
    args.output.write_text(render(read_records(args.records)))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
