"""Offline training job: ECG5000 -> evaluated, versioned SavedModel."""
