"""Anomaly detection on ECG heartbeats: post beats, get each beat's reconstruction MSE
from a dense autoencoder, its anomaly flag and its per-point reconstruction errors."""
