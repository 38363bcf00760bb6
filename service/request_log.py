"""Per-request bookkeeping: request id, one JSON log line, and the HTTP metrics."""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time

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


class JsonLines(logging.StreamHandler):
    """The service's log handler: one JSON object per line (``JsonFormatter``).

    ``write`` puts an entry that is already a dict on the same stream, under the same
    lock, without a LogRecord. The access log writes one per request, and building the
    record and walking its attributes cost more than the line itself (~9 us against
    ~2 us); over HTTP that work delays the worker's return to the listener (NOTES,
    section 13)."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self.setFormatter(JsonFormatter())

    def write(self, entry: dict) -> None:
        line = orjson.dumps(entry, default=str).decode() + self.terminator
        try:
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self.stream.write(line)
                self.stream.flush()
        except Exception:  # as emit() does: a broken log stream never fails a request
            self.handleError(logging.makeLogRecord({"name": entry.get("logger"), "msg": entry.get("msg")}))


def configure_logging(level: str) -> JsonLines:
    handler = JsonLines()
    root = logging.getLogger("service")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    return handler


class AccessLog:
    """The access log: one line per answered request (logger ``service.access``, level
    info), the same JSON as every other line, written through ``JsonLines.write`` while
    that handler is the service's; through ``logging`` if someone replaced it."""

    def __init__(self, handler: JsonLines | None) -> None:
        self._handler = handler
        self._service = logging.getLogger("service")

    def write(self, fields: dict) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        handler = self._handler
        if handler is None or handler not in self._service.handlers:
            access_log.info("request", extra=fields)
            return
        ts, pid = round(time.time(), 3), os.getpid()
        handler.write(
            {"ts": ts, "level": "info", "logger": access_log.name, "pid": pid, "msg": "request", **fields}
        )


def init_app(app: Flask, metrics: ServiceMetrics, handler: JsonLines | None = None) -> None:
    log = AccessLog(handler)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = incoming if incoming and _VALID_ID.match(incoming) else secrets.token_hex(16)

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
        response.call_on_close(lambda: log.write(fields))
        return response
