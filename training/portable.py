"""The portable copy of a version: its serving signature as a LiteRT model, for serving
without TensorFlow (``ECG_RUNTIME=litert``; README, Runtimes).

The copy is converted from the staged SavedModel by TensorFlow's own converter, then run
by the interpreter that serves it (``ai-edge-litert``) on the validation beats and
compared with the signature: MSE and per-point error within ``MAX_RUNTIME_DIFFERENCE``
and the same flags at the chosen threshold, or the version is not published. Why LiteRT
rather than ONNX: ``benchmarks/NOTES.md``, section 12.

``python -m training.portable <version folder>`` adds a checked copy to a version
published without one (the bundled version 1 got its copy this way).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from service.artifact import (
    LITERT_FILE,
    MAX_RUNTIME_DIFFERENCE,
    METADATA_FILE,
    RUNTIME_LITERT,
    SIGNATURE_NAME,
    SIGNATURE_OUTPUTS,
    ArtifactError,
    Metadata,
    PortableCopy,
    read_metadata,
    sha256_file,
)
from service.runtimes import LiteRTScorer, SignatureOutputs, SignatureScorer

CONVERTER = "tensorflow.lite.TFLiteConverter.from_saved_model"


def convert_litert(saved_model: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE_NAME])
    return bytes(converter.convert())


def compare(
    reference: SignatureOutputs, copy: SignatureOutputs, threshold: float
) -> tuple[dict[str, float], bool]:
    """Max |difference| per output, and whether every beat gets the same flag."""
    diffs = {
        name: float(np.max(np.abs(getattr(reference, name).astype(np.float64) - getattr(copy, name))))
        for name in SIGNATURE_OUTPUTS
    }
    return diffs, bool(np.array_equal(reference.mse > threshold, copy.mse > threshold))


def add_litert_copy(
    folder: Path, beats: np.ndarray, threshold: float, reference: SignatureOutputs
) -> PortableCopy:
    """Convert, check on ``beats`` against ``reference`` (the signature's outputs on them)
    and write ``model.tflite`` into ``folder``; an ArtifactError if the copy is off."""
    file = folder / LITERT_FILE
    try:
        file.write_bytes(convert_litert(folder))
    except Exception as exc:  # the converter raises many kinds (ConverterError, ValueError, ...)
        raise ArtifactError(f"TensorFlow could not convert the SavedModel to LiteRT: {exc}") from exc
    copied = LiteRTScorer(file, SIGNATURE_NAME)(beats)
    diffs, same_flags = compare(reference, copied, threshold)
    worst = max(diffs["mse"], diffs["point_errors"])
    if worst > MAX_RUNTIME_DIFFERENCE or not same_flags:
        file.unlink()
        raise ArtifactError(
            f"the LiteRT copy differs from the signature on {len(beats)} validation beats by up to"
            f" {worst:.3g} (limit {MAX_RUNTIME_DIFFERENCE:g}), same flags: {same_flags}; not published"
        )
    import tensorflow as tf

    return PortableCopy(
        runtime=RUNTIME_LITERT,
        file=LITERT_FILE,
        sha256=sha256_file(file),
        converter=CONVERTER,
        converter_version=tf.__version__,
        interpreter_version=f"ai-edge-litert {package_version('ai-edge-litert')}",
        checked_beats=len(beats),
        max_abs_diff=diffs,
        same_flags=same_flags,
    )


def validation_beats(metadata: Metadata, data_dir: Path) -> np.ndarray:
    """The version's validation split, rebuilt from its data files (hashes checked)."""
    from .data import load_pool, sha256_files

    files = [data_dir / name for name in metadata.split.pool_files]
    if sha256_files(files) != {name: metadata.data_sha256[name] for name in metadata.split.pool_files}:
        raise ArtifactError(
            f"the files in {data_dir} are not the ones version {metadata.version} was trained on"
        )
    return load_pool(files).beats[metadata.split.validation_indices]


def upgrade(folder: Path, data_dir: Path) -> PortableCopy:
    """Add a checked LiteRT copy to a published version. The SavedModel is not touched;
    ``model.tflite`` is written first, then ``metadata.json`` is replaced in one rename,
    so a reader sees the old metadata or the new one, never a copy it cannot trust."""
    metadata = read_metadata(folder)
    if metadata.portable_copy(RUNTIME_LITERT) is not None:
        raise ArtifactError(f"{folder} has a LiteRT copy already")
    beats = validation_beats(metadata, data_dir)
    reference = SignatureScorer(folder, metadata.signature_name)(beats)
    copy = add_litert_copy(folder, beats, metadata.threshold.value, reference)
    updated = metadata.model_copy(update={"portable": [*metadata.portable, copy]})
    fd, staged = tempfile.mkstemp(prefix=".metadata-", dir=folder)
    with os.fdopen(fd, "w") as handle:
        handle.write(updated.model_dump_json(indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(staged, 0o644)
    os.replace(staged, folder / METADATA_FILE)
    return copy


def main(argv: list[str] | None = None) -> int:
    from .data import DATA_DIR

    parser = argparse.ArgumentParser(prog="python -m training.portable", description=__doc__)
    parser.add_argument(
        "version_dir", type=Path, help="a published version, e.g. saved_models/ecg-autoencoder/1"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where its data files are")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        copy = upgrade(args.version_dir, args.data_dir)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"added {copy.file} to {args.version_dir}: max |diff| {copy.max_abs_diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
