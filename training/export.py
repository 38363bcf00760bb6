"""Writing a model version: the SavedModel with its serving signature, then an atomic publish.

A version is assembled in a hidden sibling folder (``.tmp-<version>-<random>``) and
renamed into place as the very last step. ``rename`` within one filesystem is atomic, so a
reader (``service.artifact.list_versions`` ignores non-integer folders) sees either no
version or a complete one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from service.artifact import (
    INPUT_LENGTH,
    METADATA_FILE,
    OUTPUT_MSE,
    OUTPUT_POINT_ERRORS,
    OUTPUT_RECONSTRUCTION,
    SIGNATURE_INPUT,
    SIGNATURE_NAME,
    ArtifactError,
    Metadata,
    Scaler,
    list_versions,
    version_dir,
)


def save_serving_model(model: keras.Model, scaler: Scaler, path: Path) -> None:
    """Export one signature: raw beats in; reconstruction (raw units), per-point squared
    error and per-beat MSE (both in the scaled space the model was trained in) out."""
    low = tf.constant(scaler.data_min, tf.float32)
    span = tf.constant(scaler.data_max - scaler.data_min, tf.float32)

    def serve(beats: tf.Tensor) -> dict[str, tf.Tensor]:
        scaled = (beats - low) / span
        reconstructed = model(scaled, training=False)
        point_errors = tf.square(scaled - reconstructed)
        return {
            OUTPUT_RECONSTRUCTION: reconstructed * span + low,
            OUTPUT_POINT_ERRORS: point_errors,
            OUTPUT_MSE: tf.reduce_mean(point_errors, axis=1),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=serve,
        input_signature=[tf.TensorSpec([None, INPUT_LENGTH], tf.float32, name=SIGNATURE_INPUT)],
    )
    archive.write_out(str(path), verbose=False)


def next_version(root: Path, model_name: str) -> int:
    versions = list_versions(root, model_name)
    return versions[-1] + 1 if versions else 1


@contextlib.contextmanager
def staging_dir(root: Path, model_name: str, version: int) -> Iterator[Path]:
    """A private folder to assemble ``version`` in; removed if anything fails."""
    base = Path(root) / model_name
    base.mkdir(parents=True, exist_ok=True)
    if version_dir(root, model_name, version).exists():
        raise ArtifactError(f"{version_dir(root, model_name, version)} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_metadata(staging: Path, metadata: Metadata) -> None:
    (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n")


def publish(staging: Path, root: Path, metadata: Metadata) -> Path:
    """Make the staged version visible in one atomic rename."""
    target = version_dir(root, metadata.model_name, metadata.version)
    for file in staging.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    staging.chmod(0o755)  # mkdtemp makes it 0700; a published version is world-readable
    try:
        os.rename(staging, target)  # fails rather than merging if the target appeared
    except OSError as exc:
        raise ArtifactError(f"cannot publish {target}: {exc.strerror}") from exc
    return target
