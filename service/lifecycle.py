"""What the gunicorn master and its workers share about the server's life: its phase
(serving, draining for a shutdown, closing), which workers have their model ready, and
which model version new workers load.

The master (``service/arbiter.py``) writes the phase and hands each worker a slot before
forking it; a worker (``service/worker.py``) marks its slot once its model is loaded and
warmed, and its app answers readiness 503 from the moment the phase leaves ``SERVING``
(``service/api.py``). All of it lives in one anonymous shared memory mapping made by the
master before its first fork, so every worker, first, respawned or reloaded, sees the
master's writes and the master sees theirs, with no file, socket or lock: each field is
one byte, and each byte has one writer at a time. The model version is a plain attribute
instead: the master sets it at start and on each reload, and a worker gets the value of
the moment it was forked, so respawned workers keep serving what their siblings serve
even when a newer version is published, until the next SIGHUP.

Imported by the gunicorn master: no TensorFlow, no prometheus-client.
"""

from __future__ import annotations

import mmap
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api_keys import KeySet

_READY = 1


class Phase(IntEnum):
    SERVING = 0
    DRAINING = 1  # SIGTERM: readiness is 503, connections are still accepted and served
    CLOSING = 2  # no new connections: the accepted and queued ones are served, then exit


class ServerState:
    """The phase (byte 0) and one readiness byte per worker slot (bytes 1..``slots``)."""

    def __init__(self, slots: int = 1024) -> None:
        # anonymous and MAP_SHARED, so it stays shared across fork: the phase, then a
        # readiness byte per slot, then a byte per slot the master sets before retiring it
        self._mem = mmap.mmap(-1, 1 + 2 * slots)
        self._slots = slots
        self._free = list(range(slots, 0, -1))  # the master's own: only it claims and releases
        self._claimed: set[int] = set()
        self.model_version: int | None = None  # what workers forked from now on load
        # the keys file as the master last read it well (at start, at each reload): a
        # worker that cannot read the file when it starts serves with these instead
        self.api_keys: KeySet | None = None

    @property
    def phase(self) -> Phase:
        return Phase(self._mem[0])

    @phase.setter
    def phase(self, phase: Phase) -> None:
        self._mem[0] = int(phase)

    def shutting_down(self) -> bool:
        return self._mem[0] != Phase.SERVING

    def claim(self) -> int | None:
        """A slot for a worker about to be forked (master); None when all are taken."""
        if not self._free:
            return None
        slot = self._free.pop()
        self._mem[slot] = self._mem[slot + self._slots] = 0
        self._claimed.add(slot)
        return slot

    def release_all_but(self, slots: set[int | None]) -> None:
        """Free the slots of every worker not in ``slots``, the live ones (master): a
        worker that has gone, however gunicorn learnt of it, is no longer ready."""
        for slot in self._claimed - slots:
            self._mem[slot] = 0
            self._claimed.discard(slot)
            self._free.append(slot)

    def mark_ready(self, slot: int | None, ready: bool = True) -> None:
        if slot is not None:
            self._mem[slot] = _READY if ready else 0

    def retire(self, slot: int | None) -> None:
        """Mark a worker's SIGTERM as the master's retirement (master, before sending it)."""
        if slot is not None:
            self._mem[slot + self._slots] = 1

    def retiring(self, slot: int | None) -> bool:
        return slot is not None and self._mem[slot + self._slots] == 1

    def is_ready(self, slot: int | None) -> bool:
        return slot is not None and self._mem[slot] == _READY

    def any_ready(self) -> bool:
        return self._mem.find(bytes([_READY]), 1, 1 + self._slots) != -1


_this_server: ServerState | None = None


def create_server_state() -> ServerState:
    """The state of the server being started in this process (the gunicorn master, before
    it forks): every worker then inherits it and finds it with ``this_server()``."""
    global _this_server
    _this_server = ServerState()
    return _this_server


def this_server() -> ServerState | None:
    """The shared state of the server this process belongs to; None outside one (tests, a
    plain ``gunicorn`` command line, another WSGI server)."""
    return _this_server
