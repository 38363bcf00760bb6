"""Robust training: fitting the autoencoder when some training beats are not normal.

Each method sees the scaled training beats and the scaled *normal validation* beats (for
early stopping, as plain training does); ``core`` also lets the labelled validation split
choose among candidate row sets. None reads a training label. They differ
in how they keep the anomalies among the training rows from being learnt:

``trim``       each batch's worst-reconstructed ``trim_fraction`` is left out of the loss.
``trim-auto``  the same, with the fraction re-estimated every few epochs from the training
               errors (training/contamination.py) instead of fixed.
``refit``      fit, drop the rows the error mixture calls anomalous, refit; ``refit_rounds``
               times, then a final fit on the rows kept.
``rda``        Zhou & Paffenroth's robust deep autoencoder (KDD 2017): the data are split
               into ``L + S``, the autoencoder learns ``L``, and ``S`` takes what it cannot
               reconstruct under an L2,1 (row-sparse) penalty, alternating.
``core``       mixtures in PCA space cut the rows into clusters; linear models grow each
               by the rows they reconstruct as well as the cluster; the labelled validation
               split picks one of these row sets (or all rows) by a PCA's ROC AUC, as it
               picks hyper-parameters; the autoencoder then fits the rows picked.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

from . import contamination
from .config import TrainingConfig
from .model import (
    Selection,
    TrainedModel,
    build_autoencoder,
    fit,
    optimizer_for,
    reconstruction_errors,
    trimmed_mse,
    validation_auc,
)

MAX_TRIM = 0.6  # trim-auto never ignores more of a batch than this
MIN_CLUSTER_SHARE = 0.1  # smaller clusters are not candidates for the normal core
CORE_PCA_COMPONENTS = 10  # the space the core mixture is fitted in
GROW_PCA_COMPONENTS = 8  # the linear model that grows the core (PCA's 8 matched the AE's latent size)


def fit_robust(
    config: TrainingConfig, train: np.ndarray, validation: np.ndarray, selection: Selection | None = None
) -> TrainedModel:
    """``validation``: the normal validation beats (early stopping); ``selection``: the
    labelled validation split, for methods whose hyper-parameters it chooses (``core``)."""
    match config.robust_method:
        case "trim":
            return fit(config, train, validation, loss=trimmed_mse(config.trim_fraction), selection=selection)
        case "trim-auto":
            return _trim_auto(config, train, validation, selection)
        case "refit":
            return _refit(config, train, validation, selection)
        case "rda":
            return _rda(config, train, validation, selection)
        case "core":
            return _core(config, train, validation, selection)
    raise ValueError(f"unknown robust method {config.robust_method!r}")


class _TrimEstimator(keras.callbacks.Callback):
    """Sets the trimmed loss's fraction to the contamination the training errors show."""

    def __init__(self, fraction: tf.Variable, train: np.ndarray, every: int = 5) -> None:
        super().__init__()
        self.fraction, self.train, self.every = fraction, train, every
        self.trace: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        share = contamination.estimate(reconstruction_errors(self.model, self.train)).share
        self.fraction.assign(float(np.clip(share, 0.01, MAX_TRIM)))
        self.trace.append(float(self.fraction.numpy()))


def _trim_auto(
    config: TrainingConfig, train: np.ndarray, validation: np.ndarray, selection: Selection | None
) -> TrainedModel:
    fraction = tf.Variable(config.trim_fraction, trainable=False, dtype=tf.float32)
    estimator = _TrimEstimator(fraction, train)
    trained = fit(
        config, train, validation, loss=trimmed_mse(fraction), callbacks=[estimator], selection=selection
    )
    trained.history["trim_fraction"] = estimator.trace
    return trained


def _keep_normal_mode(errors: np.ndarray) -> np.ndarray:
    return errors <= contamination.estimate(errors).cut


def _refit(
    config: TrainingConfig, train: np.ndarray, validation: np.ndarray, selection: Selection | None
) -> TrainedModel:
    kept = np.ones(len(train), dtype=bool)
    history: dict[str, list[float]] = {"kept_share": []}
    for _ in range(config.refit_rounds):
        trained = fit(config, train[kept], validation, selection=selection)
        kept = _keep_normal_mode(reconstruction_errors(trained.model, train))
        history["kept_share"].append(float(kept.mean()))
    trained = fit(config, train[kept], validation, selection=selection)
    trained.history.update(history)
    trained.kept = kept
    return trained


