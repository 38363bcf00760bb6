"""One training run, in order: load, split, scale, fit, export, score, threshold, the
portable copy (checked against the signature), evaluate, report, publish.

Scores used for the threshold and the metrics come from the exported signature itself
(loaded back from the staging folder), so the reported numbers are those of the artifact
the server will load, not of the in-memory Keras model.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from service.artifact import (
    NORMAL_CLASS,
    REPORT_DIR,
    SIGNATURE_NAME,
    Metadata,
    Scaler,
    Split,
    TrainingRows,
)
from service.runtimes import SignatureScorer

from . import threshold as thresholds
from .config import TrainingConfig
from .data import (
    Dataset,
    SplitIndices,
    fit_scaler,
    load_pool,
    scale,
    sha256_files,
    stratified_split,
    training_rows,
)
from .evaluate import evaluate, ranking_metrics
from .export import next_version, publish, save_serving_model, staging_dir, write_metadata
from .model import TrainedModel, average, fit
from .portable import add_litert_copy
from .report import write_report
from .robust import fit_robust


@dataclass(frozen=True)
class Prepared:
    """The split and the scaler of a run; everything the model may see is derived here."""

    pool: Dataset
    split: SplitIndices
    train_rows: np.ndarray
    scaler: Scaler

    @property
    def validation(self) -> Dataset:
        return self.pool.take(self.split.validation)

    @property
    def test(self) -> Dataset:
        return self.pool.take(self.split.test)

    def selection(self) -> tuple[np.ndarray, np.ndarray]:
        """Scaled validation beats (every class) and their is-abnormal labels: what the
        validation split may choose hyper-parameters with (robust ``core``'s row set)."""
        val = self.validation
        return scale(val.beats, self.scaler), val.is_abnormal

    def fit_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Scaled training beats and scaled *normal* validation beats (for early stopping)."""
        val = self.validation
        return (
            scale(self.pool.beats[self.train_rows], self.scaler),
            scale(val.beats[val.classes == NORMAL_CLASS], self.scaler),
        )


def prepare(config: TrainingConfig, pool: Dataset | None = None) -> Prepared:
    pool = pool if pool is not None else load_pool(config.data_files)
    split = stratified_split(pool.classes, config.validation_fraction, config.test_fraction, config.seed)
    rows = training_rows(pool.classes, split.train, config.abnormal_fraction, config.seed)
    return Prepared(pool, split, rows, fit_scaler(pool.beats[rows]))


def train(config: TrainingConfig, prepared: Prepared) -> TrainedModel:
    """Plain or robust fit; either sees the training beats (no labels) and the normal
    validation beats; robust fits may also let the labelled validation split choose."""
    inputs, selection = prepared.fit_inputs(), prepared.selection()

    def one(member: TrainingConfig) -> TrainedModel:
        if member.robust:
            return fit_robust(member, *inputs, selection=selection)
        return fit(member, *inputs, selection=selection)

    if config.ensemble_size == 1:
        return one(config)
    return average(
        [one(config.model_copy(update={"seed": config.seed + i})) for i in range(config.ensemble_size)]
    )


def rows_used(trained: TrainedModel, offered: int) -> TrainingRows:
    """The training rows the fit learnt from: a robust row selection's, or all of them."""
    kept = offered if trained.kept is None else int(np.count_nonzero(trained.kept))
    return TrainingRows(rows_offered=offered, rows_kept=kept, share_kept=round(kept / offered, 6))


@dataclass(frozen=True)
class RunResult:
    path: Path
    metadata: Metadata
    report: Path
    trained: TrainedModel


def run(config: TrainingConfig) -> RunResult:
    """Train, evaluate and publish one model version."""
    prepared = prepare(config)
    trained = train(config, prepared)
    version = config.version or next_version(config.output_dir, config.model_name)
    with staging_dir(config.output_dir, config.model_name, version) as staging:
        save_serving_model(trained.model, prepared.scaler, staging)
        score = SignatureScorer(staging, SIGNATURE_NAME)
        val, test = prepared.validation, prepared.test
        train_errors = score(prepared.pool.beats[prepared.train_rows]).mse
        val_outputs = score(val.beats)
        val_errors = val_outputs.mse
        test_errors = score(test.beats).mse
        chosen = thresholds.choose(config.threshold_spec, train_errors, val_errors, val.is_abnormal)
        litert = add_litert_copy(staging, val.beats, chosen.value, val_outputs)  # or not published
        metadata = Metadata(
            model_name=config.model_name,
            version=version,
            created_at=datetime.now(UTC),
            scaler=prepared.scaler,
            threshold=chosen,
            training_config=config.recorded(),
            data_sha256=sha256_files(config.data_files),
            metrics=evaluate(test_errors, test.classes, chosen.value),
            validation_metrics=ranking_metrics(val_errors, val.classes),
            split=Split(
                seed=config.seed,
                fractions={
                    "train": round(1 - config.validation_fraction - config.test_fraction, 6),
                    "validation": config.validation_fraction,
                    "test": config.test_fraction,
                },
                pool_files=[Path(f).name for f in config.data_files],
                pool_size=len(prepared.pool),
                train_indices=prepared.train_rows.tolist(),
                validation_indices=prepared.split.validation.tolist(),
                test_indices=prepared.split.test.tolist(),
                abnormal_fraction_in_training=float(prepared.pool.is_abnormal[prepared.train_rows].mean()),
            ),
            history=trained.history,
            versions={
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            portable=[litert],
            training=rows_used(trained, len(prepared.train_rows)),
        )
        write_metadata(staging, metadata)
        report = write_report(staging / REPORT_DIR, metadata, test_errors, test.classes)
        path = publish(staging, config.output_dir, metadata)
    return RunResult(path, metadata, path / REPORT_DIR / report.name, trained)
