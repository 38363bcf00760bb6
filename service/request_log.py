"""Per-request bookkeeping: request id, one JSON log line, and the HTTP metrics."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import orjson
from flask import Flask, Response, g, request

from .metrics import ServiceMetrics
from .routing import route_template

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = set(vars(logging.makeLogRecord({})))
access_log = logging.getLogger("service.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("service")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def init_app(app: Flask, metrics: ServiceMetrics) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        req, ctx = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]  # real, undeclared
        elapsed = time.perf_counter() - ctx.get("started", time.perf_counter())
        route = route_template()
        status = response.status_code
        metrics.observe_request(route, req.method, status, elapsed)
        request_id = ctx.get("request_id", "")
        response.headers[REQUEST_ID_HEADER] = request_id
        fields = {
            "method": req.method,
            "path": req.path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "beats": ctx.get("beats", 0),
            "request_id": request_id,
        }
        if "api_key" in ctx:  # the key's fingerprint, never the key
            fields["api_key"] = ctx.api_key
        elif "auth_failure" in ctx:
            fields["auth_failure"] = ctx.auth_failure
        # written once the response is out: the client does not wait for its own log line
        response.call_on_close(lambda: access_log.info("request", extra=fields))
        return response
