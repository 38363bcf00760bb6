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

import contextlib
import errno
import logging
import os
import select
import time
from http import HTTPStatus

import orjson
from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.workers.sync import SyncWorker as _GunicornSyncWorker

from . import malloc, response_headers
from .errors import (
    ApiError,
    Detail,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    InternalError,
    MalformedHttp,
    UnsupportedTransferCoding,
    UriTooLong,
    shape_for_path,
)
from .lifecycle import Phase, this_server

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


def raw_response(error: ApiError, path: str) -> bytes:
    """The error as a whole HTTP response, in the shape of the API ``path`` is under."""
    body = orjson.dumps(shape_for_path(path)(error))
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        f"{response_headers.raw()}"
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


class ListenerPoll:
    """Waits for a connection on the listeners a worker is accepting on, or for the
    worker's signal pipe. The listeners join and leave the set as the worker becomes
    ready or stops (``listen``). On epoll each listener is registered with
    ``EPOLLEXCLUSIVE``, so a connection wakes one idle worker, not all of them; elsewhere
    (or on a kernel older than 4.5) ``select`` wakes them all, as gunicorn's own loop does."""

    def __init__(self, listeners, pipe: int) -> None:
        self._listeners = list(listeners)
        self._pipe = pipe
        self._listening = False
        self._epoll = None
        if hasattr(select, "EPOLLEXCLUSIVE"):
            self._epoll = select.epoll()
            self._epoll.register(pipe, select.EPOLLIN)

    def listen(self, on: bool) -> None:
        if on == self._listening:
            return
        self._listening = on
        if self._epoll is None:
            return
        for sock in self._listeners:
            if not on:
                self._epoll.unregister(sock.fileno())
                continue
            try:
                self._epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            except OSError:  # a kernel older than 4.5: select from now on
                self._epoll.close()
                self._epoll = None
                return

    def wait(self, timeout: float) -> None:
        if self._epoll is not None:
            ready = [fd for fd, _ in self._epoll.poll(timeout)]
        else:
            fds = [*self._listeners, self._pipe] if self._listening else [self._pipe]
            ready = [s if isinstance(s, int) else s.fileno() for s in select.select(fds, [], [], timeout)[0]]
        if self._pipe in ready:  # a signal's wake-up byte
            with contextlib.suppress(BlockingIOError):
                os.read(self._pipe, 1)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


_IDLE_POLL_SECONDS = 1.0  # an idle worker looks at the accept queue at least this often
_LOADING_POLL_SECONDS = 0.05  # how soon a loading worker notices its model is ready
_LATE_HANDSHAKE_SECONDS = 0.25  # closing: how long an empty queue must stay empty
_SWEEP_SECONDS = 1.0  # a retiring worker serves what is already queued, for at most this
_STRAY_TERM_SECONDS = 1.0  # a SIGTERM not from the master: how long to wait for the drain


