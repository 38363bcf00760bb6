"""The model server: Flask app, gunicorn workers, Prometheus metrics."""
