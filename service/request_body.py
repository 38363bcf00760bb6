"""Reading a request's body: its media type, its size limit, its deadline and its
Content-Encoding. Both APIs read bodies here, so every refusal is the same error.

Under gunicorn the body comes off a socket whose reads time out (``service/worker.py``:
``ECG_CLIENT_TIMEOUT_SECONDS`` of silence, ``ECG_REQUEST_TIMEOUT_SECONDS`` in all): a
read that times out raises the standard ``TimeoutError``, which werkzeug's bounded stream
(every body here is bounded, by its Content-Length or by the body limit) turns into
``ClientDisconnected``, the cause kept. A timeout is the client's slowness, a 408; any
other short read is a 400.
"""

from __future__ import annotations

import zlib

from flask import request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from .errors import BadRequest, Detail, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def require_media_type(*allowed: str) -> None:
    """A 415 unless the request's Content-Type is one of ``allowed`` ("" for none)."""
    if request.mimetype not in allowed:
        expected = " or ".join(a or "none" for a in allowed)
        raise UnsupportedMediaType(
            f"Content-Type must be {expected}, not {request.mimetype or 'missing'!r}",
            [Detail("headers.Content-Type", f"expected {expected}")],
        )


def read_body(max_bytes: int) -> bytes:
    """The request body, decoded from its Content-Encoding, refusing more than
    ``max_bytes`` before or after decoding. Werkzeug checks a declared Content-Length
    itself, but silently cuts a chunked body at the limit; a cut body must be a 413, not
    a confusing "invalid JSON"."""
    try:
        body = request.get_data(cache=False)
    except ClientDisconnected as exc:  # werkzeug's word for a short read, whatever the cause
        if _timed_out(exc):
            raise RequestTimeout("the request body stopped arriving before it was complete") from None
        raise BadRequest("the request body ended before its Content-Length") from None
    except HTTPException:  # werkzeug's own refusals, e.g. a 413 over MAX_CONTENT_LENGTH
        raise
    except Exception as exc:  # the server's parser refused the body itself, e.g. a bad chunk size
        problem = str(exc)[:200]
        raise BadRequest(f"the request body is malformed: {problem}", [Detail("body", problem)]) from None
    if request.content_length is None and len(body) >= max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    return decompress(body, encoding, max_bytes)


def _timed_out(exc: BaseException | None) -> bool:
    """Whether a read failed on the socket's timeout, however deep it was wrapped."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TimeoutError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """A gzip or deflate body (tritonclient can send either), never inflated past the body
    limit: a few kilobytes of zeros must not become gigabytes in a worker."""
    where = [Detail("headers.Content-Encoding", f"expected one of {sorted(_WBITS)} or identity")]
    if encoding not in _WBITS:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported", where)
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data: {exc}", where) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body exceeds the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is truncated", where)
    return data
