"""The dense autoencoder, its optimizers and regularizers, the trimmed loss, and one fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from service.artifact import INPUT_LENGTH

from .config import TrainingConfig


def _regularizer(config: TrainingConfig) -> keras.regularizers.Regularizer | None:
    rate = config.regularization_rate
    return {
        "none": None,
        "l1": keras.regularizers.L1(rate),
        "l2": keras.regularizers.L2(rate),
        "l1l2": keras.regularizers.L1L2(l1=rate, l2=rate),
    }[config.regularizer]


def optimizer_for(config: TrainingConfig) -> keras.optimizers.Optimizer:
    lr = config.learning_rate
    return {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamax": lambda: keras.optimizers.Adamax(lr),
        "adadelta": lambda: keras.optimizers.Adadelta(lr),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
        "momentum": lambda: keras.optimizers.SGD(lr, momentum=0.9),
        "sgd": lambda: keras.optimizers.SGD(lr),
    }[config.optimizer]()


def _noisy(config: TrainingConfig, inputs: keras.KerasTensor) -> keras.KerasTensor:
    """A denoising autoencoder's corruption: active only while fitting, so the exported
    signature (called with ``training=False``) reconstructs the beat it is given."""
    if not config.input_noise:
        return inputs
    return keras.layers.GaussianNoise(config.input_noise, seed=config.seed, name="input_noise")(inputs)


def build_autoencoder(config: TrainingConfig) -> keras.Model:
    """Encoder ``hidden_layers -> latent``, mirrored decoder, sigmoid output in [0, 1]
    (inputs are min-max scaled, so the output range matches the target's). With
    ``architecture="conv"``, the 1-D convolutional autoencoder of ``build_conv_autoencoder``."""
    if config.architecture == "conv":
        return build_conv_autoencoder(config)
    dense = {"activation": config.activation, "kernel_regularizer": _regularizer(config)}
    inputs = keras.Input(shape=(INPUT_LENGTH,), name="scaled_beats")
    x = _noisy(config, inputs)
    for i, size in enumerate(config.hidden_layers):
        x = keras.layers.Dense(size, name=f"encoder_{i}", **dense)(x)
    x = keras.layers.Dense(config.latent_size, name="latent", **dense)(x)
    for i, size in enumerate(reversed(config.hidden_layers)):
        x = keras.layers.Dense(size, name=f"decoder_{i}", **dense)(x)
    outputs = keras.layers.Dense(INPUT_LENGTH, activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="ecg_autoencoder")


def build_conv_autoencoder(config: TrainingConfig) -> keras.Model:
    """Beats (n, 140) in and out, like the dense model: a stride-2 ``Conv1D`` per entry of
    ``conv_filters`` (140 -> 70 -> 35 with two), flattened into a Dense latent of
    ``latent_size``; the decoder mirrors it with ``UpSampling1D`` + ``Conv1D`` (no
    transposed convolutions) and ends in a sigmoid ``Conv1D`` with one filter."""
    layer = {"activation": config.activation, "kernel_regularizer": _regularizer(config)}
    conv = {**layer, "kernel_size": config.conv_kernel, "padding": "same"}
    inputs = keras.Input(shape=(INPUT_LENGTH,), name="scaled_beats")
    x = keras.layers.Reshape((INPUT_LENGTH, 1), name="as_sequence")(_noisy(config, inputs))
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv1D(filters, strides=2, name=f"encoder_{i}", **conv)(x)
    length = INPUT_LENGTH // 2 ** len(config.conv_filters)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.latent_size, name="latent", **layer)(x)
    x = keras.layers.Dense(length * config.conv_filters[-1], name="expand", **layer)(x)
    x = keras.layers.Reshape((length, config.conv_filters[-1]), name="unflatten")(x)
    for i, filters in enumerate(reversed(config.conv_filters)):
        x = keras.layers.UpSampling1D(2, name=f"upsample_{i}")(x)
        x = keras.layers.Conv1D(filters, name=f"decoder_{i}", **conv)(x)
    x = keras.layers.Conv1D(1, config.conv_kernel, padding="same", activation="sigmoid", name="output")(x)
    outputs = keras.layers.Reshape((INPUT_LENGTH,), name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="ecg_conv_autoencoder")


def trimmed_mse(trim_fraction: float | tf.Variable) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Mean squared error over the best-reconstructed ``1 - trim_fraction`` of each batch.

    The beats an autoencoder reconstructs worst are the likeliest anomalies; leaving them
    out of the gradient keeps contamination from teaching the model to reconstruct them
    (a trimmed-loss take on robust autoencoders, Zhou & Paffenroth, KDD 2017). A
    ``tf.Variable`` lets a callback move the fraction during training.
    """

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        per_beat = tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)
        n = tf.cast(tf.shape(per_beat)[0], tf.float32)
        keep = 1.0 - tf.cast(trim_fraction, tf.float32)  # read per batch: it may move
        k = tf.maximum(1, tf.cast(tf.math.ceil(keep * n), tf.int32))
        smallest = -tf.math.top_k(-per_beat, k=k, sorted=False).values
        return tf.reduce_mean(smallest)

    loss.__name__ = "trimmed_mse"
    return loss


