"""Settings come from ECG_* environment variables and refuse combinations that cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECG_MAX_BEATS", "7")
    monkeypatch.setenv("ECG_REQUEST_TIMEOUT_SECONDS", "2.5")
    settings = Settings()
    assert settings.max_beats == 7 and settings.request_timeout_seconds == 2.5


def test_a_request_deadline_past_the_worker_timeout_is_refused(monkeypatch):
    """gunicorn kills a worker busy for ECG_TIMEOUT_SECONDS: a slow client must be dropped first."""
    monkeypatch.setenv("ECG_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("ECG_REQUEST_TIMEOUT_SECONDS", "10")
    problem = r"ECG_REQUEST_TIMEOUT_SECONDS \(10\) must be under ECG_TIMEOUT_SECONDS"
    with pytest.raises(ValidationError, match=problem):
        Settings()
