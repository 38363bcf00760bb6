"""The limit: scoring in one process, no HTTP. Run by the harness as a subprocess.

For each batch size it times, one call after another on one thread (TensorFlow's and ONNX
Runtime's default thread pools, i.e. both CPUs):

- ``tf signature``: the SavedModel's serving signature called directly, the canonical way
  (``tf.saved_model.load(path).signatures[name](beats=...)``, outputs to numpy);
- ``litert signature``: the version's LiteRT copy (``model.tflite``) through
  ``service.runtimes.LiteRTScorer``, what ``ECG_RUNTIME=litert`` serves (one thread, as
  a worker gives it by default);
- ``onnx signature``: the same model converted by tf2onnx, one ONNX Runtime session run
  (a reference: the project chose LiteRT, ``benchmarks/RUNTIMES.md``);
- ``tf scorer``: the source tree's own ``service.runtimes.SignatureScorer``;
- ``path``: the whole request path without HTTP, from the JSON body's bytes to the
  response's bytes: ``parse_predict_request`` + ``Predictor.predict`` + ``predict_body`` +
  ``orjson.dumps``, exactly what ``/predict`` does between Flask's input and output, with
  the SavedModel (``tf``), LiteRT (``litert``) or ONNX Runtime (``onnx``) inside the predictor;
- ``v2path``: the same for ``/v2/models/<name>/infer`` with binary tensors in and out:
  ``parse_infer_request`` + ``Predictor.predict`` + ``encode_infer_response``.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _time(fn, seconds: float, min_calls: int = 5) -> dict:
    fn()  # one untimed call
    times = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
        if len(times) >= min_calls and time.perf_counter() >= end:
            break
    times.sort()
    n = len(times)
    total = sum(times) / 1e9
    return {
        "calls": n,
        "calls_per_s": n / total,
        "p50_ms": times[n // 2] / 1e6,
        "p99_ms": times[min(n - 1, int(n * 0.99))] / 1e6,
    }


def request_path(max_beats: int):
    """body bytes -> response bytes, as ``service.api.predict`` does it: its codec's two
    functions around the predictor."""
    import numpy as np

    from service.predict_codec import encode_predict_response, parse_predict_request

    def run(body, predictor, metadata):
        parsed = parse_predict_request(body, max_beats)
        scores = predictor.predict(np.asarray(parsed.beats, dtype=np.float32), parsed.threshold)
        return encode_predict_response(scores, metadata, parsed.return_reconstruction)

    return run


def v2_request_path(max_beats: int):
    """body bytes -> response bytes, as ``service.v2_api.infer`` does it."""
    from service import inference_protocol as v2

    def run(body, predictor, metadata):
        request = v2.parse_infer_request(body.data, body.headers[v2.HEADER_LENGTH], max_beats)
        scores = predictor.predict(request.beats, request.threshold)
        return v2.encode_infer_response(scores, request, metadata.model_name, metadata.version)[0]

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--batches", default="1,32,256")
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from benchmarks.common import beat_rows, model_path, predict_body, request_body
    from benchmarks.servers.onnx_predictor import OnnxScorer
    from service.artifact import RUNTIME_LITERT, Artifact, read_metadata, runtime_file
    from service.predictor import Predictor
    from service.runtimes import LiteRTScorer, SignatureScorer

    path = model_path()
    meta = read_metadata(path)
    batches = [int(b) for b in args.batches.split(",")]
    bodies = {b: predict_body(b) for b in batches}
    arrays = {b: np.asarray(beat_rows(b), dtype=np.float32) for b in batches}
    run_path = request_path(max_beats=max(1024, *batches))
    run_v2 = v2_request_path(max_beats=max(1024, *batches))
    v2_bodies = {b: request_body("v2-binary", b) for b in batches}

    t0 = time.perf_counter()
    load_s = {}
    started = time.perf_counter()
    loaded = tf.saved_model.load(str(path))  # the canonical way: the signature, called eagerly
    signature = loaded.signatures[meta.signature_name]

    def eager(x):
        return {k: v.numpy() for k, v in signature(beats=tf.constant(x)).items()}

    load_s["eager_signature"] = time.perf_counter() - started
    started = time.perf_counter()
    tf_scorer = SignatureScorer(path, meta.signature_name)
    tf_predictor = Predictor(meta, tf_scorer)
    tf_predictor.warm_up()
    load_s["tf_predictor"] = time.perf_counter() - started
    started = time.perf_counter()
    onnx_scorer = OnnxScorer(path, meta.signature_name)
    onnx_predictor = Predictor(meta, onnx_scorer)  # our scoring path around another runtime
    onnx_predictor.warm_up()
    load_s["onnx_predictor"] = time.perf_counter() - started
    started = time.perf_counter()
    litert_file = runtime_file(Artifact(path, meta), RUNTIME_LITERT)
    assert litert_file is not None  # runtime_file raises for a version without a checked copy
    litert_scorer = LiteRTScorer(litert_file, meta.signature_name)
    litert_predictor = Predictor(meta, litert_scorer)
    litert_predictor.warm_up()
    load_s["litert_predictor"] = time.perf_counter() - started

    big = arrays[max(batches)]
    ref, a = eager(big), tf_scorer(big)

    def versus(copy) -> dict:
        return {
            "beats_compared": len(big),
            "max_abs_diff_mse": float(np.max(np.abs(ref["mse"] - copy.mse))),
            "max_abs_diff_point_errors": float(np.max(np.abs(ref["point_errors"] - copy.point_errors))),
            "same_flags": bool(
                np.array_equal(ref["mse"] > meta.threshold.value, copy.mse > meta.threshold.value)
            ),
            "scorer_vs_eager_max_abs_diff_mse": float(np.max(np.abs(ref["mse"] - a.mse))),
        }

    checks = {"onnx_vs_tf": versus(onnx_scorer(big)), "litert_vs_tf": versus(litert_scorer(big))}

    items: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("tf", "scorer", tf_scorer),
        ("tf", "signature", eager),
        ("litert", "signature", litert_scorer),
        ("onnx", "signature", onnx_scorer),
    ]
    predictors = {"tf": tf_predictor, "litert": litert_predictor, "onnx": onnx_predictor}
    for kind, run in (("path", run_path), ("v2path", run_v2)):
        for backend, predictor in predictors.items():
            items.append((backend, kind, partial(run, predictor=predictor, metadata=meta)))
    results = []
    for batch in batches:
        for backend, kind, fn in items:  # interleaved, so that all see the same machine
            inputs: dict[str, dict[int, Any]] = {"path": bodies, "v2path": v2_bodies}
            arg = inputs.get(kind, arrays)[batch]
            r = _time(lambda fn=fn, arg=arg: fn(arg), args.seconds)
            r.update(backend=backend, kind=kind, batch=batch, beats_per_s=r["calls_per_s"] * batch)
            results.append(r)

    json.dump(
        {
            "results": results,
            "load_seconds": load_s,
            **checks,
            "tf_threads": {
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            },
            "wall_seconds": time.perf_counter() - t0,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