Selection = tuple[np.ndarray, np.ndarray]  # scaled validation beats (all classes), is-abnormal


def validation_auc(model: keras.Model, selection: Selection) -> float:
    """How well the model's reconstruction errors rank the labelled validation beats."""
    beats, is_abnormal = selection
    return float(roc_auc_score(is_abnormal, reconstruction_errors(model, beats)))


class BestValidationAUC(keras.callbacks.Callback):
    """Keeps the weights of the epoch whose reconstruction errors rank the labelled
    validation beats best (``kept_weights="val-auc"``): the epoch count chosen as a
    hyper-parameter, on the split that already chooses the threshold."""

    def __init__(self, selection: Selection) -> None:
        super().__init__()
        self.selection = selection
        self.best, self.best_epoch = -np.inf, -1
        self.best_weights: list[np.ndarray] | None = None
        self.trace: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        auc = validation_auc(self.model, self.selection)
        self.trace.append(auc)
        if auc > self.best:
            self.best, self.best_epoch, self.best_weights = auc, epoch, self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


@dataclass
class TrainedModel:
    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int
    kept: np.ndarray | None = None  # robust row selection: the training rows the model learnt from


def reconstruction_errors(model: keras.Model, scaled: np.ndarray) -> np.ndarray:
    """Per-beat MSE in the scaled space, as the exported signature computes it."""
    rebuilt = model(scaled, training=False).numpy()  # eager: no retracing when called per epoch
    return np.asarray(((scaled - rebuilt) ** 2).mean(axis=1), dtype=np.float64)


def fit(
    config: TrainingConfig,
    train_scaled: np.ndarray,
    validation_scaled: np.ndarray,
    loss: str | Callable[[tf.Tensor, tf.Tensor], tf.Tensor] = "mse",
    callbacks: list[keras.callbacks.Callback] | None = None,
    selection: Selection | None = None,
) -> TrainedModel:
    """Fit on training beats; validation beats (normal ones) drive early stopping and, under
    ``kept_weights="val-loss"``, which epoch's weights are kept; under ``"val-auc"`` the
    labelled ``selection`` chooses the epoch. Robust training passes its own loss or
    callbacks (training/robust.py)."""
    keras.utils.set_random_seed(config.seed)
    model = build_autoencoder(config)
    model.compile(optimizer=optimizer_for(config), loss=loss)
    callbacks = list(callbacks or [])
    by_auc = None
    if config.kept_weights == "val-auc":
        if selection is None:
            raise ValueError("kept_weights 'val-auc' needs the labelled validation beats")
        by_auc = BestValidationAUC(selection)
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=by_auc is None,
            )
        )
    if by_auc is not None:
        callbacks.append(by_auc)
    result = model.fit(
        train_scaled,
        train_scaled,
        validation_data=(validation_scaled, validation_scaled),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=config.verbose,
    )
    history = {k: [float(v) for v in vs] for k, vs in result.history.items()}
    if by_auc is not None:
        history["val_roc_auc"] = by_auc.trace
        history["kept_epoch"] = [float(by_auc.best_epoch + 1)]
    return TrainedModel(model, history, len(history.get("loss", [])))


def average(members: list[TrainedModel]) -> TrainedModel:
    """One Keras model whose reconstruction is the mean of the members': exported as one
    signature, so the serving contract is that of a single autoencoder."""
    inputs = keras.Input(shape=(INPUT_LENGTH,), name="scaled_beats")
    outputs = [
        keras.Model(m.model.input, m.model.output, name=f"member_{i}")(inputs) for i, m in enumerate(members)
    ]
    model = keras.Model(inputs, keras.layers.Average(name="reconstruction")(outputs), name="ecg_ensemble")
    history = {f"member_{i}_{k}": v for i, m in enumerate(members) for k, v in m.history.items()}
    return TrainedModel(model, history, max(m.epochs_run for m in members), kept=members[0].kept)
