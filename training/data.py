"""ECG5000 loading, validation, pooling and the stratified train/validation/test split."""

from __future__ import annotations

import gzip
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from service.artifact import ABNORMAL_CLASSES, INPUT_LENGTH, NORMAL_CLASS, REPO_ROOT, Scaler

DATA_DIR = REPO_ROOT / "data"
DEFAULT_FILES = ("ECG5000_TRAIN.tsv.gz", "ECG5000_TEST.tsv.gz")
KNOWN_CLASSES = (NORMAL_CLASS, *ABNORMAL_CLASSES)


class DataFileError(ValueError):
    """A data file cannot be read or a row breaks the format; names the file and line."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = path, line, problem


@dataclass(frozen=True)
class Dataset:
    """Beats in raw units (float32, n x 140) and their classes (1 normal, 2-5 abnormal)."""

    beats: np.ndarray
    classes: np.ndarray

    @property
    def is_abnormal(self) -> np.ndarray:
        return (self.classes != NORMAL_CLASS).astype(np.int8)

    def take(self, indices: np.ndarray) -> Dataset:
        return Dataset(self.beats[indices], self.classes[indices])

    def __len__(self) -> int:
        return len(self.classes)


def _parse_line(path: Path, number: int, line: str) -> tuple[int, list[float]]:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != INPUT_LENGTH + 1:
        raise DataFileError(
            path, number, f"expected 1 class + {INPUT_LENGTH} values, found {len(fields)} fields"
        )
    try:
        label = float(fields[0])
    except ValueError:
        raise DataFileError(path, number, f"class {fields[0]!r} is not a number") from None
    if not label.is_integer() or int(label) not in KNOWN_CLASSES:
        raise DataFileError(path, number, f"unknown class {fields[0]!r} (known: 1-5)")
    values = []
    for column, text in enumerate(fields[1:], start=1):
        try:
            value = float(text)
        except ValueError:
            raise DataFileError(path, number, f"value {column} is not a number: {text!r}") from None
        if not math.isfinite(value):
            raise DataFileError(path, number, f"value {column} is not finite: {text!r}")
        values.append(value)
    return int(label), values


def load_file(path: Path) -> Dataset:
    """Read one UCR TSV file (plain or gzipped), rejecting any malformed row."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    labels: list[int] = []
    rows: list[list[float]] = []
    try:
        with opener(path, "rt", encoding="ascii", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                label, values = _parse_line(path, number, line)
                labels.append(label)
                rows.append(values)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFileError(path, None, f"cannot read: {exc}") from exc
    if not rows:
        raise DataFileError(path, None, "no rows")
    return Dataset(np.asarray(rows, dtype=np.float32), np.asarray(labels, dtype=np.int64))


def load_pool(files: list[Path]) -> Dataset:
    """Concatenate files in the given order (UCR TRAIN rows first, then TEST rows)."""
    parts = [load_file(f) for f in files]
    return Dataset(np.concatenate([p.beats for p in parts]), np.concatenate([p.classes for p in parts]))


def sha256_files(files: list[Path]) -> dict[str, str]:
    return {Path(f).name: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def stratified_split(
    classes: np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> SplitIndices:
    """Split row indices of the pool, stratified by class, reproducibly for a seed."""
    indices = np.arange(len(classes))
    rest, test = train_test_split(indices, test_size=test_fraction, stratify=classes, random_state=seed)
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1.0 - test_fraction),
        stratify=classes[rest],
        random_state=seed + 1,
    )
    return SplitIndices(np.sort(train), np.sort(validation), np.sort(test))


def training_rows(classes: np.ndarray, train: np.ndarray, abnormal_fraction: float, seed: int) -> np.ndarray:
    """Rows the autoencoder is fitted on: the normal beats of the train split, plus abnormal
    beats of the same split so that they make up ``abnormal_fraction`` of the result
    (Anomagram's contamination experiment). When the split holds too few abnormal beats,
    normal beats are subsampled instead, so the fraction is always met."""
    if not 0.0 <= abnormal_fraction < 1.0:
        raise ValueError("abnormal_fraction must be in [0, 1)")
    normal = train[classes[train] == NORMAL_CLASS]
    if abnormal_fraction == 0.0:
        return normal
    rng = np.random.default_rng(seed)
    abnormal = train[classes[train] != NORMAL_CLASS]
    wanted = round(abnormal_fraction / (1.0 - abnormal_fraction) * len(normal))
    if wanted > len(abnormal):
        n_normal = round(len(abnormal) * (1.0 - abnormal_fraction) / abnormal_fraction)
        normal = rng.choice(normal, size=n_normal, replace=False)
        wanted = len(abnormal)
    chosen = rng.choice(abnormal, size=wanted, replace=False)
    return np.sort(np.concatenate([normal, chosen]))


def fit_scaler(beats: np.ndarray) -> Scaler:
    """Global min-max over the rows given; callers pass the training rows only."""
    return Scaler(data_min=float(beats.min()), data_max=float(beats.max()))


def scale(beats: np.ndarray, scaler: Scaler) -> np.ndarray:
    span = scaler.data_max - scaler.data_min
    return ((beats - scaler.data_min) / span).astype(np.float32)
