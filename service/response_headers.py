"""Headers every response carries, whichever route (or gunicorn itself) answers.

``nosniff``: a browser never reads a JSON error or a score as a script or a page.
``no-store``: scores and errors are about one person's heartbeat and one moment; no cache
on the way (a proxy, the browser) keeps them. A route that allows caching says so itself
(the explorer's files: ``no-cache``, revalidated on each use).
"""

from __future__ import annotations

from flask import Flask, Response

HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))


def raw() -> str:
    """The headers as HTTP/1.1 lines, for a response written without Flask."""
    return "".join(f"{name}: {value}\r\n" for name, value in HEADERS)


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        for name, value in HEADERS:
            if name not in headers:  # not setdefault: it also re-validates the value (2x the time)
                headers.add(name, value)
        return response
