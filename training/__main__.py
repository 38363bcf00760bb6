"""``python -m training``: train, evaluate and export one model version."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from .config import (
    Activation,
    Architecture,
    KeptWeights,
    Optimizer,
    Regularizer,
    RobustMethod,
    TrainingConfig,
    load_toml,
)

_FIELDS = TrainingConfig.model_fields


def _help(name: str) -> str:
    field = _FIELDS[name]
    default = field.get_default(call_default_factory=True)
    text = field.description or ""
    return f"{text} (default: {default})" if text else f"default: {default}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train an autoencoder on normal ECG5000 beats, choose an anomaly "
        "threshold on the validation split, evaluate on the test split and publish "
        "saved_models/<model-name>/<version>/.",
    )
    p.add_argument("--config", type=Path, help="TOML file with the same settings ([training] table)")
    p.add_argument("--model-name", help=_help("model_name"))
    p.add_argument("--output-dir", type=Path, help=_help("output_dir"))
    p.add_argument("--version", type=int, help=_help("version"))
    p.add_argument("--data-files", type=Path, nargs="+", help="pooled in order: TRAIN then TEST")
    p.add_argument("--seed", type=int, help=_help("seed"))
    p.add_argument("--validation-fraction", type=float, help=_help("validation_fraction"))
    p.add_argument("--test-fraction", type=float, help=_help("test_fraction"))
    p.add_argument("--architecture", choices=get_args(Architecture), help=_help("architecture"))
    p.add_argument("--hidden-layers", type=int, nargs="+", help=_help("hidden_layers"))
    p.add_argument("--conv-filters", type=int, nargs="+", help=_help("conv_filters"))
    p.add_argument("--conv-kernel", type=int, help=_help("conv_kernel"))
    p.add_argument("--latent-size", type=int, help=_help("latent_size"))
    p.add_argument("--activation", choices=get_args(Activation), help=_help("activation"))
    p.add_argument(
        "--optimizer",
        choices=get_args(Optimizer),
        help=_help("optimizer"),
    )
    p.add_argument("--learning-rate", type=float, help=_help("learning_rate"))
    p.add_argument("--regularizer", choices=get_args(Regularizer), help=_help("regularizer"))
    p.add_argument("--regularization-rate", type=float, help=_help("regularization_rate"))
    p.add_argument("--epochs", type=int, help=_help("epochs"))
    p.add_argument("--batch-size", type=int, help=_help("batch_size"))
    p.add_argument("--early-stopping-patience", type=int, help=_help("early_stopping_patience"))
    p.add_argument("--kept-weights", choices=get_args(KeptWeights), help=_help("kept_weights"))
    p.add_argument("--input-noise", type=float, help=_help("input_noise"))
    p.add_argument("--ensemble-size", type=int, help=_help("ensemble_size"))
    p.add_argument(
        "--abnormal-fraction",
        type=float,
        help="share of abnormal beats mixed into the training set (default: 0)",
    )
    p.add_argument(
        "--robust",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="training that resists contaminated training data, by --robust-method (default: off)",
    )
    p.add_argument("--robust-method", choices=get_args(RobustMethod), help=_help("robust_method"))
    p.add_argument("--trim-fraction", type=float, help=_help("trim_fraction"))
    p.add_argument("--refit-rounds", type=int, help=_help("refit_rounds"))
    p.add_argument("--rda-lambda", type=float, help=_help("rda_lambda"))
    p.add_argument("--core-components", type=int, help=_help("core_components"))
    p.add_argument(
        "--threshold",
        help="best-f1 | best-accuracy (labelled validation beats) | percentile:P | mean-std:K"
        " (training errors) | contamination:R (validation errors, known anomaly ratio) | auto"
        " (training errors, anomaly ratio estimated from them; no labels) (default: best-f1)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainingConfig:
    values: dict[str, Any] = {}
    if args.config:
        try:
            values.update(load_toml(args.config))
        except (OSError, ValueError) as exc:
            parser.error(f"--config {args.config}: {exc}")
    for key, value in vars(args).items():
        if key in _FIELDS and value is not None:
            values[key] = value
    if args.quiet:
        values["verbose"] = 0
    elif "verbose" not in values:
        values["verbose"] = 2 if not sys.stdout.isatty() else 1
    try:
        return TrainingConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        parser.error(problems)
        raise  # unreachable: parser.error exits


def summary(result) -> str:
    m = result.metadata.metrics
    t = result.metadata.threshold
    cm = m.confusion_matrix
    kept = result.metadata.history.get("kept_epoch")
    epochs = f"{result.trained.epochs_run}" + (
        f" (weights of epoch {int(kept[0])}: best validation ROC AUC)" if kept else ""
    )
    return "\n".join(
        [
            f"model      {result.metadata.model_name} version {result.metadata.version}",
            f"written to {result.path}",
            f"report     {result.report}",
            f"epochs     {epochs}",
            f"threshold  {t.value:.6g} ({t.strategy}"
            + (f":{t.parameter:g}" if t.parameter is not None else "")
            + f", on {t.chosen_on})",
            f"test       {m.n_test} beats, {m.n_abnormal} abnormal",
            f"ROC AUC    {m.roc_auc:.4f}   AP {m.average_precision:.4f}",
            f"precision  {m.precision:.4f}   recall {m.recall:.4f}   F1 {m.f1:.4f}",
            f"accuracy   {m.accuracy:.4f}   FPR {m.fpr:.4f}   FNR {m.fnr:.4f}",
            f"confusion  tn {cm.tn}  fp {cm.fp}  fn {cm.fn}  tp {cm.tp}",
            "recall/class " + "  ".join(f"{c}: {r:.3f}" for c, r in m.recall_by_class.items()),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from service.artifact import ArtifactError

    from .data import DataFileError
    from .pipeline import run  # heavy (TensorFlow): only after the arguments are valid

    try:
        result = run(config)
    except (DataFileError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