class SyncWorker(_GunicornSyncWorker):
    """gunicorn's sync worker (one connection at a time), with this server's accept loop.

    - **Ready before accepting.** A worker joins the accept set once its model is loaded
      and warmed, so no request waits on TensorFlow, on a fresh, respawned or reloaded
      worker alike; only while no worker of the server is ready do loading workers accept
      (a request then waits up to ``ECG_READY_WAIT_SECONDS``, then gets a 503).
    - **Draining on shutdown.** On SIGTERM with the server closing (``service/arbiter.py``
      has stopped new connections), a worker keeps accepting until the queue is empty,
      so no queued connection is reset. Retired on SIGHUP, it serves what is already
      queued and leaves the rest to the workers that replaced it.
    - **Deadlines** on every read (``RequestDeadline``) and a bounded lingering close, so
      that a client which sends its whole body before reading (a 413) reads the answer.
    """

    client_timeout_seconds: float = 5.0  # gunicorn.conf.py sets these from the settings
    request_timeout_seconds: float = 15.0
    linger_max_bytes: int = 128 * 1024 * 1024

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # in the master, before the fork
        self.server_state = this_server()
        self.slot = self.server_state.claim() if self.server_state else None
        self._model_ready = False
        self._stray_term: float | None = None  # when a SIGTERM not from the master came

    def init_process(self) -> None:
        self.log.error_log.addFilter(QuietClientTimeouts())
        malloc.tune_for_requests()  # before the app loads (service/malloc.py says why)
        super().init_process()

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM. The master sends it to retire this worker (marked in its slot) or to
        close the server (phase CLOSING). One that is neither came from someone else, most
        often to the whole process group at once (``timeout``, systemd's default
        KillMode): the master has it too and is draining, and will say when to close, so
        the worker serves on; if the server does not start draining within a second, the
        signal was for this worker alone and it stops."""
        state = self.server_state
        if state is None or state.phase is Phase.CLOSING or state.retiring(self.slot):
            self.alive = False
        elif self._stray_term is None:
            self._stray_term = time.monotonic()

    def run(self) -> None:
        for sock in self.sockets:
            sock.setblocking(False)
        self._poll = ListenerPoll(self.sockets, self.PIPE[0])
        try:
            self._serve()
        finally:
            if self.server_state:
                self.server_state.mark_ready(self.slot, False)
            self._poll.close()

    def _serve(self) -> None:
        quiet_since: float | None = None
        accepting = False
        while True:
            self.notify()
            if self._stray_term is not None and self.server_state is not None:
                if self.server_state.shutting_down():
                    self._stray_term = None  # the master drains: its own SIGTERM will follow
                elif time.monotonic() - self._stray_term > _STRAY_TERM_SECONDS:
                    self.alive = False
            accepting = self._may_accept()
            self._poll.listen(accepting)
            if accepting and self._accept_one():
                quiet_since = None
                continue
            if not self.alive:
                if not (accepting and self._closing()):
                    break  # retired: the workers that stay serve the queue
                # closing: nothing new can arrive but a handshake already under way
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= _LATE_HANDSHAKE_SECONDS:
                    break
                self._poll.wait(_LATE_HANDSHAKE_SECONDS)
                continue
            if not self.is_parent_alive():
                return
            self._poll.wait(_IDLE_POLL_SECONDS if self._model_ready else _LOADING_POLL_SECONDS)
        if accepting:
            # A connection whose exclusive wake-up came to this worker would wait for the
            # next one to wake another: out of the set first, then serve what is queued.
            self._poll.listen(False)
            until = time.monotonic() + _SWEEP_SECONDS
            while time.monotonic() < until and self._accept_one():
                self.notify()

    def _may_accept(self) -> bool:
        if not self._model_ready and self._app_ready():
            self._model_ready = True
            if self.server_state:
                self.server_state.mark_ready(self.slot)
        if self._model_ready or self.server_state is None:
            return True
        return not self.server_state.any_ready()  # nobody ready: answer, if only with a 503

    def _app_ready(self) -> bool:
        state = self._app_state()
        return state is None or state.loader.ready  # an app without a model is ready at once

    def _closing(self) -> bool:
        return self.server_state is not None and self.server_state.phase is Phase.CLOSING

    def _accept_one(self) -> bool:
        """Accept and serve one queued connection; False when no listener has one."""
        for listener in self.sockets:
            try:
                self.accept(listener)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
        return False

    def accept(self, listener) -> None:
        client, addr = listener.accept()
        client.settimeout(self.client_timeout_seconds)
        util.close_on_exec(client)
        deadline = RequestDeadline(client, self.client_timeout_seconds, self.request_timeout_seconds)
        self.handle(listener, deadline, addr)

    def _app_state(self):
        # the app's DataPlane under service.routing.EXTENSION; not imported from there, as
        # the master imports this module and must not import numpy or prometheus-client
        return getattr(self.wsgi, "extensions", {}).get("ecg")

    def _count(self, error: ApiError, method: str) -> None:
        """Refused by HTTP parsing before the app saw it, so counted here, in the app's
        own metrics, under route ``unparsed``."""
        # imported here, in the worker: prometheus-client fixes its multiprocess mode at
        # import, and the master imports this module before PROMETHEUS_MULTIPROC_DIR is set
        from .metrics import UNPARSED_ROUTE

        state = self._app_state()
        if state is not None:
            state.metrics.observe_request(UNPARSED_ROUTE, method, error.status, 0.0)

    def _close(self, client) -> None:
        """Half-close, then read and drop what the client is still sending, so that one
        which writes its whole body before reading (Python's http.client, requests) reads
        the answer instead of a reset: closing a socket with unread bytes sends RST. Bounded
        by ECG_LINGER_MAX_BYTES and ECG_CLIENT_TIMEOUT_SECONDS; gunicorn's own close, which
        follows, stops at 64 KiB and would reset a larger body."""
        util.close_graceful(client, timeout=self.client_timeout_seconds, max_drain=self.linger_max_bytes)

    def handle_request(self, listener, req, client, addr) -> None:
        try:
            super().handle_request(listener, req, client, addr)
        finally:
            client.disarm()
            self._close(client)

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
            util.write_nonblock(client, raw_response(error, path))
        except Exception:  # the client is gone: nothing to tell it
            self.log.debug("could not send the error response")
            return
        client.disarm()
        self._close(client)
