"""Scoring: numpy in, numpy out, through the SavedModel's serving signature.

One signature call per batch does the scaling, the reconstruction and the errors inside
the graph, so the server scores exactly as the training job evaluated (the training job
scores its splits through :class:`SignatureScorer` too). Never ``keras.Model.predict``:
it rebuilds a data pipeline on every call and costs milliseconds per request.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import (
    INPUT_LENGTH,
    OUTPUT_MSE,
    OUTPUT_POINT_ERRORS,
    OUTPUT_RECONSTRUCTION,
    SIGNATURE_INPUT,
    ArtifactError,
    Metadata,
)


@dataclass(frozen=True)
class SignatureOutputs:
    reconstruction: np.ndarray  # raw units, (n, 140)
    point_errors: np.ndarray  # squared error in scaled space, (n, 140)
    mse: np.ndarray  # mean of point_errors per beat, (n,)


class SignatureScorer:
    """The SavedModel's serving signature as a numpy function.

    The signature's graph is loaded into a session (``tf.compat.v1``) and compiled once
    into a callable for exactly this feed and these fetches: the same graph, ops and
    weights as ``tf.saved_model.load(path).signatures[name]``, without the eager call
    machinery around every call (argument binding, structured outputs, tensor
    conversions), which cost several times the model itself at small batches. Every op
    runs in the calling thread (``inter_op_parallelism_threads=-1``), so a request never
    waits for one of TensorFlow's pool threads to wake up.
    """

    _OUTPUTS = (OUTPUT_RECONSTRUCTION, OUTPUT_POINT_ERRORS, OUTPUT_MSE)

    def __init__(
        self, path: Path, signature_name: str, intra_op_threads: int = 0, onednn: bool = False
    ) -> None:
        if "tensorflow" not in sys.modules:
            # TensorFlow reads this once, at import. oneDNN's kernels pay a fixed cost per
            # op that dwarfs this model's matmuls (batch 1: ~31 us a call against ~14 us);
            # in a process that imported TensorFlow already (the training job) it stays as is.
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
        import tensorflow as tf  # imported here: the gunicorn master must never load TF

        graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads,  # 0: TensorFlow's default (all CPUs)
            inter_op_parallelism_threads=-1,  # negative: run every op in the caller's thread
        )
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        tf_log = tf.get_logger()
        level = tf_log.level
        tf_log.setLevel("ERROR")  # the v1 loader's deprecation notice is not for us
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.load(self._session, [tf.saved_model.SERVING], str(path))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"cannot load the SavedModel in {path}: {exc}") from exc
        finally:
            tf_log.setLevel(level)
        try:
            signature = meta_graph.signature_def[signature_name]
        except KeyError:
            raise ArtifactError(f"{path} has no signature {signature_name!r}") from None
        missing = [n for n in (SIGNATURE_INPUT,) if n not in signature.inputs]
        missing += [n for n in self._OUTPUTS if n not in signature.outputs]
        if missing:
            raise ArtifactError(f"signature {signature_name!r} of {path} lacks {missing}")
        feed = signature.inputs[SIGNATURE_INPUT].name
        fetch = [signature.outputs[n].name for n in self._OUTPUTS]
        compile_callable = getattr(self._session, "_make_callable_from_options", None)
        if compile_callable is not None:
            # Session::MakeCallable: feeds and fetches resolved once, in C++ (~30 us a call
            # at batch 1, against ~100 us for Session.make_callable's Python feed handling)
            from tensorflow.core.protobuf.config_pb2 import CallableOptions

            self._run = compile_callable(CallableOptions(feed=[feed], fetch=fetch))
        else:  # a TensorFlow without it: the public, slower path
            self._run = self._session.make_callable(fetch, feed_list=[feed])

    def __call__(self, beats: np.ndarray) -> SignatureOutputs:
        reconstruction, point_errors, mse = self._run(np.ascontiguousarray(beats, dtype=np.float32))
        return SignatureOutputs(reconstruction=reconstruction, point_errors=point_errors, mse=mse)


@dataclass(frozen=True)
class Scores:
    mse: np.ndarray  # (n,) float32
    is_anomaly: np.ndarray  # (n,) bool
    point_errors: np.ndarray  # (n, 140) float32
    out_of_range: np.ndarray  # (n,) bool
    reconstruction: np.ndarray  # (n, 140) float32, raw units
    threshold: float


class Predictor:
    """A model version ready to score: signature, scaler bounds and threshold."""

    def __init__(
        self, path: Path, metadata: Metadata, intra_op_threads: int = 0, onednn: bool = False
    ) -> None:
        self.metadata = metadata
        self.threshold = metadata.threshold.value
        self._low = np.float32(metadata.scaler.data_min)
        self._high = np.float32(metadata.scaler.data_max)
        self._scorer = SignatureScorer(path, metadata.signature_name, intra_op_threads, onednn)

    def warm_up(self) -> None:
        """One real call, so that graph tracing and thread-pool start-up happen before the
        first request rather than during it."""
        span = self._high - self._low
        self.predict(np.full((2, INPUT_LENGTH), self._low + span / 2, dtype=np.float32))

    def predict(self, beats: np.ndarray, threshold: float | None = None) -> Scores:
        beats = np.asarray(beats, dtype=np.float32)
        if beats.ndim != 2 or beats.shape[1] != INPUT_LENGTH:
            raise ValueError(f"beats must have shape (n, {INPUT_LENGTH}), got {beats.shape}")
        limit = self.threshold if threshold is None else threshold
        out = self._scorer(beats)
        out_of_range = np.any((beats < self._low) | (beats > self._high), axis=1)
        return Scores(
            mse=out.mse,
            is_anomaly=out.mse > limit,
            point_errors=out.point_errors,
            out_of_range=out_of_range,
            reconstruction=out.reconstruction,
            threshold=float(limit),
        )
