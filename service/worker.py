"""gunicorn's sync worker with a deadline on every read from and write to a client, and
the API's JSON errors for requests that HTTP parsing refuses.

A sync worker serves one connection at a time. A client that connects and then sends
nothing, half a request line or half a body would hold the worker until gunicorn's
worker timeout kills it (30 s, then a TensorFlow reload): two such clients stop a
two-worker server. With a socket timeout the stalled connection is dropped after
``ECG_CLIENT_TIMEOUT_SECONDS`` of silence and the worker serves the next one. A client
that trickles bytes just under the deadline can still hold a worker; in front of
untrusted clients, put a buffering proxy (as gunicorn's docs advise for sync workers).

A request gunicorn cannot parse (a bad request line, an oversized or invalid header, a
broken chunked body) never reaches the app, and gunicorn answers it with an HTML page;
here it gets the same JSON error body as every other refusal, naming what was wrong.

Imported by the gunicorn master: no TensorFlow here.
"""

from __future__ import annotations

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


class SyncWorker(_GunicornSyncWorker):
    client_timeout_seconds: float = 5.0  # gunicorn.conf.py sets it from the settings

    def accept(self, listener) -> None:
        client, addr = listener.accept()
        client.settimeout(self.client_timeout_seconds)
        util.close_on_exec(client)
        self.handle(listener, client, addr)

    def handle_error(self, req, client, addr, exc) -> None:
        error = parse_error(exc)
        if error is None:
            self.log.exception("error handling request")
            error = InternalError("internal server error")
        else:
            self.log.warning("refused an unparsable request from %s: %s", (addr or ("",))[0], exc)
        path = getattr(req or getattr(exc, "req", None), "path", None) or ""
        try:
            util.write_nonblock(client, raw_response(error, inference_protocol=path.startswith("/v2")))
        except Exception:  # the client is gone: nothing to tell it
            self.log.debug("could not send the error response")
