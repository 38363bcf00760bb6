"""Anomaly detection on ECG heartbeats: post beats, get each beat's reconstruction MSE
from a dense autoencoder, its anomaly flag and its per-point reconstruction errors."""

__version__ = "0.2.0"  # the one place: pyproject.toml reads it, /v2 reports it
