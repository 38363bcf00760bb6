"""gunicorn's sync worker with a deadline on every read from and write to a client, and
the API's JSON errors for requests that HTTP parsing refuses.

A sync worker serves one connection at a time. A client that connects and then sends
nothing, half a request line or half a body would hold the worker until gunicorn's
worker timeout kills it (30 s, then a TensorFlow reload): two such clients stop a
two-worker server. With a socket timeout the stalled connection is dropped after
``ECG_CLIENT_TIMEOUT_SECONDS`` of silence, and all reads of one request share a deadline,
``ECG_REQUEST_TIMEOUT_SECONDS``, so a client that trickles a byte now and then is dropped
too, before gunicorn would kill the worker; the worker then serves the next connection.
Such clients still hold a worker for up to that long: in front of untrusted clients, put
a buffering proxy (as gunicorn's docs advise for sync workers).

A request gunicorn cannot parse (a bad request line, an oversized or invalid header, a
broken chunked body) never reaches the app, and gunicorn answers it with an HTML page;
here it gets the same JSON error body as every other refusal, naming what was wrong.

Idle workers wait for a connection on an epoll set that holds the listener with
``EPOLLEXCLUSIVE``: a connection wakes one idle worker, not all of them, and the kernel
keeps waking the same one first. gunicorn's own ``select`` wakes every idle worker, one
wins the ``accept`` and the others go back to sleep; with a client or two at a time the
requests then alternate between workers, each finding its caches cold (NOTES section 10).
Under load the busy workers are not waiting, so the wake-up goes to whichever is idle.

Imported by the gunicorn master: no TensorFlow and no prometheus-client at import (see
``SyncWorker._count``).
"""

from __future__ import annotations

import logging
import os
import select
import time
from http import HTTPStatus

import orjson
from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.workers.sync import SyncWorker as _GunicornSyncWorker

from .errors import (
    ApiError,
    Detail,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    InternalError,
    MalformedHttp,
    UnsupportedTransferCoding,
    UriTooLong,
)

# gunicorn's parse errors -> (the API's error, where in the request); first match wins.
_PARSE_ERRORS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], type[ApiError], str], ...] = (
    (http.LimitRequestLine, UriTooLong, "request_line"),
    (http.LimitRequestHeaders, HeaderFieldsTooLarge, "headers"),
    (http.ExpectationFailed, ExpectationFailed, "headers.Expect"),
    (http.UnsupportedTransferCoding, UnsupportedTransferCoding, "headers.Transfer-Encoding"),
    (http.InvalidRequestMethod, MalformedHttp, "request_line.method"),
    (http.InvalidHTTPVersion, MalformedHttp, "request_line.version"),
    (http.InvalidRequestLine, MalformedHttp, "request_line"),
    ((http.InvalidHeader, http.InvalidHeaderName, http.ObsoleteFolding), MalformedHttp, "headers"),
    ((http.InvalidChunkSize, http.ChunkMissingTerminator, http.InvalidChunkExtension), MalformedHttp, "body"),
    (http.ParseException, MalformedHttp, "request"),
)
_MAX_ECHO = 200  # characters of the client's own bytes repeated in a message


def parse_error(exc: BaseException) -> ApiError | None:
    """The API error for a request gunicorn could not parse; None for anything else."""
    if isinstance(exc, (http.InvalidResponseHeader, http.InvalidResponseHeaderName)):
        return None  # a header the app tried to send: our fault, not the client's
    for kinds, error, where in _PARSE_ERRORS:
        if isinstance(exc, kinds):
            message = str(exc)
            if len(message) > _MAX_ECHO:
                message = message[:_MAX_ECHO] + "..."
            header = getattr(exc, "hdr", None)
            if where == "headers" and isinstance(header, str) and header.isprintable() and len(header) < 64:
                where = f"headers.{header}"
            return error(f"malformed HTTP request: {message}", [Detail(where, message)])
    return None


