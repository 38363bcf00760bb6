"""The dense autoencoder, its optimizers and regularizers, and robust (trimmed) training."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

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


def _optimizer(config: TrainingConfig) -> keras.optimizers.Optimizer:
    lr = config.learning_rate
    return {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamax": lambda: keras.optimizers.Adamax(lr),
        "adadelta": lambda: keras.optimizers.Adadelta(lr),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
        "momentum": lambda: keras.optimizers.SGD(lr, momentum=0.9),
        "sgd": lambda: keras.optimizers.SGD(lr),
    }[config.optimizer]()


def build_autoencoder(config: TrainingConfig) -> keras.Model:
    """Encoder ``hidden_layers -> latent``, mirrored decoder, sigmoid output in [0, 1]
    (inputs are min-max scaled, so the output range matches the target's)."""
    dense = {"activation": config.activation, "kernel_regularizer": _regularizer(config)}
    inputs = keras.Input(shape=(INPUT_LENGTH,), name="scaled_beats")
    x = inputs
    for i, size in enumerate(config.hidden_layers):
        x = keras.layers.Dense(size, name=f"encoder_{i}", **dense)(x)
    x = keras.layers.Dense(config.latent_size, name="latent", **dense)(x)
    for i, size in enumerate(reversed(config.hidden_layers)):
        x = keras.layers.Dense(size, name=f"decoder_{i}", **dense)(x)
    outputs = keras.layers.Dense(INPUT_LENGTH, activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="ecg_autoencoder")


def trimmed_mse(trim_fraction: float):
    """Mean squared error over the best-reconstructed ``1 - trim_fraction`` of each batch.

    The beats an autoencoder reconstructs worst are the likeliest anomalies; leaving them
    out of the gradient keeps contamination from teaching the model to reconstruct them
    (a trimmed-loss take on robust autoencoders, Zhou & Paffenroth, KDD 2017).
    """
    keep = 1.0 - trim_fraction

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        per_beat = tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)
        n = tf.cast(tf.shape(per_beat)[0], tf.float32)
        k = tf.maximum(1, tf.cast(tf.math.ceil(keep * n), tf.int32))
        smallest = -tf.math.top_k(-per_beat, k=k, sorted=False).values
        return tf.reduce_mean(smallest)

    loss.__name__ = f"trimmed_mse_{trim_fraction:g}"
    return loss


@dataclass
class TrainedModel:
    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int


def fit(config: TrainingConfig, train_scaled: np.ndarray, validation_scaled: np.ndarray) -> TrainedModel:
    """Fit on training beats; validation beats (normal ones) drive early stopping."""
    keras.utils.set_random_seed(config.seed)
    model = build_autoencoder(config)
    loss = trimmed_mse(config.trim_fraction) if config.robust else "mse"
    model.compile(optimizer=_optimizer(config), loss=loss)
    callbacks = []
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
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
    return TrainedModel(model, history, len(history.get("loss", [])))
