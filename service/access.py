"""Who may reach which route: API keys, the routes open without one, and the metrics
listener (README, Security).

Checked before any route runs, so a path that needs a key is refused the same whether
it exists or not: a stranger cannot map the routes. With ``ECG_METRICS_BIND``, the
metrics listener serves only ``/metrics``, with no key, and the API's listener no
longer serves it; which listener a request came on is gunicorn's ``SERVER_PORT``, the
port of the socket it was accepted on (not the client's Host header).
"""

from __future__ import annotations

from flask import Flask, g, request

from .api_keys import KeysFile, is_token68
from .errors import Detail, InvalidApiKey, MissingApiKey, NotFound
from .metrics import ServiceMetrics
from .routing import route_template
from .settings import Settings

METRICS_PATH = "/metrics"
_WHERE = "header.Authorization"


class OpenRoutes:
    """``ECG_AUTH_OPEN_ROUTES``: exact paths, and prefixes written with a trailing ``*``."""

    def __init__(self, routes: tuple[str, ...]) -> None:
        self._exact = frozenset(r for r in routes if not r.endswith("*"))
        self._prefixes = tuple(r[:-1] for r in routes if r.endswith("*"))

    def __contains__(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)


class Access:
    """The access rule of one app: which paths are open, and the keys for the rest."""

    def __init__(self, settings: Settings, keys: KeysFile | None) -> None:
        self.keys = keys
        self._open = OpenRoutes(settings.auth_open_routes)
        self.metrics_port = settings.metrics_bind.rpartition(":")[2] if settings.metrics_bind else None

    def is_open(self, path: str) -> bool:
        return self.keys is None or path in self._open

    def authenticate(self, authorization: str | None) -> str:
        """The presented key's fingerprint; MissingApiKey or InvalidApiKey otherwise."""
        assert self.keys is not None
        if not authorization:
            raise MissingApiKey(
                "this route needs an API key",
                [Detail(_WHERE, "missing; send the header `Authorization: Bearer <key>`")],
            )
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise MissingApiKey(
                "this route needs an API key",
                [Detail(_WHERE, "no Bearer key; send `Authorization: Bearer <key>`")],
            )
        found = self.keys.keys.match(key) if is_token68(key) else None
        if found is None:
            raise InvalidApiKey("the API key is not valid", [Detail(_WHERE, "not a key this server accepts")])
        return found


def init_app(app: Flask, settings: Settings, metrics: ServiceMetrics, keys: KeysFile | None) -> None:
    access = Access(settings, keys)

    @app.before_request
    def _check() -> None:
        path = request.path
        if access.metrics_port is not None and request.environ.get("SERVER_PORT") == access.metrics_port:
            if path != METRICS_PATH:
                raise NotFound("this address serves only /metrics")
            return
        if not access.is_open(path):
            try:
                g.api_key = access.authenticate(request.headers.get("Authorization"))
            except (MissingApiKey, InvalidApiKey) as exc:
                g.auth_failure = exc.reason
                metrics.auth_failures.labels(route_template(), exc.reason).inc()
                raise
        if access.metrics_port is not None and path == METRICS_PATH:
            raise NotFound("no such route; see /openapi.json")