def raw_response(error: ApiError, inference_protocol: bool = False) -> bytes:
    body = orjson.dumps(error.body(inference_protocol))
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class RequestDeadline:
    """A client socket whose reads all end by one deadline, however the bytes trickle in.

    Only reads: the time spent scoring and answering is the server's, and once the answer
    is out (``disarm``) gunicorn's graceful close keeps its own timeout."""

    __slots__ = ("_deadline", "_per_read", "_sock")

    def __init__(self, sock, per_read_seconds: float, total_seconds: float) -> None:
        self._sock = sock
        self._per_read = per_read_seconds
        self._deadline = time.monotonic() + total_seconds

    def recv(self, size: int, flags: int = 0) -> bytes:
        left = self._deadline - time.monotonic()
        if left >= self._per_read:
            return self._sock.recv(size, flags)
        if left <= 0:
            raise TimeoutError("the request took longer than ECG_REQUEST_TIMEOUT_SECONDS to arrive")
        self._sock.settimeout(left)  # near the deadline: this read may not outlast it
        try:
            return self._sock.recv(size, flags)
        finally:  # the answer is written with the usual per-operation timeout
            self._sock.settimeout(self._per_read)

    def disarm(self) -> None:
        self._deadline = float("inf")

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class QuietClientTimeouts(logging.Filter):
    """gunicorn logs a client that timed out before its request was complete as a socket
    error, with a traceback; the client did it, so it becomes one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "dropped a client that did not send its request in time: %s", (exc,)
            record.exc_info = record.exc_text = None
        return True


def _exclusive_epoll(listeners, pipe: int):
    """An epoll set with each listener registered for exclusive wake-ups and the signal
    pipe for ordinary ones; None where the platform lacks them (then gunicorn's select)."""
    if not hasattr(select, "EPOLLEXCLUSIVE"):
        return None
    poller = select.epoll()
    try:
        for sock in listeners:
            poller.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        poller.register(pipe, select.EPOLLIN)
    except OSError:  # a kernel older than 4.5
        poller.close()
        return None
    return poller


class SyncWorker(_GunicornSyncWorker):
    client_timeout_seconds: float = 5.0  # gunicorn.conf.py sets both from the settings
    request_timeout_seconds: float = 15.0

    def init_process(self) -> None:
        self.log.error_log.addFilter(QuietClientTimeouts())
        super().init_process()

    def run(self) -> None:
        self._epoll = _exclusive_epoll(self.sockets, self.PIPE[0])
        self._by_fd = {s.fileno(): s for s in self.sockets} | {self.PIPE[0]: self.PIPE[0]}
        super().run()

    def wait(self, timeout: float):
        """gunicorn's ``wait`` (what is ready, or None after ``timeout``) on the epoll set."""
        if self._epoll is None:
            return super().wait(timeout)
        self.notify()
        ready = [self._by_fd[fd] for fd, _ in self._epoll.poll(timeout)]
        if self.PIPE[0] in ready:  # a signal's wake-up byte
            os.read(self.PIPE[0], 1)
        return ready or None

    def accept(self, listener) -> None:
        client, addr = listener.accept()
        client.settimeout(self.client_timeout_seconds)
        util.close_on_exec(client)
        deadline = RequestDeadline(client, self.client_timeout_seconds, self.request_timeout_seconds)
        self.handle(listener, deadline, addr)

    def _count(self, error: ApiError, method: str) -> None:
        """Refused by HTTP parsing before the app saw it, so counted here, in the app's
        own metrics, under route ``unparsed``."""
        # imported here, in the worker: prometheus-client fixes its multiprocess mode at
        # import, and the master imports this module before PROMETHEUS_MULTIPROC_DIR is set
        from .metrics import UNPARSED_ROUTE

        state = getattr(self.wsgi, "extensions", {}).get("ecg")
        if state is not None:
            state.metrics.observe_request(UNPARSED_ROUTE, method, error.status, 0.0)

    def handle_request(self, listener, req, client, addr) -> None:
        try:
            super().handle_request(listener, req, client, addr)
        finally:
            client.disarm()

    def handle_error(self, req, client, addr, exc) -> None:
        error = parse_error(exc)
        req = req or getattr(exc, "req", None)
        if error is None:  # not the client's doing, e.g. the worker aborted mid-request
            self.log.exception("error handling request")
            error = InternalError("internal server error")
        else:
            self.log.warning("refused an unparsable request from %s: %s", (addr or ("",))[0], exc)
            self._count(error, getattr(req, "method", None) or "")
        path = getattr(req, "path", None) or ""
        try:
            util.write_nonblock(client, raw_response(error, inference_protocol=path.startswith("/v2")))
        except Exception:  # the client is gone: nothing to tell it
            self.log.debug("could not send the error response")
