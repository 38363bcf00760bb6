"""gunicorn's sync worker with a deadline on every read from and write to a client.

A sync worker serves one connection at a time. A client that connects and then sends
nothing, half a request line or half a body would hold the worker until gunicorn's
worker timeout kills it (30 s, then a TensorFlow reload): two such clients stop a
two-worker server. With a socket timeout the stalled connection is dropped after
``ECG_CLIENT_TIMEOUT_SECONDS`` of silence and the worker serves the next one. A client
that trickles bytes just under the deadline can still hold a worker; in front of
untrusted clients, put a buffering proxy (as gunicorn's docs advise for sync workers).

Imported by the gunicorn master: no TensorFlow here.
"""

from __future__ import annotations

from gunicorn import util
from gunicorn.workers.sync import SyncWorker as _GunicornSyncWorker


class SyncWorker(_GunicornSyncWorker):
    client_timeout_seconds: float = 5.0  # gunicorn.conf.py sets it from the settings

    def accept(self, listener) -> None:
        client, addr = listener.accept()
        client.settimeout(self.client_timeout_seconds)
        util.close_on_exec(client)
        self.handle(listener, client, addr)
