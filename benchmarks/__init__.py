"""Side-by-side serving benchmark for the ECG autoencoder: ``python -m benchmarks``.

Everything it compares lives here: the in-process limit, a no-op floor on the same
gunicorn + Flask setup, our server (TensorFlow and ONNX Runtime), a naive Keras server and
BentoML. It writes ``benchmarks/RESULTS.md``; ``--smoke`` is a tiny run for CI.
"""
