"""The served model's own test split, scored: what the explorer page shows.

The beats are rows of the pooled ECG5000 files (``metadata.split.pool_files`` in order,
UCR TRAIN rows first), taken at ``metadata.split.test_indices``, exactly as the training
job built the split (``training/data.py``). The files are read from ``ECG_DATA_DIR`` and
must match the ``data_sha256`` the training run recorded, so the rows are the ones the
indices were drawn from. No scikit-learn or training code here: the serving image has
neither. Scored once per worker on first use and cached as encoded JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from .artifact import CLASS_NAMES, INPUT_LENGTH, Metadata
from .errors import ApiError, Detail
from .predictor import Predictor

log = logging.getLogger("service.test_split")


class TestSplitUnavailable(ApiError):
    """The data files the split indexes are not on this server, or not the same files."""

    __test__ = False  # not a pytest class, whatever its name
    status, code = 404, "test_split_unavailable"


@dataclass(frozen=True)
class SplitBeats:
    rows: np.ndarray  # (n,) row numbers into the pool
    classes: np.ndarray  # (n,) 1-5
    beats: np.ndarray  # (n, 140) float32, raw units


def _read_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One UCR TSV file (gzipped or plain): classes and beats, float32 as training reads them."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="ascii") as handle:
        table = np.loadtxt(handle, delimiter="\t", dtype=np.float64, ndmin=2)
    if table.shape[1] != INPUT_LENGTH + 1:
        raise TestSplitUnavailable(
            f"{path.name} has {table.shape[1]} columns, not 1 class + {INPUT_LENGTH} values",
            [Detail("data", path.name)],
        )
    return table[:, 0].astype(np.int64), table[:, 1:].astype(np.float32)


def load_test_split(data_dir: Path, metadata: Metadata) -> SplitBeats:
    """The test rows of the pool, after checking each file's sha256 against the metadata."""
    split = metadata.split
    classes, beats = [], []
    for name in split.pool_files:
        path = Path(data_dir) / name
        if not path.is_file():
            raise TestSplitUnavailable(
                f"the data file {name} is not in ECG_DATA_DIR on this server",
                [Detail("ECG_DATA_DIR", f"missing {name}")],
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        expected = metadata.data_sha256.get(name)
        if digest != expected:
            raise TestSplitUnavailable(
                f"{name} in ECG_DATA_DIR is not the file model version {metadata.version} was trained on",
                [Detail("ECG_DATA_DIR", f"{name}: sha256 {digest}, expected {expected}")],
            )
        c, b = _read_rows(path)
        classes.append(c)
        beats.append(b)
    pool_classes, pool_beats = np.concatenate(classes), np.concatenate(beats)
    if len(pool_classes) != split.pool_size:
        raise TestSplitUnavailable(
            f"the pool has {len(pool_classes)} rows; the metadata says {split.pool_size}",
            [Detail("data", "pool size")],
        )
    rows = np.asarray(split.test_indices, dtype=np.int64)
    if len(rows) == 0 or rows.min() < 0 or rows.max() >= len(pool_classes):
        raise TestSplitUnavailable(
            f"the metadata's test indices do not fit a pool of {len(pool_classes)} rows",
            [Detail("metadata.split.test_indices", "empty, or outside the pool")],
        )
    return SplitBeats(rows, pool_classes[rows], pool_beats[rows])


def encode(split: SplitBeats, predictor: Predictor, metadata: Metadata) -> tuple[bytes, float]:
    """Score the split in one call and encode it grouped by class; returns the body and
    the seconds scoring took."""
    started = time.perf_counter()
    scores = predictor.predict(split.beats)
    seconds = time.perf_counter() - started
    groups = []
    for cls in sorted(CLASS_NAMES):
        where = np.flatnonzero(split.classes == cls)
        groups.append(
            {
                "class": cls,
                "name": CLASS_NAMES[cls],
                "abnormal": cls != 1,
                "beats": [
                    {
                        "row": int(split.rows[i]),
                        "mse": float(scores.mse[i]),
                        "out_of_range": bool(scores.out_of_range[i]),
                        "values": split.beats[i],
                    }
                    for i in where
                ],
            }
        )
    body = {
        "model_name": metadata.model_name,
        "model_version": metadata.version,
        "threshold": metadata.threshold.value,
        "scaler": metadata.scaler.model_dump(),
        "n": len(split.rows),
        "scored_in_seconds": seconds,
        "classes": groups,
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), seconds


class TestSplitCache:
    """The encoded test split of one worker's model, computed once (the first request
    waits; concurrent first requests wait for the same computation)."""

    __test__ = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._body: bytes | None = None

    def get(self, data_dir: Path, metadata: Metadata, predictor: Predictor) -> bytes:
        with self._lock:
            if self._body is None:
                started = time.perf_counter()
                split = load_test_split(data_dir, metadata)
                loaded = time.perf_counter() - started
                self._body, scored = encode(split, predictor, metadata)
                log.info(
                    "test split ready",
                    extra={
                        "beats": len(split.rows),
                        "load_seconds": round(loaded, 4),
                        "score_seconds": round(scored, 4),
                        "total_seconds": round(time.perf_counter() - started, 4),
                    },
                )
            return self._body
