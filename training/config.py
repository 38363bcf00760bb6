"""The training job's settings: one typed object, filled from a TOML file and CLI flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.artifact import BUNDLED_MODEL_DIR, INPUT_LENGTH, validate_model_name

from .data import DATA_DIR, DEFAULT_FILES

Optimizer = Literal["adam", "adamax", "adadelta", "rmsprop", "momentum", "sgd"]
Regularizer = Literal["none", "l1", "l2", "l1l2"]
Activation = Literal["relu", "elu", "selu", "tanh", "sigmoid", "gelu", "swish"]
RobustMethod = Literal["trim", "trim-auto", "refit", "rda", "core"]
Architecture = Literal["dense", "conv"]
KeptWeights = Literal["val-loss", "val-auc"]
THRESHOLD_STRATEGIES = ("best-f1", "best-accuracy", "percentile", "mean-std", "contamination", "auto")
LABELLED_THRESHOLDS = ("best-f1", "best-accuracy")  # chosen on the labelled validation split


def _max_conv_stages() -> int:
    stages = 0
    while INPUT_LENGTH % 2 ** (stages + 1) == 0:
        stages += 1
    return stages


class ThresholdSpec(BaseModel):
    """``best-f1``, ``best-accuracy``, ``percentile:P``, ``mean-std:K`` or ``contamination:R``."""

    model_config = ConfigDict(frozen=True)
    strategy: str
    parameter: float | None = None

    @classmethod
    def parse(cls, text: str) -> ThresholdSpec:
        name, _, arg = text.partition(":")
        name = name.strip()
        if name not in THRESHOLD_STRATEGIES:
            raise ValueError(
                f"unknown threshold strategy {name!r}; choose one of {', '.join(THRESHOLD_STRATEGIES)}"
            )
        needs_arg = name in ("percentile", "mean-std", "contamination")
        if needs_arg != bool(arg):
            form = f"{name}:<number>" if needs_arg else name
            raise ValueError(f"threshold strategy {name!r} is written {form!r}")
        if not needs_arg:
            return cls(strategy=name)
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"threshold parameter {arg!r} is not a number") from None
        if name == "percentile" and not 0 < value < 100:
            raise ValueError("percentile:P needs 0 < P < 100")
        if name == "contamination" and not 0 < value < 1:
            raise ValueError("contamination:R needs 0 < R < 1")
        if name == "mean-std" and not value > 0:
            raise ValueError("mean-std:K needs K > 0")
        return cls(strategy=name, parameter=value)

    def __str__(self) -> str:
        return self.strategy if self.parameter is None else f"{self.strategy}:{self.parameter:g}"


class TrainingConfig(BaseModel):
    """Every knob of a training run; recorded in full in the exported metadata."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model_name: str = "ecg-autoencoder"
    output_dir: Path = BUNDLED_MODEL_DIR
    version: int | None = Field(None, ge=1, description="default: one past the newest")
    data_files: list[Path] = Field(default_factory=lambda: [DATA_DIR / f for f in DEFAULT_FILES])
    seed: int = 42
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    architecture: Architecture = Field(
        "dense",
        description="dense: Dense hidden_layers -> latent, mirrored; conv: 1-D convolutions"
        " (conv_filters, each halving the length) -> Dense latent, mirrored (hidden_layers unused)",
    )
    hidden_layers: list[int] = Field(default_factory=lambda: [128, 64])
    conv_filters: list[int] = Field(
        default_factory=lambda: [16, 32], description="conv: filters of each stride-2 Conv1D stage"
    )
    conv_kernel: int = Field(7, ge=1, description="conv: kernel size of every Conv1D")
    latent_size: int = Field(16, ge=1)
    activation: Activation = "relu"
    optimizer: Optimizer = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    regularizer: Regularizer = "l2"
    regularization_rate: float = Field(1e-5, ge=0)
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    early_stopping_patience: int = Field(25, ge=0, description="0 disables early stopping")
    kept_weights: KeptWeights = Field(
        "val-auc",
        description="the epoch whose weights are exported: val-auc, the highest ROC AUC on the"
        " labelled validation split; val-loss, the lowest reconstruction loss on normal"
        " validation beats. Unset, val-auc when the threshold is chosen on labelled beats"
        " (best-f1, best-accuracy) and val-loss otherwise: a threshold that needs no labelled"
        " anomalies gets a fit that needs none either",
    )
    input_noise: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="denoising: std of Gaussian noise added to the scaled inputs while fitting"
        " (the target stays the clean beat; serving never adds it); 0 is off",
    )
    ensemble_size: int = Field(
        1, ge=1, le=10, description="autoencoders (seeds seed..seed+N-1) averaged in one exported model"
    )
    abnormal_fraction: float = Field(0.0, ge=0, lt=1)
    robust: bool = False
    robust_method: RobustMethod = Field(
        "core", description="robust mode: how contaminated rows are kept out (training/robust.py)"
    )
    trim_fraction: float = Field(
        0.3, gt=0, lt=1, description="robust trim: share of each batch's worst beats ignored"
    )
    refit_rounds: int = Field(
        2, ge=1, description="robust refit/core: rounds of fit, drop the estimated anomalies, refit"
    )
    rda_lambda: float = Field(1.5, gt=0, description="robust rda: L2,1 shrinkage, in median residual norms")
    core_components: int = Field(
        4, ge=2, description="robust core: mixtures of 2 to this many clusters give the candidate rows"
    )
    threshold: str = "best-f1"
    verbose: int = Field(1, ge=0, le=2)

    @field_validator("model_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_model_name(value)

    @field_validator("hidden_layers")
    @classmethod
    def _layers(cls, value: list[int]) -> list[int]:
        if any(size < 1 for size in value):
            raise ValueError("hidden layer sizes must be positive")
        return value

    @field_validator("conv_filters")
    @classmethod
    def _filters(cls, value: list[int]) -> list[int]:
        if not value or any(size < 1 for size in value):
            raise ValueError("conv_filters must be one or more positive sizes")
        if INPUT_LENGTH % 2 ** len(value):
            raise ValueError(
                f"{len(value)} stride-2 stages do not divide the beat length {INPUT_LENGTH}"
                f" (at most {_max_conv_stages()})"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: str) -> str:
        return str(ThresholdSpec.parse(value))

    @model_validator(mode="before")
    @classmethod
    def _kept_weights_follow_the_threshold(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kept_weights") is None:
            strategy = str(data.get("threshold", "best-f1")).partition(":")[0].strip()
            data = {**data, "kept_weights": "val-auc" if strategy in LABELLED_THRESHOLDS else "val-loss"}
        return data

    @model_validator(mode="after")
    def _fractions(self) -> TrainingConfig:
        if self.validation_fraction + self.test_fraction >= 0.8:
            raise ValueError("validation_fraction + test_fraction must leave room for training")
        return self

    @property
    def threshold_spec(self) -> ThresholdSpec:
        return ThresholdSpec.parse(self.threshold)

    def recorded(self) -> dict[str, Any]:
        """The configuration as written to metadata.json (paths relative to the repo)."""
        data = self.model_dump(mode="json", exclude={"verbose", "output_dir", "version"})
        data["data_files"] = [Path(f).name for f in self.data_files]
        return data


def load_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    return {key.replace("-", "_"): value for key, value in data.get("training", data).items()}
