"""The artifact contract shared by the training job (writer) and the server (reader).

Everything both sides must agree on lives here and nowhere else: the on-disk layout
(``<root>/<model-name>/<integer version>/``), the serving signature's name, input and
outputs, the input length, and the typed ``metadata.json`` schema. This module must stay
importable without TensorFlow so that the gunicorn master can validate an artifact
before forking workers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The repository's root: the bundled models and the ECG5000 copy live below it, and both
# the server's and the training job's defaults point there.
REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL_DIR = REPO_ROOT / "saved_models"
SCHEMA_VERSION: Final = 1
INPUT_LENGTH: Final = 140
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"
SIGNATURE_NAME = "serving_default"
SIGNATURE_INPUT = "beats"
OUTPUT_RECONSTRUCTION = "reconstruction"
OUTPUT_POINT_ERRORS = "point_errors"
OUTPUT_MSE = "mse"
SIGNATURE_OUTPUTS = (OUTPUT_RECONSTRUCTION, OUTPUT_POINT_ERRORS, OUTPUT_MSE)
# The runtimes a version can be served on: TensorFlow from the SavedModel (always), or
# LiteRT from the portable copy the export checks against the SavedModel's signature.
RUNTIME_TENSORFLOW: Final = "tensorflow"
RUNTIME_LITERT: Final = "litert"
Runtime = Literal["tensorflow", "litert"]
LITERT_FILE = "model.tflite"
# Most a portable copy may differ from the signature in MSE and per-point error (scaled
# space) on the validation beats; off by more, the version is not published.
MAX_RUNTIME_DIFFERENCE: Final = 1e-6
NORMAL_CLASS = 1
ABNORMAL_CLASSES = (2, 3, 4, 5)
CLASS_NAMES = {
    1: "normal",
    2: "R-on-T premature ventricular contraction",
    3: "premature ventricular contraction",
    4: "supraventricular premature or ectopic beat",
    5: "unclassified beat",
}
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaler(_Frozen):
    """Min-max scaling fitted on the training split: ``scaled = (raw - data_min) / (data_max - data_min)``.

    One global minimum and maximum over all points of all training beats, so that a beat's
    shape (not each point's range) is what the autoencoder learns.
    """

    kind: Literal["minmax-global"] = "minmax-global"
    data_min: float
    data_max: float
    fitted_on: Literal["train"] = "train"

    @model_validator(mode="after")
    def _positive_range(self) -> Scaler:
        if not self.data_max > self.data_min:
            raise ValueError("data_max must be greater than data_min")
        return self


class Threshold(_Frozen):
    """A beat is anomalous when its MSE is strictly greater than ``value``."""

    value: float = Field(gt=0)
    strategy: str
    parameter: float | None = None
    chosen_on: Literal["train", "validation"]


class ConfusionMatrix(_Frozen):
    tn: int
    fp: int
    fn: int
    tp: int


class TestMetrics(_Frozen):
    """Scores on the held-out test split; "positive" means abnormal (class 2-5)."""

    roc_auc: float
    average_precision: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    fpr: float
    fnr: float
    confusion_matrix: ConfusionMatrix
    recall_by_class: dict[str, float]
    n_test: int
    n_abnormal: int


class Split(_Frozen):
    """How the pooled data (UCR TRAIN rows, then TEST rows) was split.

    Indices are 0-based row numbers into that pool, so anyone can recompute every metric.
    """

    seed: int
    fractions: dict[str, float]
    pool_files: list[str]
    pool_size: int
    train_indices: list[int]
    validation_indices: list[int]
    test_indices: list[int]
    abnormal_fraction_in_training: float


class TrainingRows(_Frozen):
    """How many of the training rows (``Split.train_indices``) the fit learnt from.

    A robust fit that selects rows (``refit``, ``core``, ``rda``) keeps fewer than it was
    offered; every other fit keeps them all (``trim`` drops each batch's worst beats from the
    loss but selects no rows). An ensemble records its first member's selection.
    """

    rows_offered: int = Field(ge=1)
    rows_kept: int = Field(ge=0)
    share_kept: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> TrainingRows:
        if self.rows_kept > self.rows_offered:
            raise ValueError("rows_kept cannot exceed rows_offered")
        return self


class PortableCopy(_Frozen):
    """A copy of the serving signature for a runtime without TensorFlow, and how well it
    agreed with the SavedModel on the validation beats before the version was published."""

    runtime: Literal["litert"]
    file: str
    sha256: str
    converter: str
    converter_version: str
    interpreter_version: str
    checked_beats: int = Field(ge=1)
    max_abs_diff: dict[str, float]  # per signature output
    same_flags: bool


class Metadata(_Frozen):
    """The typed ``metadata.json`` written next to every exported SavedModel."""

    schema_version: Literal[1] = SCHEMA_VERSION
    model_name: str
    version: int = Field(ge=1)
    created_at: datetime
    input_length: Literal[140] = INPUT_LENGTH
    signature_name: str = SIGNATURE_NAME
    signature_input: str = SIGNATURE_INPUT
    signature_outputs: list[str] = Field(default_factory=lambda: list(SIGNATURE_OUTPUTS))
    error_space: Literal["scaled"] = "scaled"
    scaler: Scaler
    threshold: Threshold
    training_config: dict[str, Any]
    data_sha256: dict[str, str]
    metrics: TestMetrics
    validation_metrics: dict[str, float]
    split: Split
    history: dict[str, list[float]]
    versions: dict[str, str]
    portable: list[PortableCopy] = Field(default_factory=list)  # empty: TensorFlow only
    training: TrainingRows | None = None  # None: written before this field existed

    def portable_copy(self, runtime: str) -> PortableCopy | None:
        return next((c for c in self.portable if c.runtime == runtime), None)

    @field_validator("model_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_model_name(value)


class ArtifactError(Exception):
    """The artifact on disk is missing or does not satisfy the contract."""


def validate_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def version_dir(root: Path, model_name: str, version: int) -> Path:
    return Path(root) / model_name / str(version)


def list_versions(root: Path, model_name: str) -> list[int]:
    """Published versions, ascending. Only integer folders count: temporary export folders
    (``.tmp-*``) are invisible by construction."""
    base = Path(root) / model_name
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


def resolve_version(root: Path, model_name: str, version: int | None) -> Path:
    """The folder of ``version``, or of the newest version when ``version`` is None."""
    versions = list_versions(root, model_name)
    if not versions:
        raise ArtifactError(f"no versions of model {model_name!r} under {Path(root).resolve()}")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise ArtifactError(f"model {model_name!r} has no version {version} (available: {versions})")
    return version_dir(root, model_name, version)


def read_metadata(path: Path) -> Metadata:
    """Read and validate ``metadata.json`` of one version folder."""
    file = Path(path) / METADATA_FILE
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {file}: {exc.strerror}") from exc
    try:
        meta = Metadata.model_validate_json(raw)
    except ValueError as exc:
        raise ArtifactError(f"{file} does not match the metadata schema: {exc}") from exc
    if meta.version != int(Path(path).name) or meta.model_name != Path(path).parent.name:
        raise ArtifactError(f"{file} describes {meta.model_name}/{meta.version}, not the folder it lies in")
    if not (Path(path) / "saved_model.pb").is_file():
        raise ArtifactError(f"{path} has no saved_model.pb")
    return meta


@dataclass(frozen=True)
class Artifact:
    """One published version: its folder and its validated metadata."""

    path: Path
    metadata: Metadata


def open_artifact(root: Path, model_name: str, version: int | None = None) -> Artifact:
    """The version to serve (``version``, or the newest when None), its metadata read and
    checked: the one way the server, its master and its tools find a model."""
    path = resolve_version(root, model_name, version)
    return Artifact(path, read_metadata(path))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def runtime_file(artifact: Artifact, runtime: str) -> Path | None:
    """The file ``runtime`` serves ``artifact`` from (None: TensorFlow, the SavedModel),
    checked: recorded in the metadata, present, and the bytes that were checked."""
    if runtime == RUNTIME_TENSORFLOW:
        return None
    meta = artifact.metadata
    copy = meta.portable_copy(runtime)
    if copy is None:
        raise ArtifactError(
            f"{meta.model_name} version {meta.version} has no {runtime} copy; serve it with"
            f" ECG_RUNTIME=tensorflow, or add one (python -m training.portable {artifact.path})"
        )
    file = artifact.path / copy.file
    try:
        digest = sha256_file(file)
    except OSError as exc:
        raise ArtifactError(f"cannot read {file}: {exc.strerror}") from exc
    if digest != copy.sha256:
        raise ArtifactError(f"{file} is not the file the export checked (sha256 {digest[:12]}...)")
    return file