def _pca_errors(fitted_on: np.ndarray, beats: np.ndarray, seed: int) -> np.ndarray:
    pca = PCA(min(GROW_PCA_COMPONENTS, len(fitted_on) - 1), random_state=seed).fit(fitted_on)
    return np.asarray(((beats - pca.inverse_transform(pca.transform(beats))) ** 2).mean(axis=1))


def core_rows(
    train: np.ndarray, selection: Selection, max_components: int, rounds: int, seed: int
) -> np.ndarray:
    """Candidate row sets: every training row, and each cluster (of mixtures with 2 to
    ``max_components`` components in PCA space) grown ``rounds`` times by the rows a PCA
    fitted on it reconstructs within its lower error mode. The candidate whose PCA ranks
    the labelled validation beats best (ROC AUC) wins: a hyper-parameter the validation
    split chooses, as it chooses the threshold. Which cluster is normal is otherwise
    undecidable at 50 %, where the normal beats may split in two and class 2 does not."""
    features = PCA(CORE_PCA_COMPONENTS, random_state=seed).fit_transform(train)
    candidates = [np.ones(len(train), dtype=bool)]
    for k in range(2, max_components + 1):
        mixture = GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed)
        labels = mixture.fit_predict(features)
        for cluster in range(k):
            kept = labels == cluster
            if kept.mean() < MIN_CLUSTER_SHARE:
                continue
            for _ in range(rounds):
                kept = _keep_normal_mode(_pca_errors(train[kept], train, seed))
            candidates.append(kept)
    beats, is_abnormal = selection
    aucs = [roc_auc_score(is_abnormal, _pca_errors(train[kept], beats, seed)) for kept in candidates]
    return candidates[int(np.argmax(aucs))]


def _core(
    config: TrainingConfig, train: np.ndarray, validation: np.ndarray, selection: Selection | None
) -> TrainedModel:
    if selection is None:
        raise ValueError("robust method 'core' needs the labelled validation beats to pick its rows")
    kept = core_rows(train, selection, config.core_components, config.refit_rounds, config.seed)
    trained = fit(config, train[kept], validation, selection=selection)
    trained.kept = kept
    return trained


def _rda(
    config: TrainingConfig, train: np.ndarray, validation: np.ndarray, selection: Selection | None
) -> TrainedModel:
    """Alternate: fit the autoencoder on ``L = X - S`` for a few epochs, then set ``S`` to
    the group soft-threshold of ``X - AE(L)`` (whole beats shrink towards zero residual,
    which is what makes ``S`` row-sparse). Early stopping on normal validation beats; the
    round kept is the one of lowest validation loss or, with ``kept_weights="val-auc"``,
    highest validation ROC AUC."""
    if config.kept_weights == "val-auc" and selection is None:
        raise ValueError("kept_weights 'val-auc' needs the labelled validation beats")
    inner = 10
    keras.utils.set_random_seed(config.seed)
    model = build_autoencoder(config)
    model.compile(optimizer=optimizer_for(config), loss="mse")
    sparse = np.zeros_like(train)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "sparse_rows": []}
    patience = math.ceil(config.early_stopping_patience / inner)  # in rounds; 0 disables
    best, since_best = math.inf, 0
    best_kept, kept_weights = -math.inf, model.get_weights()
    for _ in range(math.ceil(config.epochs / inner)):
        low_rank = train - sparse
        result = model.fit(
            low_rank, low_rank, epochs=inner, batch_size=config.batch_size, shuffle=True, verbose=0
        )
        history["loss"] += [float(v) for v in result.history["loss"]]
        val_loss = float(reconstruction_errors(model, validation).mean())
        history["val_loss"] += [val_loss] * len(result.history["loss"])  # per epoch, as plain fits
        residual = train - model(low_rank, training=False).numpy()
        norms = np.linalg.norm(residual, axis=1)
        lam = config.rda_lambda * float(np.median(norms))
        shrink = np.maximum(0.0, 1.0 - lam / np.maximum(norms, 1e-12))
        sparse = (residual * shrink[:, None]).astype(np.float32)
        history["sparse_rows"].append(float((shrink > 0).mean()))
        kept_score = -val_loss
        if selection is not None and config.kept_weights == "val-auc":
            kept_score = validation_auc(model, selection)
        if kept_score > best_kept:
            best_kept, kept_weights = kept_score, model.get_weights()
        if val_loss < best:
            best, since_best = val_loss, 0
        else:
            since_best += 1
            if patience and since_best >= patience:
                break
    model.set_weights(kept_weights)
    kept = np.linalg.norm(sparse, axis=1) == 0
    return TrainedModel(model, history, len(history["loss"]), kept=kept)
