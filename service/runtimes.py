"""The runtimes that run a version's serving signature: one numpy function each.

Only the signature call differs between them; scaling bounds, thresholds, out-of-range
flags, errors, metrics and both APIs are the same code (``service/predictor.py``).

- ``tensorflow``: the SavedModel (``SignatureScorer``).
- ``litert``: the version's LiteRT copy (``model.tflite``), converted from the SavedModel
  by TensorFlow's own converter and checked against it at export; run by
  ``ai-edge-litert``'s interpreter, which needs no TensorFlow.

Each runtime is imported only when a worker loads a model, never in the gunicorn master.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .artifact import (
    OUTPUT_MSE,
    OUTPUT_POINT_ERRORS,
    OUTPUT_RECONSTRUCTION,
    RUNTIME_LITERT,
    SIGNATURE_INPUT,
    Artifact,
    ArtifactError,
    runtime_file,
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


class Scorer(Protocol):
    """The serving signature: raw beats ``(n, 140)`` in, its three outputs out."""

    def __call__(self, beats: np.ndarray) -> SignatureOutputs: ...


class LiteRTScorer:
    """The LiteRT copy's signature, through the interpreter's signature runner (which
    resizes the input to each batch). The interpreter is not thread-safe: calls take a
    lock, which a sync worker never contends for."""

    def __init__(self, file: Path, signature_name: str, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(file), num_threads=max(1, threads))
            self._run = interpreter.get_signature_runner(signature_name)
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"cannot load the LiteRT copy {file.name}: {exc}") from exc
        self._interpreter = interpreter  # the runner needs it alive
        self._lock = threading.Lock()

    def __call__(self, beats: np.ndarray) -> SignatureOutputs:
        with self._lock:
            out = self._run(**{SIGNATURE_INPUT: np.ascontiguousarray(beats, dtype=np.float32)})
        return SignatureOutputs(
            reconstruction=out[OUTPUT_RECONSTRUCTION],
            point_errors=out[OUTPUT_POINT_ERRORS],
            mse=out[OUTPUT_MSE],
        )


def open_scorer(artifact: Artifact, runtime: str, intra_op_threads: int = 0, onednn: bool = False) -> Scorer:
    """The signature of ``artifact`` on ``runtime``; an ArtifactError if the version has
    no checked copy for it."""
    file = runtime_file(artifact, runtime)
    name = artifact.metadata.signature_name
    if runtime == RUNTIME_LITERT and file is not None:
        return LiteRTScorer(file, name, intra_op_threads)
    return SignatureScorer(artifact.path, name, intra_op_threads, onednn)
